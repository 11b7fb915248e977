package sync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

func TestSyncIntoEmptyDirectory(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst := t.TempDir(), t.TempDir()
		buildTree(t, src)
		want := e.importTree(t, src)

		p, st := e.sync(t, want, dst, Policy{})
		checkSame(t, want, dst)
		// Every distinct blob once: same-a and same-b share one, the second is
		// copied locally; the hardlinks are links, not copies.
		_, got := e.f.reset()
		for d, n := range got {
			if n != 1 {
				t.Errorf("blob %s fetched %d times", d, n)
			}
		}
		if st.FetchedBlobs != p.FetchBlobs || st.FetchedBytes != p.FetchBytes || st.CopiedBytes < uint64(len("same content")) {
			t.Errorf("stats %+v; plan fetch %d blobs %d bytes", st, p.FetchBlobs, p.FetchBytes)
		}
		var sst unix.Stat_t
		must(t, unix.Stat(filepath.Join(dst, "sparse"), &sst))
		if used := sst.Blocks * 512; used > 1<<20 {
			t.Errorf("sparse file of %d bytes uses %d bytes on disk: written dense", sst.Size, used)
		}

		// Synced again: nothing to do, nothing fetched, still complete.
		again, err := Plan(context.Background(), want, dst, Policy{})
		must(t, err)
		if !again.Empty() || again.Hashed != 0 || !strings.Contains(again.String(), "nothing to do") {
			t.Errorf("second plan is not empty:\n%s", again.String())
		}
		always, err := Plan(context.Background(), want, dst, Policy{Verify: VerifyAlways})
		must(t, err)
		if !always.Empty() || always.Hashed == 0 {
			t.Errorf("verify-always plan: hashed %d files, plan:\n%s", always.Hashed, always.String())
		}
	})
}

// change rewrites n of the many files (d.., f...) with new content of the
// same size and returns their paths.
func change(t *testing.T, src string, idx []int) []string {
	var paths []string
	for _, i := range idx {
		p := fmt.Sprintf("d%02d/f%05d", i%20, i)
		full := filepath.Join(src, p)
		b, err := os.ReadFile(full)
		must(t, err)
		for j := range b {
			b[j] ^= 0x5a
		}
		must(t, os.WriteFile(full, b, 0o644))
		paths = append(paths, p)
	}
	return paths
}

func TestSyncFetchesOnlyChanges(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst := t.TempDir(), t.TempDir()
		const n = 300
		manyFiles(t, src, n, 1)
		big := make([]byte, 6<<20)
		rand.NewChaCha8([32]byte{9}).Read(big)
		must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
		want := e.importTree(t, src)
		e.sync(t, want, dst, Policy{})
		checkSame(t, want, dst)
		e.f.reset()

		for _, tc := range []struct {
			name    string
			percent int
		}{{"0%", 0}, {"1%", 1}, {"10%", 10}} {
			t.Run(tc.name, func(t *testing.T) {
				var idx []int
				for i := 0; i < n*tc.percent/100; i++ {
					idx = append(idx, (i*37+tc.percent)%n)
				}
				changed := change(t, src, idx)
				want := e.importTree(t, src)
				p, st := e.sync(t, want, dst, Policy{})
				checkSame(t, want, dst)
				fetches, got := e.f.reset()
				if fetches != len(changed) || p.FetchBlobs != len(changed) || st.Written != len(changed) {
					t.Errorf("changed %d files: fetched %d, planned %d, wrote %d\n%s", len(changed), fetches, p.FetchBlobs, st.Written, p.String())
				}
				byPath := map[string]*manifest.Entry{}
				for i := range want.Entries {
					byPath[want.Entries[i].Path] = &want.Entries[i]
				}
				for _, c := range changed {
					if got[byPath[c].Digest] != 1 {
						t.Errorf("%s: its new content was fetched %d times", c, got[byPath[c].Digest])
					}
				}
				if len(changed) == 0 && !p.Empty() {
					t.Errorf("no change, plan:\n%s", p.String())
				}
			})
		}

		t.Run("chunked file edited in the middle", func(t *testing.T) {
			copy(big[3<<20:], "an edit in the middle of a big file")
			must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
			want := e.importTree(t, src)
			var chunks int
			for _, en := range want.Entries {
				if en.Path == "big" {
					chunks = len(en.Chunks)
				}
			}
			p, st := e.sync(t, want, dst, Policy{})
			checkSame(t, want, dst)
			fetches, _ := e.f.reset()
			if chunks < 10 || fetches == 0 || fetches > 2 || st.CopiedBytes < 4<<20 {
				t.Errorf("big file of %d chunks: fetched %d, copied %d bytes locally\n%s", chunks, fetches, st.CopiedBytes, p.String())
			}
		})
	})
}

