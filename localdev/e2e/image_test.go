package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/localdev/testenv"
)

// guestModules are the modules the test machine needs: its NIC, its disk,
// ext4, DHCP's raw sockets and the virtio RNG. The image carries only
// these (and what they depend on) so the import and the first sync stay
// small; herd publishes them as the provisioner's modules archive.
func guestModules() []string {
	return []string{"virtio_pci", "e1000", "virtio_blk", "ext4", "dm_mod", "vfat", "nls_cp437", "nls_ascii", "efivarfs", "af_packet", "virtio_rng", "crc32c_generic"}
}

// goBuild builds a static program.
func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
}

// imageTree writes a small real Linux root into dir: Debian's kernel, the
// modules above with a fresh modules.dep, the test's init, and a marker
// file the test changes later.
func imageTree(t *testing.T, k testenv.Kernel, dir string) {
	t.Helper()
	goBuild(t, filepath.Join(ensureDir(t, dir, "sbin"), "init"), "./testdata/init")
	copyFile(t, k.Vmlinuz, filepath.Join(ensureDir(t, dir, "boot"), "vmlinuz-"+k.Version))
	mods := ensureDir(t, dir, "lib", "modules", k.Version)
	dep, err := os.ReadFile(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	files := moduleClosure(dep, guestModules())
	if len(files) < 3 {
		t.Fatalf("modules.dep of %s names only %v of %v", k.Version, files, guestModules())
	}
	for _, f := range files {
		copyFile(t, filepath.Join(k.Modules, f), filepath.Join(ensureDir(t, mods, filepath.Dir(f)), filepath.Base(f)))
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if _, err := os.Stat(filepath.Join(k.Modules, f)); err == nil {
			copyFile(t, filepath.Join(k.Modules, f), filepath.Join(mods, f))
		}
	}
	if out, err := exec.Command("depmod", "-b", dir, k.Version).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v: %s", err, out)
	}
	ensureDir(t, dir, "proc")
	ensureDir(t, dir, "sys")
	ensureDir(t, dir, "dev")
	ensureDir(t, dir, "run")
	ensureDir(t, dir, "tmp")
	writeFile(t, filepath.Join(ensureDir(t, dir, "etc"), "herd-e2e"), "version 1\n")
	writeFile(t, filepath.Join(dir, "etc", "motd"), "herd e2e image\n")
	writeFile(t, filepath.Join(dir, "etc", "hosts"), "127.0.0.1\tlocalhost\n")
}

// moduleClosure returns the module files (relative paths as modules.dep
// names them) of names and everything they depend on.
func moduleClosure(dep []byte, names []string) []string {
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := filepath.Base(mod)
		if i := strings.Index(base, ".ko"); i > 0 {
			byName[strings.ReplaceAll(base[:i], "-", "_")] = mod
		}
	}
	seen := map[string]bool{}
	var out, queue []string
	for _, n := range names {
		if f, ok := byName[n]; ok {
			queue = append(queue, f)
		}
	}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, f)
		queue = append(queue, deps[f]...)
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
