package store

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/scan"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// rootWithExtras copies the cached Debian root and adds what a minbase root
// lacks but real images have: a file capability, a setuid file, a sparse
// file, device nodes, a fifo and a hardlink set.
func rootWithExtras(t testing.TB) string {
	t.Helper()
	dir := testenv.CopyTree(t, testenv.DebianRoot(t))
	ping := filepath.Join(dir, "usr/bin/herd-ping")
	must(t, os.WriteFile(ping, []byte("stands in for ping"), 0o755))
	if out, err := exec.Command("setcap", "cap_net_raw+ep", ping).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	must(t, unix.Chmod(filepath.Join(dir, "usr/bin/passwd"), 0o4755))
	sparse := filepath.Join(dir, "var/lib/herd-sparse.img")
	f, err := os.Create(sparse)
	must(t, err)
	_, err = f.WriteAt([]byte("end"), 64<<20)
	must(t, err)
	must(t, f.Close())
	must(t, unix.Mknod(filepath.Join(dir, "dev/herd-sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	must(t, unix.Mkfifo(filepath.Join(dir, "run/herd-fifo"), 0o600))
	must(t, os.Link(filepath.Join(dir, "etc/hostname"), filepath.Join(dir, "etc/hostname.hardlink")))
	return dir
}

// TestRootfsRoundTrip imports a real Debian root filesystem, exports it
// again and checks with rsync (an independent reader of every attribute)
// and with scan that nothing was lost: owners, modes, setuid, xattrs,
// hardlinks, device nodes, mtimes and content; then that sparse files stay
// sparse.
func TestRootfsRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("imports a whole root filesystem")
	}
	ctx := context.Background()
	src := rootWithExtras(t)
	s := newTestStore(t)
	r, err := s.ImportDir(ctx, "Debian 12 / minbase", "main", src)
	must(t, err)
	if r.Files < 3000 {
		t.Fatalf("imported %d files; a Debian minbase root has several thousand", r.Files)
	}
	dst := filepath.Join(t.TempDir(), "export")
	must(t, s.Export(ctx, r.Manifest, dst))

	// -c compares content by checksum, -H hardlinks, -A ACLs, -X xattrs,
	// -a owners, modes, times, devices, symlinks; --del any extra file.
	out, err := exec.Command("rsync", "-naHAXc", "--del", "--itemize-changes", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync: %v: %s", err, out)
	}
	if diff := strings.TrimSpace(string(out)); diff != "" {
		t.Errorf("exported tree differs from the original (rsync itemized):\n%s", firstLines(diff, 40))
	}

	a, err := scan.Tree(ctx, src, scan.Options{})
	must(t, err)
	b, err := scan.Tree(ctx, dst, scan.Options{})
	must(t, err)
	if c := manifest.Diff(a, b); len(c.Added)+len(c.Changed)+len(c.Removed) != 0 {
		t.Errorf("scan of the export differs: %d added, %d changed (%v), %d removed", len(c.Added), len(c.Changed), c.Changed[:min(5, len(c.Changed))], len(c.Removed))
	}
	var capSeen bool
	for _, e := range b.Entries {
		if e.Path == "usr/bin/herd-ping" {
			_, capSeen = e.Xattrs["security.capability"]
		}
	}
	if !capSeen {
		t.Error("security.capability of usr/bin/herd-ping was lost")
	}

	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(dst, "var/lib/herd-sparse.img"), &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("a 64 MiB sparse file with 3 bytes of data takes %d bytes on disk after export", st.Blocks*512)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = "…"
	}
	return strings.Join(lines, "\n")
}

// BenchmarkRootfs measures importing the Debian root into real MinIO, cold
// (nothing stored) and warm (everything present), beside the physical
// limits on this machine: SHA-256 over the same bytes, and a plain
// `tar c | tar x` copy of the tree. It also reports the bytes stored for a
// second branch that differs from the first by one installed package.
func BenchmarkRootfs(b *testing.B) {
	ctx := context.Background()
	src := rootWithExtras(b)
	m, err := scan.Tree(ctx, src, scan.Options{})
	must(b, err)
	var size int64
	var files int
	for _, e := range m.Entries {
		if e.Type == manifest.TypeFile {
			size += int64(e.Size)
			files++
		}
	}
	perFile := func(b *testing.B) {
		b.SetBytes(size)
		b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
	}
	b.Run("import-cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s := newTestStore(b) // a new bucket: nothing present
			b.StartTimer()
			_, err := s.ImportDir(ctx, "debian", "main", src)
			must(b, err)
		}
		perFile(b)
	})
	b.Run("import-warm", func(b *testing.B) {
		s := newTestStore(b)
		_, err := s.ImportDir(ctx, "debian", "main", src)
		must(b, err)
		for b.Loop() {
			r, err := s.ImportDir(ctx, "debian", "main", src)
			must(b, err)
			if r.BlobsUploaded != 0 {
				b.Fatalf("warm import uploaded %d blobs", r.BlobsUploaded)
			}
		}
		perFile(b)
	})
	b.Run("scan-and-hash", func(b *testing.B) {
		for b.Loop() {
			_, err := scan.Tree(ctx, src, scan.Options{})
			must(b, err)
		}
		perFile(b)
	})
	b.Run("tar-c-tar-x", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dst := b.TempDir()
			b.StartTimer()
			cmd := exec.Command("sh", "-c", `tar --xattrs --xattrs-include='*' -C "$1" -cf - . | tar --xattrs --xattrs-include='*' -C "$2" -xpf -`, "sh", src, dst)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tar: %v: %s", err, out)
			}
		}
		perFile(b)
	})
	b.Run("second-branch-one-package", func(b *testing.B) {
		s := newTestStore(b)
		first, err := s.ImportDir(ctx, "debian", "main", src)
		must(b, err)
		other := testenv.CopyTree(b, src)
		installPackage(b, other, "less")
		var second Result
		for b.Loop() {
			b.StopTimer()
			s2 := newTestStore(b)
			_, err := s2.ImportDir(ctx, "debian", "main", src)
			must(b, err)
			b.StartTimer()
			second, err = s2.ImportDir(ctx, "debian", "with-less", other)
			must(b, err)
		}
		b.ReportMetric(float64(first.BytesUploaded), "bytes-first-branch")
		b.ReportMetric(float64(second.BytesUploaded), "bytes-added-by-second-branch")
		a, err := s.Manifest(ctx, first.Manifest)
		must(b, err)
		c, err := s.Manifest(ctx, second.Manifest)
		must(b, err)
		d := manifest.Diff(a, c)
		b.ReportMetric(float64(len(d.Added)+len(d.Changed)+len(d.Removed)), "paths-differing")
	})
}

// installPackage installs the Debian package pkg into the root dir with the
// root's own dpkg, from a .deb the host's apt downloads.
func installPackage(b *testing.B, dir, pkg string) {
	b.Helper()
	dl := b.TempDir()
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("apt-get download %s: %v: %s", pkg, err, out)
	}
	debs, err := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if err != nil || len(debs) != 1 {
		b.Fatalf("apt-get download %s left %v", pkg, debs)
	}
	inRoot := filepath.Join("/tmp", filepath.Base(debs[0]))
	data, err := os.ReadFile(debs[0])
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, inRoot), data, 0o644))
	if out, err := exec.Command("chroot", dir, "dpkg", "-i", inRoot).CombinedOutput(); err != nil {
		b.Fatalf("dpkg -i %s in %s: %v: %s", pkg, dir, err, out)
	}
	must(b, os.Remove(filepath.Join(dir, inRoot)))
}