func TestVerifyPolicies(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "a"), []byte("original"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "b"), []byte("unchanged"), 0o644))
	want := e.importTree(t, src)
	e.sync(t, want, dst, Policy{})
	ctx := context.Background()
	mtime := func(p string) unix.Timespec {
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		return st.Mtim
	}
	// Same size, same mtime, other content: only "always" sees it.
	a := filepath.Join(dst, "a")
	ts := mtime(a)
	must(t, os.WriteFile(a, []byte("tampered"), 0o644))
	must(t, unix.UtimesNano(a, []unix.Timespec{ts, ts}))
	// Same content, other mtime: "unsure" hashes and fixes only the mtime.
	b := filepath.Join(dst, "b")
	must(t, unix.UtimesNano(b, []unix.Timespec{{Sec: 1}, {Sec: 1}}))
	for _, tc := range []struct {
		v                 Verify
		hashed            int
		replace, metaOnly []string
	}{
		{VerifyNever, 0, []string{"b"}, nil},
		{VerifyUnsure, 1, nil, []string{"b"}},
		{VerifyAlways, 2, []string{"a"}, []string{"b"}},
	} {
		p, err := Plan(ctx, want, dst, Policy{Verify: tc.v})
		must(t, err)
		var rep, meta []string
		for _, it := range p.Replace {
			rep = append(rep, it.Entry.Path)
		}
		for _, it := range p.Meta {
			meta = append(meta, it.Entry.Path)
		}
		if p.Hashed != tc.hashed || !slices.Equal(rep, tc.replace) || !slices.Equal(meta, tc.metaOnly) {
			t.Errorf("%s: hashed %d, replace %q, meta %q; want %d, %q, %q", tc.v, p.Hashed, rep, meta, tc.hashed, tc.replace, tc.metaOnly)
		}
	}
	e.sync(t, want, dst, Policy{Verify: VerifyAlways})
	checkSame(t, want, dst)
	if v, err := ParseVerify("always"); err != nil || v != VerifyAlways {
		t.Errorf("ParseVerify(always) = %v, %v", v, err)
	}
	if _, err := ParseVerify("sometimes"); err == nil {
		t.Error("ParseVerify accepted sometimes")
	}
}

