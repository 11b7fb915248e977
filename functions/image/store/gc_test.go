package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
)

// later is a GC clock two hours ahead, so everything the test uploaded is
// past the default grace period.
func later() GCOptions { return GCOptions{Now: time.Now().Add(2 * time.Hour)} }

func exists(t testing.TB, s *Store, key string) bool {
	t.Helper()
	_, err := s.obj.Stat(context.Background(), key)
	if errors.Is(err, objstore.ErrNotFound) {
		return false
	}
	must(t, err)
	return true
}

func blob(t testing.TB, s *Store, content string) manifest.Digest {
	t.Helper()
	d := manifest.Sum([]byte(content))
	_, err := s.PutBlob(context.Background(), d, strings.NewReader(content), int64(len(content)))
	must(t, err)
	return d
}

func TestGCDeletesOnlyUnreferenced(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v1 := version(t, s, map[string]string{"common": "common", "a1": "a-one"})
	v1b := version(t, s, map[string]string{"common": "common", "a2": "a-two"})
	vB := version(t, s, map[string]string{"common": "common", "b": "b-only"})
	// The test branch's version has a unique small file and a chunked one.
	c1, c2 := blob(t, s, "chunk one "), blob(t, s, "chunk two")
	whole := "chunk one chunk two"
	m2, err := s.Manifest(ctx, v1b)
	must(t, err)
	m2.Entries = append(m2.Entries,
		manifest.Entry{Path: "t", Type: manifest.TypeFile, Mode: 0o644, Size: 9, Digest: blob(t, s, "test-only")},
		manifest.Entry{Path: "u", Type: manifest.TypeFile, Mode: 0o644, Size: uint64(len(whole)), Digest: manifest.Sum([]byte(whole)),
			Chunks: []manifest.Chunk{{Digest: c1, Size: 10}, {Digest: c2, Size: 9}}})
	v2, err := s.PutManifest(ctx, m2)
	must(t, err)
	orphan := blob(t, s, "orphan")

	must(t, s.Commit(ctx, "a", "main", manifest.Digest{}, v1))
	must(t, s.Commit(ctx, "a", "main", v1, v1b))
	must(t, s.CreateBranch(ctx, "a", "main", "test"))
	must(t, s.Commit(ctx, "a", "test", v1b, v2))
	must(t, s.Commit(ctx, "b", "main", manifest.Digest{}, vB))

	// While the test branch exists, only the orphan goes.
	dry := later()
	dry.DryRun = true
	r, err := s.GC(ctx, dry)
	must(t, err)
	if r.DeletedBlobs != 1 || r.DeletedManifests != 0 || r.BytesFreed != int64(len("orphan")) || r.Images != 2 || r.Versions != 4 {
		t.Errorf("dry run with the test branch: %+v", r)
	}

	must(t, s.DeleteBranch(ctx, "a", "test"))
	var mb int64
	if st, err := s.obj.Stat(ctx, ManifestKey(v2)); err == nil {
		mb = st.Size
	}
	r, err = s.GC(ctx, dry)
	must(t, err)
	wantFreed := int64(len("orphan")+len("test-only")+len(whole)) + mb
	if r.DeletedBlobs != 4 || r.DeletedManifests != 1 || r.BytesFreed != wantFreed || !r.DryRun {
		t.Errorf("dry run: %+v, want 4 blobs, 1 manifest, %d bytes", r, wantFreed)
	}
	for _, d := range []manifest.Digest{orphan, c1, c2} {
		if !exists(t, s, BlobKey(d)) {
			t.Errorf("dry run deleted blob %s", d)
		}
	}
	if !exists(t, s, ManifestKey(v2)) {
		t.Error("dry run deleted the manifest")
	}

	r, err = s.GC(ctx, later())
	must(t, err)
	if r.DeletedBlobs != 4 || r.DeletedManifests != 1 || r.BytesFreed != wantFreed || r.DryRun {
		t.Errorf("GC: %+v", r)
	}
	for _, d := range []manifest.Digest{orphan, c1, c2, manifest.Sum([]byte("test-only"))} {
		if exists(t, s, BlobKey(d)) {
			t.Errorf("blob %s survived", d)
		}
	}
	if exists(t, s, ManifestKey(v2)) {
		t.Error("the deleted branch's version survived")
	}
	for _, c := range []string{"common", "a-one", "a-two", "b-only"} {
		if !exists(t, s, BlobKey(manifest.Sum([]byte(c)))) {
			t.Errorf("blob %q was deleted", c)
		}
	}
	// v1 is kept by main's history: rolling back to it still works.
	must(t, s.Rollback(ctx, "a", "main", v1, CommitInfo{}))
	must(t, s.Export(ctx, v1, t.TempDir()+"/out"))

	r, err = s.GC(ctx, later())
	must(t, err)
	if r.DeletedBlobs+r.DeletedManifests != 0 {
		t.Errorf("second GC deleted %+v", r)
	}
}

