package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// capNetBindService is a v2 vfs_cap_data granting cap_net_bind_service (bit
// 10) permitted and effective.
var capNetBindService = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// xattrsWork reports whether the filesystem under dir takes user xattrs.
func xattrsWork(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "probe")
	must(t, os.WriteFile(p, nil, 0o600))
	defer os.Remove(p)
	return unix.Lsetxattr(p, "user.probe", []byte("1"), 0) == nil
}

func TestTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, mknod, setuid")
	}
	root := t.TempDir()
	withXattrs := xattrsWork(t, root)
	at := func(p string) string { return filepath.Join(root, p) }
	mtime := time.Unix(1700000000, 123456789)
	const uid, gid = 1234, 5678

	must(t, os.Mkdir(at("tmp"), 0o755))
	must(t, unix.Chmod(at("tmp"), 0o1777))
	must(t, os.Mkdir(at("bin"), 0o755))
	must(t, os.WriteFile(at("bin/su"), []byte("setuid"), 0o755))
	must(t, unix.Chmod(at("bin/su"), 0o4755))
	must(t, os.Symlink("../../etc/passwd", at("bin/escape")))
	must(t, os.WriteFile(at("z-first"), []byte("linked"), 0o640))
	// The link is made to z-first, but a-second sorts first and must carry the content.
	must(t, os.Link(at("z-first"), at("a-second")))
	must(t, os.Mkdir(at("dev"), 0o755))
	must(t, unix.Mknod(at("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mkfifo(at("dev/fifo"), 0o600))
	must(t, unix.Mknod(at("dev/sock"), unix.S_IFSOCK|0o755, 0))
	must(t, os.Chmod(at("dev/sock"), 0o755))
	must(t, os.Chmod(at("dev/null"), 0o666))
	must(t, os.WriteFile(at("ping"), []byte("ping binary"), 0o755))
	odd := "odd name ü\nline2"
	must(t, os.WriteFile(at(odd), nil, 0o644))
	must(t, os.Lchown(at(odd), uid, gid))
	must(t, os.Lchown(at("bin/escape"), uid, gid))

	var capValue []byte
	if withXattrs {
		must(t, unix.Lsetxattr(at("ping"), "user.herd", []byte("v\x00\xff"), 0))
		if err := unix.Lsetxattr(at("ping"), "security.capability", capNetBindService, 0); err != nil {
			t.Logf("security.capability refused (%v); checking user.herd only", err)
		} else {
			// The kernel may rewrite the value (v3 in a user namespace); expect what it stores.
			capValue = make([]byte, 64)
			n, err := unix.Lgetxattr(at("ping"), "security.capability", capValue)
			must(t, err)
			capValue = capValue[:n]
		}
	} else {
		t.Log("temp filesystem refuses user xattrs; xattr checks skipped")
	}

	// Times last: creating children changes a directory's mtime.
	for _, p := range []string{"bin/escape", "bin/su", "z-first", "dev/null", "dev/fifo", "dev/sock", "ping", odd, "tmp", "bin", "dev", "."} {
		ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, at(p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	rootMode := func() uint32 { fi, _ := os.Stat(root); return uint32(fi.Mode().Perm()) }()

	m, err := Tree(context.Background(), root, Options{Workers: 2})
	must(t, err)

	ns := mtime.UnixNano()
	var pingX map[string][]byte
	if withXattrs {
		pingX = map[string][]byte{"user.herd": []byte("v\x00\xff")}
		if capValue != nil {
			pingX["security.capability"] = capValue
		}
	}
	want := []manifest.Entry{
		{Path: ".", Type: manifest.TypeDir, Mode: rootMode, MTime: ns},
		{Path: "a-second", Type: manifest.TypeFile, Mode: 0o640, Size: 6, MTime: ns, Digest: manifest.Sum([]byte("linked"))},
		{Path: "bin", Type: manifest.TypeDir, Mode: 0o755, MTime: ns},
		{Path: "bin/escape", Type: manifest.TypeSymlink, Mode: 0o777, UID: uid, GID: gid, MTime: ns, LinkTarget: "../../etc/passwd"},
		{Path: "bin/su", Type: manifest.TypeFile, Mode: 0o4755, Size: 6, MTime: ns, Digest: manifest.Sum([]byte("setuid"))},
		{Path: "dev", Type: manifest.TypeDir, Mode: 0o755, MTime: ns},
		{Path: "dev/fifo", Type: manifest.TypeFifo, Mode: 0o600, MTime: ns},
		{Path: "dev/null", Type: manifest.TypeChar, Mode: 0o666, MTime: ns, DevMajor: 1, DevMinor: 3},
		{Path: "dev/sock", Type: manifest.TypeSocket, Mode: 0o755, MTime: ns},
		{Path: odd, Type: manifest.TypeFile, Mode: 0o644, UID: uid, GID: gid, MTime: ns, Digest: manifest.Sum(nil)},
		{Path: "ping", Type: manifest.TypeFile, Mode: 0o755, Size: 11, MTime: ns, Digest: manifest.Sum([]byte("ping binary")), Xattrs: pingX},
		{Path: "tmp", Type: manifest.TypeDir, Mode: 0o1777, MTime: ns},
		{Path: "z-first", Type: manifest.TypeHardlink, LinkTarget: "a-second"},
	}
	if len(m.Entries) != len(want) {
		for _, e := range m.Entries {
			t.Logf("got %q", e.Path)
		}
		t.Fatalf("got %d entries, want %d", len(m.Entries), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(m.Entries[i], want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, m.Entries[i], want[i])
		}
	}

	// scan → encode → decode → compare
	b, err := manifest.Encode(m)
	must(t, err)
	back, err := manifest.Decode(b)
	must(t, err)
	if c := manifest.Diff(m, back); !c.Empty() || !reflect.DeepEqual(m, back) {
		t.Fatalf("decode(encode(scan)) differs: %s", c)
	}
	// An unchanged tree scans to the same manifest digest.
	again, err := Tree(context.Background(), root, Options{})
	must(t, err)
	d1, _ := manifest.DigestOf(m)
	d2, _ := manifest.DigestOf(again)
	if d1 != d2 {
		t.Fatalf("rescan of an unchanged tree: digest %s, then %s", d1, d2)
	}
}

func TestTreeSkip(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "proc/1"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "proc/1/status"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "keep"), []byte("x"), 0o644))
	var seen []string
	m, err := Tree(context.Background(), root, Options{Skip: func(p string) bool {
		seen = append(seen, p)
		return p == "proc"
	}})
	must(t, err)
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	if !reflect.DeepEqual(paths, []string{".", "keep"}) {
		t.Fatalf("paths = %q, want [. keep]", paths)
	}
	if !reflect.DeepEqual(seen, []string{"keep", "proc"}) {
		t.Fatalf("Skip was asked about %q", seen)
	}
}

func TestTreeErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := Tree(context.Background(), filepath.Join(root, "missing"), Options{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing root: error = %v, want it to name the root", err)
	}

	// A path longer than manifest.MaxPathLen, built one directory at a time.
	name := strings.Repeat("d", 250)
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	for range 17 {
		must(t, unix.Mkdirat(fd, name, 0o755))
		sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(t, err)
		unix.Close(fd)
		fd = sub
	}
	unix.Close(fd)
	_, err = Tree(context.Background(), root, Options{})
	if err == nil || !strings.Contains(err.Error(), "path is 4266 bytes") || !strings.Contains(err.Error(), name+"/"+name) {
		t.Fatalf("long path: error = %.200v…, want it to name the path", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Tree(ctx, root, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scan: error = %v", err)
	}
}

// makeTree writes n small files of size bytes in 100-file directories.
func makeTree(b *testing.B, n, size int) string {
	root := b.TempDir()
	data := bytes.Repeat([]byte("herd"), size/4)
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		data[0] = byte(i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

func BenchmarkTree(b *testing.B) {
	const files, size = 4000, 16 << 10
	root := makeTree(b, files, size)
	b.SetBytes(files * size)
	for b.Loop() {
		if _, err := Tree(context.Background(), root, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkSHA256 is the physical limit for import hashing on this machine.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, readBufSize)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		manifest.Sum(buf)
	}
}
