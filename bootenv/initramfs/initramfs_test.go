package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/image/newc"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// needTools skips when the disk tools are not installed here.
func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"sgdisk", "mdadm", "lvm", "mkfs.xfs", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps installs the disk tools): %v", tool, err)
		}
	}
}

func diskSpec(t testing.TB) Spec {
	k := testenv.DebianKernel(t)
	return Spec{
		Init:       []byte("\x7fELF not really, but /init is copied as given"),
		Tools:      DiskTools(),
		ModulesDir: k.Modules,
		Modules:    DiskModules(),
		Files:      map[string][]byte{"etc/lvm/lvm.conf": []byte(LVMConf)},
	}
}

func build(t testing.TB, s Spec) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Build(context.Background(), s, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func list(t testing.TB, b []byte) map[string]newc.Entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := newc.Read(zr, 1<<28)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]newc.Entry{}
	prev := ""
	for _, e := range ents {
		if e.Name <= prev {
			t.Errorf("%q after %q: entries are not sorted", e.Name, prev)
		}
		prev = e.Name
		if e.UID != 0 || e.GID != 0 || e.Mtime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d", e.Name, e.UID, e.GID, e.Mtime)
		}
		if dir := filepath.Dir(e.Name); dir != "." {
			if d, ok := out[dir]; !ok || d.Mode&0o170000 != newc.TypeDir {
				t.Errorf("%s comes before its directory %s", e.Name, dir)
			}
		}
		out[e.Name] = e
	}
	return out
}

func TestBuildIsReproducible(t *testing.T) {
	needTools(t)
	s := diskSpec(t)
	a, b := build(t, s), build(t, s)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ: %d and %d bytes", len(a), len(b))
	}
	ents := list(t, a)
	t.Logf("%d bytes, %d entries", len(a), len(ents))
	if e := ents["init"]; e.Mode != newc.TypeFile|0o755 || !bytes.Equal(e.Data, s.Init) {
		t.Errorf("init: mode %o", e.Mode)
	}
	if e := ents["dev/console"]; e.Mode != newc.TypeChar|0o600 || e.RdevMajor != 5 || e.RdevMinor != 1 {
		t.Errorf("dev/console: %+v", e)
	}
	// Every tool resolves, through the host's own links, to a file.
	for _, tool := range DiskTools() {
		p, err := (&tree{root: "/"}).lookTool(tool, DefaultToolDirs())
		if err != nil {
			t.Fatal(err)
		}
		if !resolves(ents, strings.TrimPrefix(p, "/")) {
			t.Errorf("tool %s (%s) does not resolve to a file in the archive", tool, p)
		}
	}
	if e := ents["usr/sbin/pvcreate"]; e.Mode&0o170000 != newc.TypeSymlink || string(e.Data) != "lvm" {
		t.Errorf("pvcreate: %+v", e)
	}
	interp := "lib64/ld-linux-x86-64.so.2"
	if !resolves(ents, interp) {
		t.Errorf("the loader %s does not resolve", interp)
	}
	for _, lib := range []string{"libc.so.6", "libdevmapper.so.1.02.1", "libblkid.so.1"} {
		if !resolves(ents, "usr/lib/x86_64-linux-gnu/"+lib) {
			t.Errorf("library %s is missing", lib)
		}
	}
	k := testenv.DebianKernel(t)
	mods := "usr/lib/modules/" + k.Version + "/"
	for _, m := range []string{"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/md/raid1.ko", "kernel/drivers/md/md-mod.ko",
		"kernel/drivers/md/dm-mod.ko", "kernel/fs/xfs/xfs.ko", "modules.dep", "modules.alias.bin"} {
		if _, ok := ents[mods+m]; !ok {
			t.Errorf("module file %s is missing", m)
		}
	}
	// Dependencies come along: raid456 needs the async_tx helpers.
	if _, ok := ents[mods+"kernel/crypto/async_tx/async_tx.ko"]; !ok {
		t.Errorf("raid456's dependency async_tx is missing")
	}
	if string(ents["etc/lvm/lvm.conf"].Data) != LVMConf {
		t.Errorf("lvm.conf")
	}
}

// resolves follows links inside the archive and reports whether p ends
// at a regular file.
func resolves(ents map[string]newc.Entry, p string) bool {
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(p, "/")
		moved := false
		for i := 1; i <= len(parts); i++ {
			cur := strings.Join(parts[:i], "/")
			e, ok := ents[cur]
			if !ok {
				return false
			}
			if e.Mode&0o170000 == newc.TypeSymlink {
				target := string(e.Data)
				if !filepath.IsAbs(target) {
					target = filepath.Join(filepath.Dir(cur), target)
				}
				p = strings.TrimPrefix(filepath.Join(append([]string{target}, parts[i:]...)...), "/")
				moved = true
				break
			}
			if i == len(parts) {
				return e.Mode&0o170000 == newc.TypeFile
			}
		}
		if !moved {
			return false
		}
	}
	return false
}

func TestBuildRefusesWhatIsMissing(t *testing.T) {
	var buf bytes.Buffer
	err := Build(context.Background(), Spec{Init: []byte("x"), Tools: []string{"no-such-tool-herd"}}, &buf)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no-such-tool-herd") {
		t.Errorf("missing tool: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Build(context.Background(), Spec{Init: []byte("x"), ModulesDir: dir, Modules: []string{"c"}}, &buf)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "module c") {
		t.Errorf("missing module: %v", err)
	}
	if err := Build(context.Background(), Spec{}, &buf); err == nil {
		t.Error("built without /init")
	}
}

func TestModulesComeWithDependencies(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep":         "kernel/a.ko: kernel/b.ko kernel/c-d.ko.xz\nkernel/b.ko: kernel/c-d.ko.xz\nkernel/c-d.ko.xz:\nkernel/e.ko:\n",
		"modules.builtin":     "kernel/f.ko\n",
		"kernel/a.ko":         "a",
		"kernel/b.ko":         "b",
		"kernel/c-d.ko.xz":    "c",
		"kernel/e.ko":         "e",
		"modules.alias":       "alias x a\n",
		"modules.builtin.bin": "",
	}
	for name, data := range files {
		p := filepath.Join(dir, "6.1-test", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := build(t, Spec{Init: []byte("x"), ModulesDir: filepath.Join(dir, "6.1-test"), Modules: []string{"a", "f"}})
	ents := list(t, b)
	base := "usr/lib/modules/6.1-test/"
	for _, want := range []string{"kernel/a.ko", "kernel/b.ko", "kernel/c-d.ko.xz", "modules.dep", "modules.alias", "modules.builtin"} {
		if _, ok := ents[base+want]; !ok {
			t.Errorf("%s missing", want)
		}
	}
	if _, ok := ents[base+"kernel/e.ko"]; ok {
		t.Error("a module nobody asked for was copied")
	}
}

func BenchmarkBuild(b *testing.B) {
	needTools(b)
	s := diskSpec(b)
	var n int
	for b.Loop() {
		var buf bytes.Buffer
		if err := Build(context.Background(), s, &buf); err != nil {
			b.Fatal(err)
		}
		n = buf.Len()
	}
	b.ReportMetric(float64(n), "bytes/archive")
}