// TestHostileTree syncs over a tree that was changed in every awkward way
// and checks the result is exactly the image and nothing outside the root
// was touched.
func TestHostileTree(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
		buildTree(t, src)
		want := e.importTree(t, src)
		e.sync(t, want, dst, Policy{})
		must(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("do not touch"), 0o644))

		d := func(p string) string { return filepath.Join(dst, p) }
		must(t, os.Chmod(d("ro"), 0o755))
		// A file became a directory with content, and a directory a file.
		must(t, os.Remove(d("etc/conf")))
		must(t, os.MkdirAll(d("etc/conf/sub"), 0o755))
		must(t, os.WriteFile(d("etc/conf/sub/x"), []byte("x"), 0o644))
		must(t, os.RemoveAll(d("etc/ssh")))
		must(t, os.WriteFile(d("etc/ssh"), []byte("not a dir"), 0o644))
		// A directory became a symlink out of the root: nothing may be
		// written through it.
		must(t, os.RemoveAll(d("dev")))
		must(t, os.Symlink(outside, d("dev")))
		// A symlink became a directory.
		must(t, os.Remove(d("usr/sym")))
		must(t, os.Mkdir(d("usr/sym"), 0o700))
		// Symlink loops, and a symlink where a file should be pointing out.
		must(t, os.Symlink("loop2", d("loop1")))
		must(t, os.Symlink("loop1", d("loop2")))
		must(t, os.Symlink("self", d("self")))
		must(t, os.Remove(d("owned")))
		must(t, os.Symlink(filepath.Join(outside, "victim"), d("owned")))
		// The hardlink set split, and a foreign link into another.
		must(t, os.Remove(d("lib/two")))
		must(t, os.WriteFile(d("lib/two"), []byte("linked three times"), 0o644))
		must(t, os.Link(d("same-a"), d("stray-link")))
		// Metadata: setuid dropped, capability gone, owner and xattr changed.
		must(t, unix.Chmod(d("usr/bin/su"), 0o755))
		must(t, unix.Removexattr(d("usr/bin/ping"), "security.capability"))
		must(t, os.Lchown(d("etc/shadow"), 99, 99))
		must(t, unix.Setxattr(d("same-b"), "user.extra", []byte("x"), 0))
		// Read-only file with other content; a fifo that became a file.
		must(t, os.WriteFile(d("ro/file"), []byte("changed!"), 0o444))
		must(t, os.Remove(d("fifo")))
		must(t, os.WriteFile(d("fifo"), nil, 0o620))
		must(t, os.WriteFile(d(tempPrefix+"leftover"), []byte("from a killed run"), 0o600))
		must(t, os.Chmod(d("ro"), 0o555))

		p, _ := e.sync(t, want, dst, Policy{})
		checkSame(t, want, dst)
		if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "do not touch" {
			t.Errorf("file outside the root: %q, %v", b, err)
		}
		if names, _ := os.ReadDir(outside); len(names) != 1 {
			t.Errorf("something was written outside the root: %v", names)
		}
		for _, r := range []string{"loop1", "loop2", "self", "stray-link", "etc/ssh", "dev", tempPrefix + "leftover"} {
			if !slices.Contains(p.Remove, r) {
				t.Errorf("plan does not remove %q:\n%s", r, p.String())
			}
		}

		// The image itself turns a file into a directory and back.
		must(t, os.Remove(filepath.Join(src, "etc/conf")))
		must(t, os.MkdirAll(filepath.Join(src, "etc/conf/d"), 0o755))
		must(t, os.WriteFile(filepath.Join(src, "etc/conf/d/x"), []byte("now a dir"), 0o644))
		asDir := e.importTree(t, src)
		e.sync(t, asDir, dst, Policy{})
		checkSame(t, asDir, dst)
		e.sync(t, want, dst, Policy{})
		checkSame(t, want, dst)
	})
}

func TestPreserve(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst := t.TempDir(), t.TempDir()
		must(t, os.MkdirAll(filepath.Join(src, "etc/ssh"), 0o755))
		must(t, os.WriteFile(filepath.Join(src, "etc/ssh/sshd_config"), []byte("x"), 0o644))
		want := e.importTree(t, src)
		for _, p := range []string{"var/log/messages", "var/log/apt/history.log", "var/cache/junk", "home/u/.bashrc",
			"etc/ssh/ssh_host_ed25519_key", "etc/ssh/other", "etc/junk"} {
			must(t, os.MkdirAll(filepath.Join(dst, filepath.Dir(p)), 0o755))
			must(t, os.WriteFile(filepath.Join(dst, p), []byte(p), 0o600))
		}
		pol := Policy{Preserve: []string{"/var/log/**", "/home/**", "/etc/ssh/ssh_host_*"}}
		p, _ := e.sync(t, want, dst, pol)
		slices.Sort(p.Remove)
		slices.Sort(p.Kept)
		if !slices.Equal(p.Remove, []string{"etc/junk", "etc/ssh/other", "var/cache"}) ||
			!slices.Equal(p.Kept, []string{"etc/ssh/ssh_host_ed25519_key", "home", "var/log"}) {
			t.Errorf("remove %q, kept %q", p.Remove, p.Kept)
		}
		for _, keep := range []string{"var/log/apt/history.log", "home/u/.bashrc", "etc/ssh/ssh_host_ed25519_key"} {
			if _, err := os.Stat(filepath.Join(dst, keep)); err != nil {
				t.Errorf("preserved %s: %v", keep, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dst, "var/cache")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("var/cache not removed: %v", err)
		}
		if _, err := Plan(context.Background(), want, dst, Policy{Preserve: []string{"var/log"}}); err == nil {
			t.Error("a relative preserve glob was accepted")
		}
	})
}

