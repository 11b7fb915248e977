package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/tarcheck"
)

// capability is a security.capability value (VFS_CAP_REVISION_2,
// cap_net_raw permitted and effective), as setcap writes it.
var capability = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// buildTree makes a tree with every entry type tar carries (no socket),
// special modes, owners, xattrs, hardlinks, a sparse file and a chunked
// file. It needs root.
func buildTree(t *testing.T, dir string) {
	t.Helper()
	p := func(name string) string { return filepath.Join(dir, name) }
	w := func(name string, data []byte, mode uint32) {
		must(t, os.WriteFile(p(name), data, 0o600))
		must(t, unix.Chmod(p(name), mode))
	}
	must(t, os.MkdirAll(p("usr/bin"), 0o755))
	must(t, os.MkdirAll(p("usr/lib/deep/er"), 0o750))
	must(t, os.Mkdir(p("tmp"), 0o755))
	must(t, unix.Chmod(p("tmp"), 0o1777))
	w("usr/bin/su", []byte("setuid binary"), 0o4755)
	w("usr/bin/wall", []byte("setgid binary"), 0o2755)
	must(t, os.Chown(p("usr/bin/wall"), 0, 5))
	w("usr/bin/ping", []byte("capable binary"), 0o755)
	must(t, unix.Setxattr(p("usr/bin/ping"), "security.capability", capability, 0))
	must(t, unix.Setxattr(p("usr/bin/ping"), "security.selinux", []byte("system_u:object_r:ping_exec_t:s0\x00"), 0))
	w("empty", nil, 0o600)
	w("same-a", []byte("same content"), 0o644)
	w("same-b", []byte("same content"), 0o644)
	w("owned", []byte("owned by someone"), 0o640)
	must(t, os.Chown(p("owned"), 1234, 5678))
	must(t, unix.Setxattr(p("owned"), "user.herd", []byte("label"), 0))
	must(t, unix.Setxattr(p("owned"), "trusted.herd", []byte{0, 1, 2}, 0))
	must(t, unix.Setxattr(p("usr/lib"), "user.dir", []byte("dir xattr"), 0))
	// The hardlink sorts before its first name, so the content moves to it.
	must(t, os.Link(p("owned"), p("usr/lib/deep/er/a-link")))
	must(t, os.Link(p("owned"), p("a-first-link")))
	big := make([]byte, 5<<20+12345)
	rand.NewChaCha8([32]byte{1}).Read(big)
	w("usr/lib/big", big, 0o644)
	// A sparse file, chunked too: a hole, then data.
	sf, err := os.Create(p("sparse"))
	must(t, err)
	_, err = sf.WriteAt([]byte("data after a hole"), 6<<20)
	must(t, err)
	must(t, sf.Close())
	must(t, os.Symlink("../owned", p("usr/sym")))
	must(t, os.Lchown(p("usr/sym"), 7, 8))
	must(t, os.Symlink("/usr/bin/su", p("usr/bin/absolute")))
	must(t, os.Mkdir(p("dev"), 0o755))
	must(t, unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	must(t, unix.Mknod(p("dev/big"), unix.S_IFCHR|0o600, int(unix.Mkdev(4000, 70000))))
	must(t, unix.Mkfifo(p("fifo"), 0o620))
	when := time.Date(2021, 3, 4, 5, 6, 7, 891011121, time.UTC)
	must(t, os.Chtimes(p("usr/bin/su"), when, when))
	must(t, unix.Lutimes(p("usr/sym"), []unix.Timeval{unix.NsecToTimeval(when.UnixNano()), unix.NsecToTimeval(when.UnixNano())}))
}

// TestFromTarMatchesDirImport tars a tree with GNU tar and checks that
// FromTar gives the very manifest (same digest) the directory import gives
// for the tree, and that the directory import then has no blob left to
// upload: the same files yield the same entries and the same blobs.
func TestFromTarMatchesDirImport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for owners, devices and trusted xattrs")
	}
	ctx := context.Background()
	s := newTestStore(t)
	dir := t.TempDir()
	buildTree(t, dir)
	archive := filepath.Join(t.TempDir(), "tree.tar.gz")
	out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--sparse", "-czf", archive, "-C", dir, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	f, err := os.Open(archive)
	must(t, err)
	defer f.Close()

	m, st, err := FromTar(ctx, s, f, Options{})
	must(t, err)
	if st.Files != 9 || st.BlobsUploaded < 7 || st.BytesUploaded == 0 || st.Layers != 1 {
		t.Errorf("stats %+v: want 9 files, at least 7 blobs", st)
	}
	r, err := s.StageDir(ctx, "tree", "main", dir)
	must(t, err)
	if r.BlobsUploaded != 0 {
		t.Errorf("directory import after the tar import uploaded %d blobs, want 0", r.BlobsUploaded)
	}
	want, err := s.Manifest(ctx, r.Manifest)
	must(t, err)
	if d := manifest.Diff(want, m); !d.Empty() {
		t.Fatalf("tar import differs from directory import:\n%s", d)
	}
	got, err := manifest.DigestOf(m)
	must(t, err)
	if got != r.Manifest {
		t.Fatalf("tar import has manifest %s, directory import %s", got, r.Manifest)
	}
	es := entries(m)
	if e := es["a-first-link"]; e.Type != manifest.TypeFile || e.UID != 1234 || string(e.Xattrs["trusted.herd"]) != "\x00\x01\x02" {
		t.Errorf("a-first-link = %+v, want the file with owner and xattrs", e)
	}
	if e := es["owned"]; e.Type != manifest.TypeHardlink || e.LinkTarget != "a-first-link" {
		t.Errorf("owned = %+v, want a hardlink to a-first-link", e)
	}
	if e := es["usr/bin/ping"]; !bytes.Equal(e.Xattrs["security.capability"], capability) || e.Xattrs["security.selinux"] == nil {
		t.Errorf("usr/bin/ping xattrs = %q", e.Xattrs)
	}
	if e := es["sparse"]; e.Size != 6<<20+17 || len(e.Chunks) == 0 {
		t.Errorf("sparse = size %d, %d chunks", e.Size, len(e.Chunks))
	}
}

