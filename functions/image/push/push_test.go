package push_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/push"
	"github.com/herd-hpc/herd/functions/image/scan"
	"github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(testenv.Objects(t), testenv.Redis(t), testenv.Prefix(t))
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDirSendsOnlyWhatIsMissing pushes a tree, pushes it again unchanged
// (nothing sent), then changes one small file and a few bytes in the middle
// of a big one (that file's one or two changed chunks are sent, not the
// whole file), and checks the stored version exports to the same tree.
func TestDirSendsOnlyWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	dir := t.TempDir()
	big := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{3}).Read(big)
	write(t, filepath.Join(dir, "big.img"), big)
	write(t, filepath.Join(dir, "etc/a"), []byte("alpha"))
	write(t, filepath.Join(dir, "etc/b"), []byte("alpha")) // same content: one blob
	write(t, filepath.Join(dir, "etc/c"), []byte("gamma"))

	var phases []push.Phase
	m, r, err := push.Dir(ctx, s, dir, push.Options{Progress: func(p push.Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Files != 4 || r.BytesScanned != uint64(len(big))+15 || r.BytesUploaded != uint64(len(big))+10 {
		t.Fatalf("first push: %+v", r)
	}
	if len(phases) == 0 || phases[0] != push.PhaseScan || phases[len(phases)-1] != push.PhaseUpload {
		t.Errorf("progress phases %v", phases)
	}
	var bigEntry manifest.Entry
	for _, e := range m.Entries {
		if e.Path == "big.img" {
			bigEntry = e
		}
	}
	if len(bigEntry.Chunks) < 10 {
		t.Fatalf("a 12 MiB file was cut into %d chunks", len(bigEntry.Chunks))
	}

	_, r, err = push.Dir(ctx, s, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.BlobsUploaded != 0 {
		t.Fatalf("unchanged tree sent %d blobs", r.BlobsUploaded)
	}

	copy(big[6<<20:], "changed in the middle")
	write(t, filepath.Join(dir, "big.img"), big)
	write(t, filepath.Join(dir, "etc/c"), []byte("gamma, changed"))
	m2, r, err := push.Dir(ctx, s, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.BlobsUploaded < 2 || r.BlobsUploaded > 4 || r.BytesUploaded > 3<<20 {
		t.Fatalf("a one-place change in a 12 MiB file and one small file sent %d blobs, %d bytes", r.BlobsUploaded, r.BytesUploaded)
	}

	out := filepath.Join(t.TempDir(), "out")
	if err := s.Export(ctx, r.Manifest, out); err != nil {
		t.Fatal(err)
	}
	got, err := scan.Tree(ctx, out, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range m2.Entries {
		m2.Entries[i].Chunks = nil // scan does not chunk
	}
	if c := manifest.Diff(m2, got); !c.Empty() {
		t.Fatalf("export differs from the pushed tree: %+v", c)
	}
}