// TestOwnedFiles: files the plugins own keep the node's content though the
// image has them, and one that is missing is made from the image.
func TestOwnedFiles(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst := t.TempDir(), t.TempDir()
		must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
		for _, f := range []string{"etc/hosts", "etc/hostname", "etc/motd"} {
			must(t, os.WriteFile(filepath.Join(src, f), []byte("image's "+f), 0o644))
		}
		want := e.importTree(t, src)
		e.sync(t, want, dst, Policy{})
		must(t, os.WriteFile(filepath.Join(dst, "etc/hosts"), []byte("the plugin's hosts"), 0o644))
		must(t, os.Remove(filepath.Join(dst, "etc/hostname")))
		must(t, os.WriteFile(filepath.Join(dst, "etc/motd"), []byte("drifted"), 0o644))

		p, _ := e.sync(t, want, dst, Policy{Owned: []string{"/etc/hosts", "/etc/hostname"}})
		if !slices.Contains(p.Kept, "etc/hosts") {
			t.Errorf("kept %q, want etc/hosts among them", p.Kept)
		}
		for f, content := range map[string]string{"etc/hosts": "the plugin's hosts", "etc/hostname": "image's etc/hostname", "etc/motd": "image's etc/motd"} {
			b, err := os.ReadFile(filepath.Join(dst, f))
			if err != nil || string(b) != content {
				t.Errorf("%s: %q %v, want %q", f, b, err, content)
			}
		}
		if !Complete(dst, p.Target) {
			t.Error("a root whose only difference is an owned file is not complete")
		}
	})
}

func TestPreserveGlobs(t *testing.T) {
	p, err := newPreserver([]string{"/var/log/**", "/etc/ssh/ssh_host_*", "/srv/**/keep"})
	must(t, err)
	for _, tc := range []struct {
		path        string
		keep, below bool
	}{
		{"var", false, true},
		{"var/log", true, true},
		{"var/log/a/b", true, true},
		{"var/lib", false, false},
		{"etc/ssh/ssh_host_rsa_key", true, false},
		{"etc/ssh", false, true},
		{"etc/ssh/sshd_config", false, false},
		{"srv/a/b/keep", true, true},
		{"srv/keep", true, true},
		{"srv/a", false, true},
		{"usr", false, false},
	} {
		if k, b := p.keep(tc.path), p.mayKeepBelow(tc.path); k != tc.keep || b != tc.below {
			t.Errorf("%s: keep %v, below %v; want %v, %v", tc.path, k, b, tc.keep, tc.below)
		}
	}
}

// TestResumeAfterKill cancels a sync part way and runs it again: files the
// first run finished are neither fetched nor hashed again, and the root is
// complete only at the end.
func TestResumeAfterKill(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	const n = 200
	manyFiles(t, src, n, 3)
	want := e.importTree(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	e.f.onOpen = func(k int) {
		if k == n/2 {
			cancel()
		}
	}
	p, err := Plan(ctx, want, dst, Policy{})
	must(t, err)
	st, err := Apply(ctx, p, dst, e.f, ApplyOptions{Workers: 4})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("apply after cancel: %v", err)
	}
	if Complete(dst, p.Target) {
		t.Fatal("complete after an interrupted sync")
	}
	if st.Written == 0 || st.Written >= n {
		t.Fatalf("interrupted run wrote %d of %d files", st.Written, n)
	}
	e.f.onOpen = nil
	e.f.reset()

	again, err := Plan(context.Background(), want, dst, Policy{Verify: VerifyAlways})
	must(t, err)
	if again.Hashed != 0 || again.FetchBlobs != n-st.Written {
		t.Errorf("after %d of %d files: hashed %d, to fetch %d", st.Written, n, again.Hashed, again.FetchBlobs)
	}
	st2, err := Apply(context.Background(), again, dst, e.f, ApplyOptions{})
	must(t, err)
	fetches, _ := e.f.reset()
	if fetches != n-st.Written || st2.Written != n-st.Written {
		t.Errorf("second run fetched %d and wrote %d, want %d", fetches, st2.Written, n-st.Written)
	}
	if !Complete(dst, again.Target) {
		t.Error("not complete after the second run")
	}
	checkSame(t, want, dst)
	if Complete(dst, manifest.Digest{1}) {
		t.Error("complete for another digest")
	}
}

