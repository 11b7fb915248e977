package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/scan"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return New(testenv.Objects(t), testenv.Redis(t), testenv.Prefix(t))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildTree makes a tree with every entry type, special modes, owners and
// xattrs, plus a chunked file. It needs root.
func buildTree(t testing.TB, dir string) {
	t.Helper()
	w := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, data, mode))
		must(t, os.Chmod(p, mode))
	}
	must(t, os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o755|os.ModeSticky))
	w("usr/bin/su", []byte("setuid binary"), 0o755)
	must(t, unix.Chmod(filepath.Join(dir, "usr/bin/su"), 0o4755))
	w("usr/bin/wall", []byte("setgid binary"), 0o755)
	must(t, os.Chown(filepath.Join(dir, "usr/bin/wall"), 0, 5))
	must(t, unix.Chmod(filepath.Join(dir, "usr/bin/wall"), 0o2755))
	w("empty", nil, 0o600)
	w("same-a", []byte("same content"), 0o644)
	w("same-b", []byte("same content"), 0o644)
	w("owned", []byte("owned by someone"), 0o640)
	must(t, os.Chown(filepath.Join(dir, "owned"), 1234, 5678))
	must(t, unix.Setxattr(filepath.Join(dir, "owned"), "user.herd", []byte("label"), 0))
	must(t, unix.Setxattr(filepath.Join(dir, "owned"), "trusted.herd", []byte{0, 1, 2}, 0))
	big := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	w("big", big, 0o644)
	must(t, os.Link(filepath.Join(dir, "owned"), filepath.Join(dir, "usr/owned-link")))
	must(t, os.Symlink("../owned", filepath.Join(dir, "usr/sym")))
	must(t, os.Lchown(filepath.Join(dir, "usr/sym"), 7, 8))
	must(t, os.Mkdir(filepath.Join(dir, "dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(dir, "dev/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(dir, "sock"), unix.S_IFSOCK|0o755, 0))
}

func scanTree(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	m, err := scan.Tree(context.Background(), dir, scan.Options{})
	must(t, err)
	return m
}

func encode(t testing.TB, m *manifest.Manifest) []byte {
	t.Helper()
	b, err := manifest.Encode(m)
	must(t, err)
	return b
}

func TestImportExportRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for owners, devices and trusted xattrs")
	}
	ctx := context.Background()
	s := newTestStore(t)
	src := t.TempDir()
	buildTree(t, src)
	orig := scanTree(t, src)
	const image = "compute node / ünïcode"

	first, err := s.ImportDir(ctx, image, "main", src)
	must(t, err)
	// 4 distinct non-empty small contents (same-a and same-b share one) plus
	// 5 MiB in about twenty 256 KiB chunks.
	if first.Files != 7 || first.BlobsUploaded < 4+5 || first.BytesUploaded != first.BytesScanned-uint64(len("same content")) || first.Changes.Summary() != "+18 ~0 -0" {
		t.Errorf("first import: %+v, changes %s", first, first.Changes.Summary())
	}
	if got, err := s.Branch(ctx, image, "main"); err != nil || got != first.Manifest {
		t.Fatalf("branch main = %s, %v; want %s", got, err, first.Manifest)
	}
	if live, err := s.Live(ctx, image); err != nil || live != "main" {
		t.Errorf("live = %q, %v", live, err)
	}

	again, err := s.ImportDir(ctx, image, "main", src)
	must(t, err)
	if again.BlobsUploaded != 0 || again.BytesUploaded != 0 || again.Manifest != first.Manifest || !again.Changes.Empty() {
		t.Errorf("unchanged re-import: %+v", again)
	}

	must(t, os.WriteFile(filepath.Join(src, "same-b"), []byte("different content"), 0o644))
	changed, err := s.ImportDir(ctx, image, "main", src)
	must(t, err)
	if changed.BlobsUploaded != 1 || changed.BytesUploaded != uint64(len("different content")) || changed.Changes.Summary() != "+0 ~1 -0" {
		t.Errorf("one changed file: %+v, changes %s", changed, changed.Changes.Summary())
	}
	if changed.Base != first.Manifest {
		t.Errorf("base = %s, want %s", changed.Base, first.Manifest)
	}

	// The export of the first version scans to exactly the original tree.
	out := filepath.Join(t.TempDir(), "out")
	must(t, s.Export(ctx, first.Manifest, out))
	exported := scanTree(t, out)
	if !bytes.Equal(encode(t, exported), encode(t, orig)) {
		stored, err := s.Manifest(ctx, first.Manifest)
		must(t, err)
		t.Errorf("export differs from the original:\n%s", manifest.Diff(stored, exported))
	}
	stored, err := s.Manifest(ctx, first.Manifest)
	must(t, err)
	var chunked bool
	for _, e := range stored.Entries {
		chunked = chunked || e.Path == "big" && len(e.Chunks) > 1
	}
	if !chunked {
		t.Error("big file stored without chunks")
	}
}

