package store

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// version stores the blobs of files (path → content) and a manifest
// holding them, and returns its digest.
func version(t testing.TB, s *Store, files map[string]string) manifest.Digest {
	t.Helper()
	ctx := context.Background()
	m := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{{Path: ".", Type: manifest.TypeDir, Mode: 0o755}}}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		c := files[p]
		d := manifest.Sum([]byte(c))
		if _, err := s.PutBlob(ctx, d, strings.NewReader(c), int64(len(c))); err != nil {
			t.Fatal(err)
		}
		m.Entries = append(m.Entries, manifest.Entry{Path: p, Type: manifest.TypeFile, Mode: 0o644, Size: uint64(len(c)), Digest: d})
	}
	d, err := s.PutManifest(ctx, m)
	must(t, err)
	return d
}

func TestImagesAndBranches(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v1 := version(t, s, map[string]string{"a": "one"})
	v2 := version(t, s, map[string]string{"a": "two", "b": "new"})
	const img = "rocky 9 / ünïcode"
	must(t, s.Commit(ctx, img, "main", manifest.Digest{}, v1))
	must(t, s.Commit(ctx, "other", "main", manifest.Digest{}, v2))

	must(t, s.CreateBranch(ctx, img, "main", "test/x"))
	if err := s.CreateBranch(ctx, img, "main", "test/x"); !errors.Is(err, ErrExists) {
		t.Errorf("create an existing branch: %v", err)
	}
	if err := s.CreateBranch(ctx, img, "nope", "y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("create from a missing branch: %v", err)
	}
	if err := s.CreateBranch(ctx, "no image", "main", "y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("create on a missing image: %v", err)
	}
	if d, err := s.Branch(ctx, img, "test/x"); err != nil || d != v1 {
		t.Errorf("new branch = %s, %v; want %s", d, err, v1)
	}
	must(t, s.Commit(ctx, img, "test/x", v1, v2))

	// The live branch follows its rename, and cannot be deleted.
	must(t, s.RenameBranch(ctx, img, "main", "stable"))
	if live, _ := s.Live(ctx, img); live != "stable" {
		t.Errorf("live after rename = %q", live)
	}
	if err := s.RenameBranch(ctx, img, "stable", "test/x"); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto an existing branch: %v", err)
	}
	if err := s.DeleteBranch(ctx, img, "stable"); !errors.Is(err, ErrLiveBranch) {
		t.Errorf("delete the live branch: %v", err)
	}
	if err := s.SetLive(ctx, img, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("make a missing branch live: %v", err)
	}
	must(t, s.SetLive(ctx, img, "test/x"))
	must(t, s.DeleteBranch(ctx, img, "stable"))
	if _, err := s.History(ctx, img, "stable", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("history of a deleted branch: %v", err)
	}

	// Renaming the image keeps its id and branches; the old name is free.
	info, err := s.Image(ctx, img)
	must(t, err)
	if err := s.RenameImage(ctx, img, "other"); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto an existing image: %v", err)
	}
	must(t, s.RenameImage(ctx, img, "renamed"))
	if _, err := s.Image(ctx, img); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name: %v", err)
	}
	after, err := s.Image(ctx, "renamed")
	must(t, err)
	want := []BranchInfo{{"test/x", v2}}
	if after.ID != info.ID || after.Live != "test/x" || !slices.Equal(after.Branches, want) || after.Created.IsZero() || after.Updated.Before(after.Created) {
		t.Errorf("renamed image: %+v", after)
	}

	all, err := s.Images(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "other" || all[1].Name != "renamed" || all[0].Branches[0].Digest != v2 {
		t.Errorf("images: %+v", all)
	}

	must(t, s.DeleteImage(ctx, "renamed"))
	if _, err := s.Image(ctx, "renamed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted image: %v", err)
	}
	if n, _ := s.rdb.Keys(ctx, s.prefix+"image:"+info.ID+"*").Result(); len(n) != 0 {
		t.Errorf("deleted image left keys %q", n)
	}
	if all, _ := s.Images(ctx); len(all) != 1 {
		t.Errorf("images after delete: %+v", all)
	}
}