// imageEnts is a tar with every entry type and the corners of conversion.
func imageEnts(big []byte) []ent {
	owned := fileEnt("etc/shadow", 0o640, []byte("secret"))
	owned.h.Uid, owned.h.Gid = 0, 42
	caps := fileEnt("usr/bin/ping", 0o755, []byte("ping"))
	caps.h.PAXRecords = map[string]string{
		"SCHILY.xattr.security.capability": string(capability),
		"SCHILY.xattr.security.selinux":    "system_u:object_r:ping_exec_t:s0\x00",
		"LIBARCHIVE.xattr.user.a%3Db":      "dmFsdWU", // "value", unpadded
	}
	dev := func(name string, typ byte, major, minor int64) ent {
		return ent{h: tar.Header{Name: name, Typeflag: typ, Mode: 0o660, Devmajor: major, Devminor: minor, ModTime: epoch, Format: tar.FormatPAX}}
	}
	fifo := ent{h: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: epoch, Format: tar.FormatPAX}}
	return []ent{
		dirEnt("./", 0o755),
		dirEnt("./etc/", 0o755),
		owned,
		fileEnt("./usr/bin/su", 0o4755, []byte("su")),
		fileEnt("usr/bin/wall", 0o2755, []byte("wall")),
		caps,
		dirEnt("tmp", 0o1777),
		fileEnt("usr/lib/big", 0o644, big),
		fileEnt("z/target", 0o600, []byte("linked")),
		linkEnt("a/link", "z/target"),
		linkEnt("z/link2", "./z/target"),
		symlinkEnt("bin", "usr/bin"),
		dev("dev/null", tar.TypeChar, 1, 3),
		dev("dev/sda", tar.TypeBlock, 8, 0),
		fifo,
		fileEnt("empty", 0o644, nil),
	}
}