func TestConcurrentCommitConflicts(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	tree := func(content string) string {
		d := t.TempDir()
		must(t, os.WriteFile(filepath.Join(d, "f"), []byte(content), 0o644))
		return d
	}
	_, err := s.ImportDir(ctx, "img", "main", tree("base"))
	must(t, err)

	// Both stage from the same base, then race to commit.
	var staged [2]Result
	for i, c := range []string{"alice", "bob"} {
		staged[i], err = s.StageDir(ctx, "img", "main", tree(c))
		must(t, err)
	}
	if staged[0].Base != staged[1].Base || staged[0].Manifest == staged[1].Manifest {
		t.Fatalf("staged: %+v", staged)
	}
	var wg sync.WaitGroup
	var errs [2]error
	for i := range staged {
		wg.Go(func() { errs[i] = s.Commit(ctx, "img", "main", staged[i].Base, staged[i].Manifest) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
		case !errors.Is(err, ErrConflict):
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if winner < 0 || errs[1-winner] == nil {
		t.Fatalf("want one winner and one ErrConflict, got %v", errs)
	}
	if got, _ := s.Branch(ctx, "img", "main"); got != staged[winner].Manifest {
		t.Errorf("branch = %s, want the winner %s", got, staged[winner].Manifest)
	}
	// A commit based on a branch that does not exist yet, when it does.
	if err := s.Commit(ctx, "img", "main", manifest.Digest{}, staged[0].Manifest); !errors.Is(err, ErrConflict) {
		t.Errorf("commit onto a new branch that exists: %v", err)
	}
	// Another branch of the same image commits freely.
	must(t, s.Commit(ctx, "img", "test", manifest.Digest{}, staged[1-winner].Manifest))
}

func TestStageLeavesBranch(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	d := t.TempDir()
	must(t, os.WriteFile(filepath.Join(d, "f"), []byte("one"), 0o644))
	first, err := s.ImportDir(ctx, "img", "main", d)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(d, "f"), []byte("two"), 0o644))
	if _, err := s.StageDir(ctx, "img", "main", d); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Branch(ctx, "img", "main"); got != first.Manifest {
		t.Errorf("staging moved the branch to %s", got)
	}
}

func TestVerifyingReaderRefusesOtherContent(t *testing.T) {
	want := manifest.Sum([]byte("right"))
	for _, tc := range []struct {
		name string
		data string
		size int64
	}{
		{"same size", "wrong", 5},
		{"short", "righ", 5},
	} {
		vr := &verifyingReader{r: bytes.NewReader([]byte(tc.data)), h: newHash(), want: want, left: tc.size}
		if _, err := io.ReadAll(vr); err == nil {
			t.Errorf("%s: read %q as %s without error", tc.name, tc.data, want)
		}
	}
	vr := &verifyingReader{r: bytes.NewReader([]byte("right, and more")), h: newHash(), want: want, left: 5}
	if b, err := io.ReadAll(vr); err != nil || string(b) != "right" {
		t.Errorf("right content: %q, %v", b, err)
	}
}

func newHash() hash.Hash { return sha256.New() }