func TestNames(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v := version(t, s, map[string]string{"a": "x"})
	for _, ok := range []string{"a", "with space", "a/b/../c", "日本語", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName("image", ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "tab\there", "nl\n", "del\x7f", "c1\u0085", "\xff", strings.Repeat("x", MaxNameLen+1)} {
		var ne *NameError
		if err := CheckName("branch", bad); !errors.As(err, &ne) || ne.Kind != "branch" {
			t.Errorf("CheckName(%q) = %v", bad, err)
		}
		if err := s.Commit(ctx, "img", bad, manifest.Digest{}, v); !errors.As(err, &ne) {
			t.Errorf("commit to branch %q: %v", bad, err)
		}
	}
	must(t, s.Commit(ctx, "img", "main", manifest.Digest{}, v))
	var ne *NameError
	if err := s.CreateBranch(ctx, "img", "main", ""); !errors.As(err, &ne) {
		t.Errorf("create branch \"\": %v", err)
	}
	if err := s.RenameImage(ctx, "img", "a\x00b"); !errors.As(err, &ne) {
		t.Errorf("rename image to a NUL: %v", err)
	}
}

func TestHistoryAndRollback(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v1 := version(t, s, map[string]string{"a": "1", "b": "1"})
	v2 := version(t, s, map[string]string{"a": "2", "b": "1", "c": "new"})
	v3 := version(t, s, map[string]string{"a": "3"})
	stranger := version(t, s, map[string]string{"z": "z"})

	must(t, s.CommitWith(ctx, "img", "main", manifest.Digest{}, v1, CommitInfo{User: "alice", Message: "import rocky"}))
	must(t, s.CommitWith(ctx, "img", "main", v1, v2, CommitInfo{User: "bob", Message: "dnf install c"}))
	must(t, s.Commit(ctx, "img", "main", v2, v3))

	h, err := s.History(ctx, "img", "main", 0)
	must(t, err)
	if len(h) != 3 {
		t.Fatalf("history: %+v", h)
	}
	if h[0].Digest != v3 || h[0].Previous != v2 || h[0].Kind != KindCommit || h[0].Removed != 2 || h[0].Changed != 1 {
		t.Errorf("newest: %+v", h[0])
	}
	if h[1].User != "bob" || h[1].Message != "dnf install c" || h[1].Added != 1 || h[1].Changed != 1 || h[1].Removed != 0 || h[1].Time.IsZero() {
		t.Errorf("second: %+v", h[1])
	}
	if h[2].Digest != v1 || !h[2].Previous.IsZero() || h[2].Added != 3 || h[2].User != "alice" {
		t.Errorf("first: %+v", h[2])
	}
	if h2, _ := s.History(ctx, "img", "main", 2); len(h2) != 2 || h2[0] != h[0] {
		t.Errorf("limit 2: %+v", h2)
	}

	// A version never on the branch is refused; v1 is taken back.
	if err := s.Rollback(ctx, "img", "main", stranger, CommitInfo{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("rollback to a stranger: %v", err)
	}
	must(t, s.Rollback(ctx, "img", "main", v1, CommitInfo{User: "carol", Message: "broke ssh"}))
	if d, _ := s.Branch(ctx, "img", "main"); d != v1 {
		t.Errorf("after rollback: %s", d)
	}
	h, err = s.History(ctx, "img", "main", 0)
	must(t, err)
	if len(h) != 4 || h[0].Kind != KindRollback || h[0].Digest != v1 || h[0].Previous != v3 || h[0].User != "carol" || h[0].Added != 1 || h[0].Changed != 1 {
		t.Errorf("rollback record: %+v", h[0])
	}
	// The rollback can be rolled back: v3 is still in the history.
	must(t, s.Rollback(ctx, "img", "main", v3, CommitInfo{}))

	// A branch carries its history through a rename; a new branch starts
	// its own with where it came from.
	must(t, s.CreateBranch(ctx, "img", "main", "test"))
	ht, err := s.History(ctx, "img", "test", 0)
	must(t, err)
	if len(ht) != 1 || ht[0].Kind != KindBranch || ht[0].From != "main" || ht[0].Digest != v3 {
		t.Errorf("new branch history: %+v", ht)
	}
	if err := s.Rollback(ctx, "img", "test", v2, CommitInfo{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("rollback of a new branch to its source's past: %v", err)
	}
	must(t, s.RenameBranch(ctx, "img", "main", "prod"))
	hp, err := s.History(ctx, "img", "prod", 0)
	must(t, err)
	if len(hp) != 5 {
		t.Errorf("renamed branch history: %d records", len(hp))
	}
}

func TestAlsoRunsInTheMoveTransaction(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v1 := version(t, s, map[string]string{"a": "1"})
	v2 := version(t, s, map[string]string{"a": "2"})
	audit := s.prefix + "audit"
	event := func(msg string) Options {
		return Options{Also: func(p redis.Pipeliner) {
			p.XAdd(ctx, &redis.XAddArgs{Stream: audit, Values: []string{"msg", msg}})
		}}
	}
	must(t, s.CommitWith(ctx, "img", "main", manifest.Digest{}, v1, CommitInfo{}, event("create")))
	must(t, s.CommitWith(ctx, "img", "main", v1, v2, CommitInfo{}, event("commit")))
	// Refused moves write no event.
	if err := s.CommitWith(ctx, "img", "main", v1, v2, CommitInfo{}, event("stale")); !errors.Is(err, ErrConflict) {
		t.Errorf("stale commit: %v", err)
	}
	if err := s.DeleteBranch(ctx, "img", "main", event("delete live")); !errors.Is(err, ErrLiveBranch) {
		t.Errorf("delete live: %v", err)
	}
	must(t, s.CreateBranch(ctx, "img", "main", "b", event("branch")))
	must(t, s.Rollback(ctx, "img", "main", v1, CommitInfo{}, event("rollback")))
	must(t, s.SetLive(ctx, "img", "b", event("live")))
	msgs, err := s.rdb.XRange(ctx, audit, "-", "+").Result()
	must(t, err)
	var got []string
	for _, m := range msgs {
		got = append(got, m.Values["msg"].(string))
	}
	if want := []string{"create", "commit", "branch", "rollback", "live"}; !slices.Equal(got, want) {
		t.Errorf("audit events %q, want %q", got, want)
	}
}

// TestConcurrentMovesRefused races branch operations that cannot all
// succeed: exactly one of each pair wins.
func TestConcurrentMovesRefused(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	v := version(t, s, map[string]string{"a": "1"})
	must(t, s.Commit(ctx, "img", "main", manifest.Digest{}, v))
	for round := range 5 {
		to := "b" + string(rune('0'+round))
		var wg sync.WaitGroup
		var errs [4]error
		for i := range errs {
			wg.Go(func() { errs[i] = s.CreateBranch(ctx, "img", "main", to) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrExists) && !errors.Is(err, ErrConflict):
				t.Fatal(err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d creators of %q won: %v", round, won, to, errs)
		}
	}
}

func TestImportDirWithRecordsWho(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	d := t.TempDir()
	must(t, os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644))
	r, err := s.ImportDirWith(ctx, "img", "main", d, CommitInfo{User: "alice", Message: "import"})
	must(t, err)
	h, err := s.History(ctx, "img", "main", 0)
	must(t, err)
	if len(h) != 1 || h[0].User != "alice" || h[0].Digest != r.Manifest || h[0].Added != 2 {
		t.Errorf("history: %+v", h)
	}
	if n, _ := s.rdb.ZCard(ctx, s.importsKey()).Result(); n != 0 {
		t.Errorf("%d import leases left", n)
	}
}