// TestFromTarEntries checks the conversion of every entry type, in every
// compression, and that all give the same manifest.
func TestFromTarEntries(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	big := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{2}).Read(big)
	plain := tarOf(t, imageEnts(big)...)
	var first manifest.Digest
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"none", plain},
		{"gzip", gzipOf(t, plain)},
		{"zstd", zstdOf(t, plain)},
		{"xz", xzOf(t, plain)},
		{"bzip2", bzip2Of(t, plain)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, st, err := FromTar(ctx, s, bytes.NewReader(tc.data), Options{})
			must(t, err)
			d, err := manifest.DigestOf(m)
			must(t, err)
			if first.IsZero() {
				first = d
				if st.BlobsUploaded < 7 {
					t.Errorf("first import uploaded %d blobs", st.BlobsUploaded)
				}
			} else if d != first {
				t.Errorf("manifest %s, the plain tar gave %s", d, first)
			} else if st.BlobsUploaded != 0 {
				t.Errorf("repeated import uploaded %d blobs", st.BlobsUploaded)
			}
			if st.Files != 7 || st.BytesRead != uint64(len(big))+6+2+4+4+6 {
				t.Errorf("stats %+v", st)
			}
			checkImageEntries(t, m, big)
		})
	}
}

func checkImageEntries(t *testing.T, m *manifest.Manifest, big []byte) {
	t.Helper()
	es := entries(m)
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	want := []string{".", "a", "a/link", "bin", "dev", "dev/null", "dev/sda", "empty", "etc", "etc/shadow", "run", "run/fifo",
		"tmp", "usr", "usr/bin", "usr/bin/ping", "usr/bin/su", "usr/bin/wall", "usr/lib", "usr/lib/big", "z", "z/link2", "z/target"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths %q\nwant  %q", paths, want)
	}
	ns := epoch.UnixNano()
	implied := manifest.Entry{Path: "usr", Type: manifest.TypeDir, Mode: 0o755}
	c, err := chunk.NewChunker(bytes.NewReader(big), chunk.DefaultParams())
	must(t, err)
	var chunks []manifest.Chunk
	for {
		ch, err := c.Next()
		if err != nil {
			break
		}
		chunks = append(chunks, manifest.Chunk{Digest: ch.Digest, Size: uint64(ch.Length)})
	}
	for _, tc := range []manifest.Entry{
		{Path: ".", Type: manifest.TypeDir, Mode: 0o755, MTime: ns},
		implied,
		{Path: "tmp", Type: manifest.TypeDir, Mode: 0o1777, MTime: ns},
		{Path: "etc/shadow", Type: manifest.TypeFile, Mode: 0o640, GID: 42, MTime: ns, Size: 6, Digest: manifest.Sum([]byte("secret"))},
		{Path: "usr/bin/su", Type: manifest.TypeFile, Mode: 0o4755, MTime: ns, Size: 2, Digest: manifest.Sum([]byte("su"))},
		{Path: "usr/bin/wall", Type: manifest.TypeFile, Mode: 0o2755, MTime: ns, Size: 4, Digest: manifest.Sum([]byte("wall"))},
		{Path: "usr/bin/ping", Type: manifest.TypeFile, Mode: 0o755, MTime: ns, Size: 4, Digest: manifest.Sum([]byte("ping")), Xattrs: map[string][]byte{
			"security.capability": capability, "security.selinux": []byte("system_u:object_r:ping_exec_t:s0\x00"), "user.a=b": []byte("value")}},
		{Path: "usr/lib/big", Type: manifest.TypeFile, Mode: 0o644, MTime: ns, Size: uint64(len(big)), Digest: manifest.Sum(big), Chunks: chunks},
		{Path: "a/link", Type: manifest.TypeFile, Mode: 0o600, MTime: ns, Size: 6, Digest: manifest.Sum([]byte("linked"))},
		{Path: "z/target", Type: manifest.TypeHardlink, LinkTarget: "a/link"},
		{Path: "z/link2", Type: manifest.TypeHardlink, LinkTarget: "a/link"},
		{Path: "bin", Type: manifest.TypeSymlink, Mode: 0o777, MTime: ns, LinkTarget: "usr/bin"},
		{Path: "dev/null", Type: manifest.TypeChar, Mode: 0o660, MTime: ns, DevMajor: 1, DevMinor: 3},
		{Path: "dev/sda", Type: manifest.TypeBlock, Mode: 0o660, MTime: ns, DevMajor: 8},
		{Path: "run/fifo", Type: manifest.TypeFifo, Mode: 0o600, MTime: ns},
		{Path: "empty", Type: manifest.TypeFile, Mode: 0o644, MTime: ns, Digest: manifest.Sum(nil)},
	} {
		got := es[tc.Path]
		one := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{got}}
		exp := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{tc}}
		if d := manifest.Diff(exp, one); !d.Empty() || len(got.Chunks) != len(tc.Chunks) {
			t.Errorf("%s = %+v\nwant %+v (%s)", tc.Path, got, tc, d)
		}
	}
	if len(chunks) < 5 {
		t.Errorf("big file has %d chunks", len(chunks))
	}
}