func TestPlanRefusesBadManifests(t *testing.T) {
	dst := t.TempDir()
	for name, m := range map[string]*manifest.Manifest{
		"no root": {Version: 1, Entries: []manifest.Entry{{Path: "a", Type: manifest.TypeDir}}},
		"orphan":  {Version: 1, Entries: []manifest.Entry{{Path: ".", Type: manifest.TypeDir}, {Path: "a/b", Type: manifest.TypeDir}}},
		"journal": {Version: 1, Entries: []manifest.Entry{{Path: ".", Type: manifest.TypeDir}, {Path: JournalDir, Type: manifest.TypeDir}}},
	} {
		if _, err := Plan(context.Background(), m, dst, Policy{}); err == nil {
			t.Errorf("%s: planned", name)
		}
	}
}

// TestSyncOverRootWithoutJournal syncs over a copy of the image's tree that
// herd never synced (no journal yet) with a change only below the root:
// making the journal directory moves the root's mtime, which Apply must
// set back, or its own check fails.
func TestSyncOverRootWithoutJournal(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src := t.TempDir()
		manyFiles(t, src, 40, 3)
		must(t, os.WriteFile(filepath.Join(src, "d01", "f00001"), []byte("new content"), 0o644))
		want := e.importTree(t, src)
		dst := filepath.Join(t.TempDir(), "root")
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		must(t, os.WriteFile(filepath.Join(dst, "d02", "f00002"), []byte("drifted"), 0o644))
		p, _ := e.sync(t, want, dst, Policy{})
		if len(p.Replace) != 1 || slices.ContainsFunc(p.dirs, func(e *manifest.Entry) bool { return e.Path == "." }) {
			t.Fatalf("plan should replace one file below the root and leave the root alone:\n%s", p.String())
		}
		checkSame(t, want, dst)
	})
}

// TestApplyEmptyPlanOverCompleteRoot checks the fast path every unchanged
// boot takes: nothing in the journal is rewritten, and the root stays
// complete; a root that is not marked complete is marked.
func TestApplyEmptyPlanOverCompleteRoot(t *testing.T) {
	bothWays(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		needRoot(t)
		e := newEnv(t)
		src, dst := t.TempDir(), t.TempDir()
		manyFiles(t, src, 20, 4)
		want := e.importTree(t, src)
		e.sync(t, want, dst, Policy{})
		marker := filepath.Join(dst, JournalDir, journalComplete)
		var before unix.Stat_t
		must(t, unix.Stat(marker, &before))
		p, _ := e.sync(t, want, dst, Policy{})
		var after unix.Stat_t
		must(t, unix.Stat(marker, &after))
		if !p.Empty() || after.Ino != before.Ino || after.Mtim != before.Mtim {
			t.Errorf("an empty plan over a complete root rewrote the marker (inode %d→%d); plan:\n%s", before.Ino, after.Ino, p.String())
		}
		must(t, os.Remove(marker))
		if p, _ := e.sync(t, want, dst, Policy{}); !p.Empty() {
			t.Errorf("plan:\n%s", p.String())
		}
	})
}

// TestCheckAppliedFindsDifferences gives Apply's read-back check paths
// that do not match what the plan made of them.
func TestCheckAppliedFindsDifferences(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	manyFiles(t, src, 3, 5)
	want := e.importTree(t, src)
	e.sync(t, want, dst, Policy{})
	tr, err := openTree(dst)
	must(t, err)
	defer tr.close()
	var file *manifest.Entry
	for i := range want.Entries {
		if want.Entries[i].Type == manifest.TypeFile {
			file = &want.Entries[i]
			break
		}
	}
	plan := SyncPlan{Want: want, Meta: []Item{{Entry: file}}}
	must(t, checkApplied(tr, &plan, true))
	must(t, os.Chmod(filepath.Join(dst, file.Path), 0o600))
	if err := checkApplied(tr, &plan, false); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("a file of another mode passed the check: %v", err)
	}
	removed := SyncPlan{Want: want, Remove: []string{file.Path}}
	if err := checkApplied(tr, &removed, false); err == nil {
		t.Error("a path the plan removed is still there, and the check passed")
	}
	must(t, os.Remove(filepath.Join(dst, file.Path)))
	must(t, checkApplied(tr, &removed, false))
	if err := checkApplied(tr, &plan, false); err == nil {
		t.Error("a missing file passed the check")
	}
}