func TestGCSparesImports(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v := version(t, s, map[string]string{"kept": "kept"})
	must(t, s.Commit(ctx, "a", "main", manifest.Digest{}, v))

	// Within the grace period, nothing unreferenced goes.
	young := blob(t, s, "uploaded just now")
	r, err := s.GC(ctx, GCOptions{})
	must(t, err)
	if r.DeletedBlobs != 0 || r.KeptYoung != 1 || !exists(t, s, BlobKey(young)) {
		t.Errorf("GC within the grace period: %+v", r)
	}

	// Past it, a live lease keeps everything written since it began.
	l, err := s.BeginImport(ctx)
	must(t, err)
	fresh := blob(t, s, "uploaded by the import")
	r, err = s.GC(ctx, later())
	must(t, err)
	if r.Leases != 1 || r.DeletedBlobs != 0 || !exists(t, s, BlobKey(fresh)) || r.Cutoff.After(l.Start) {
		t.Errorf("GC during an import: %+v", r)
	}
	must(t, s.EndImport(ctx, l))
	r, err = s.GC(ctx, later())
	must(t, err)
	if r.DeletedBlobs != 2 || exists(t, s, BlobKey(fresh)) {
		t.Errorf("GC after the import: %+v", r)
	}

	// An import that found an old, unreferenced blob present pins it; GC
	// keeps it though the lease is too young to protect it by age.
	reused, garbage := blob(t, s, "present, unreferenced"), blob(t, s, "garbage")
	future := Lease{ID: fmt.Sprintf("%d-test", time.Now().Add(5*time.Minute).UnixMilli())}
	if miss, err := s.MissingPinned(ctx, future, []manifest.Digest{reused}); err != nil || len(miss) != 0 {
		t.Fatalf("missing: %v, %v", miss, err)
	}
	r, err = s.GC(ctx, later())
	must(t, err)
	if r.Pinned != 1 || !exists(t, s, BlobKey(reused)) || exists(t, s, BlobKey(garbage)) {
		t.Errorf("GC with a pinned blob: %+v", r)
	}
	must(t, s.EndImport(ctx, future))
}

func TestGCFlag(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	must(t, s.rdb.Set(ctx, s.gcKey(), "another", time.Minute).Err())
	if _, err := s.GC(ctx, later()); !errors.Is(err, ErrGCRunning) {
		t.Errorf("GC while another sweeps: %v", err)
	}
	// A dry run needs no flag.
	if _, err := s.GC(ctx, GCOptions{DryRun: true}); err != nil {
		t.Errorf("dry run while another sweeps: %v", err)
	}
	// An import's pin waits for the sweep to end.
	l := Lease{ID: fmt.Sprintf("%d-test", time.Now().UnixMilli())}
	done := make(chan error, 1)
	go func() { done <- s.Pin(ctx, l, manifest.Sum([]byte("x"))) }()
	select {
	case err := <-done:
		t.Fatalf("pin returned during a sweep: %v", err)
	case <-time.After(3 * sweepPoll):
	}
	must(t, s.rdb.Del(ctx, s.gcKey()).Err())
	must(t, <-done)
	// GC lowers its own flag.
	_, err := s.GC(ctx, later())
	must(t, err)
	if n, _ := s.rdb.Exists(ctx, s.gcKey()).Result(); n != 0 {
		t.Error("GC left its flag")
	}
	must(t, s.EndImport(ctx, l))
}

func TestParseKeys(t *testing.T) {
	d := manifest.Sum([]byte("x"))
	if got, ok := parseBlobKey(BlobKey(d)); !ok || got != d {
		t.Errorf("parseBlobKey(BlobKey) = %s, %v", got, ok)
	}
	if got, ok := parseManifestKey(ManifestKey(d)); !ok || got != d {
		t.Errorf("parseManifestKey(ManifestKey) = %s, %v", got, ok)
	}
	k := BlobKey(d)
	for _, bad := range []string{"blobs/sha256/zz/" + k[16:], k + "x", strings.ToUpper(k), "blobs/" + k[13:], "manifests/sha256/abc"} {
		if _, ok := parseBlobKey(bad); ok {
			t.Errorf("parseBlobKey(%q) accepted", bad)
		}
		if _, ok := parseManifestKey(bad); ok {
			t.Errorf("parseManifestKey(%q) accepted", bad)
		}
	}
}