// TestFromTarRefuses feeds hostile and broken archives; each must be refused
// with an *tarcheck.EntryError naming the offending entry.
func TestFromTarRefuses(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	noise := make([]byte, 100<<10) // incompressible, so half the gzip is half the tar
	rand.NewChaCha8([32]byte{3}).Read(noise)
	mid := tarOf(t, fileEnt("ok", 0o644, []byte("fine")), fileEnt("cut/here", 0o644, noise))
	gzMid := gzipOf(t, mid)
	bigMid := tarOf(t, fileEnt("big", 0o644, bytes.Repeat([]byte("y"), 6<<20)))
	for _, tc := range []struct {
		name  string
		data  []byte
		entry string // the entry the error must name
		kind  error
	}{
		{"dotdot", tarOf(t, fileEnt("ok", 0o644, nil), fileEnt("a/../../etc/passwd", 0o644, []byte("x"))), "a/../../etc/passwd", tarcheck.ErrEscape},
		{"absolute", tarOf(t, fileEnt("/etc/passwd", 0o644, []byte("x"))), "/etc/passwd", tarcheck.ErrAbsolute},
		{"symlink then through it", tarOf(t, symlinkEnt("lib", "/etc"), fileEnt("lib/shadow", 0o644, []byte("x"))), "lib/shadow", tarcheck.ErrParent},
		{"symlink climbing out", tarOf(t, symlinkEnt("usr/x", "../../etc")), "usr/x", tarcheck.ErrLinkTarget},
		{"duplicate", tarOf(t, fileEnt("a", 0o644, []byte("1")), fileEnt("./a", 0o644, []byte("2"))), "./a", tarcheck.ErrDuplicate},
		{"hardlink to missing", tarOf(t, fileEnt("a", 0o644, nil), linkEnt("b", "missing")), "b", tarcheck.ErrLinkTarget},
		{"unsupported type", tarOf(t, ent{h: tar.Header{Name: "vol", Typeflag: tar.TypeGNULongName + 10, Format: tar.FormatGNU}}), "vol", tarcheck.ErrType},
		{"truncated mid-file", mid[:len(mid)-2048-60<<10], "cut/here", tarcheck.ErrTruncated},
		{"truncated gzip mid-file", gzMid[:len(gzMid)/2], "cut/here", tarcheck.ErrTruncated},
		{"truncated chunked file", bigMid[:3<<20], "big", tarcheck.ErrTruncated},
		{"truncated between entries", mid[:2048], "ok", tarcheck.ErrTruncated},
		{"truncated after a PAX header", mid[:2048+1024], "ok", tarcheck.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := FromTar(ctx, s, bytes.NewReader(tc.data), Options{})
			if err == nil {
				t.Fatalf("accepted: %d entries", len(m.Entries))
			}
			var ee *tarcheck.EntryError
			if !errors.As(err, &ee) || ee.Name != tc.entry || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v: want an EntryError naming %q, wrapping %v", err, tc.entry, tc.kind)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		if _, _, err := FromTar(ctx, s, bytes.NewReader(tarOf(t)), Options{}); !errors.Is(err, tarcheck.ErrNoEntries) {
			t.Fatalf("empty archive: %v", err)
		}
	})
	t.Run("mtime out of range", func(t *testing.T) {
		e := fileEnt("old", 0o644, nil)
		e.h.ModTime = time.Unix(-1<<40, 0)
		if _, _, err := FromTar(ctx, s, bytes.NewReader(tarOf(t, e)), Options{}); err == nil {
			t.Fatal("accepted an mtime before 1677")
		}
	})
}
