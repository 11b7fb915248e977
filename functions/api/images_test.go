package api_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/push"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// withImages gives the env's API an image store on a fresh bucket, and
// returns the bucket.
func withImages(t *testing.T, e *env) *objstore.Store {
	t.Helper()
	obj := testenv.Objects(t)
	rdb, prefix := e.st.Redis()
	e.api.Images = imgstore.New(obj, rdb, prefix)
	return obj
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantStatus(t *testing.T, err error, status int, contains string) {
	t.Helper()
	var p *client.Error
	if !errors.As(err, &p) || p.Status != status {
		t.Fatalf("got %v, want a %d problem", err, status)
	}
	if !strings.Contains(p.Detail, contains) {
		t.Errorf("problem %q does not say %q", p.Detail, contains)
	}
}

// TestImageLifecycle drives images through the API as the CLI does: push
// a tree and commit it, commit a change on top, refuse a stale commit, list
// history and diff, branch, rename, set live, roll back, and refuse what
// would break nodes or lose data.
func TestImageLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withImages(t, e)
	c := client.New(e.srv.URL, e.admin, nil)
	const name = "Debian 12 / compute nodes"

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etc/hostname"), "template\n")
	writeFile(t, filepath.Join(dir, "etc/motd"), "welcome\n")
	_, r1, err := push.Dir(ctx, c, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c.Commit(ctx, name, "main", manifest.Digest{}, r1.Manifest, "import")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Added != 4 { // ".", etc, etc/hostname, etc/motd
		t.Errorf("first commit added %d paths, want 4", reply.Added)
	}
	im, err := c.Image(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if im.Live != "main" || len(im.Branches) != 1 || im.Branches[0].Version != r1.Manifest.String() {
		t.Fatalf("image after first commit: %+v", im)
	}

	writeFile(t, filepath.Join(dir, "etc/motd"), "welcome to the cluster\n")
	_, r2, err := push.Dir(ctx, c, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r2.BlobsUploaded != 1 {
		t.Errorf("changing one file sent %d blobs", r2.BlobsUploaded)
	}
	if _, err := c.Commit(ctx, name, "main", r1.Manifest, r2.Manifest, "motd"); err != nil {
		t.Fatal(err)
	}
	// A second editor who also started from r1 is refused, not merged.
	_, err = c.Commit(ctx, name, "main", r1.Manifest, r1.Manifest, "stale")
	wantStatus(t, err, http.StatusConflict, "moved")

	events, err := e.st.Audit(ctx, store.AuditQuery{Kind: "image"})
	if err != nil {
		t.Fatal(err)
	}
	var commit *model.AuditEvent
	for i, ev := range events.Items {
		if ev.Method == "commit" && ev.Extras["changed"] == "1" {
			commit = &events.Items[i]
		}
	}
	if commit == nil || commit.User != "alice" || commit.Extras["changed_paths"] != "etc/motd" {
		t.Fatalf("audit of the second commit: %+v", commit)
	}

	hist, err := c.History(ctx, name, "main", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Version != r2.Manifest.String() || hist[0].Previous != r1.Manifest.String() || hist[0].Changed != 1 {
		t.Fatalf("history: %+v", hist)
	}
	d, err := c.Diff(ctx, name, r1.Manifest.String(), "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changed) != 1 || d.Changed[0].Path != "etc/motd" || !strings.Contains(d.Changed[0].What, "content") {
		t.Fatalf("diff: %+v", d)
	}

	if _, err := c.CreateBranch(ctx, name, model.BranchRequest{Name: "testing"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateBranch(ctx, name, model.BranchRequest{Name: "testing"})
	wantStatus(t, err, http.StatusConflict, "exists")
	if _, err := c.PatchImage(ctx, name, model.ImagePatch{Live: "testing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RenameBranch(ctx, name, "testing", "stable"); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteBranch(ctx, name, "stable")
	wantStatus(t, err, http.StatusConflict, "live")

	// A node pinning a branch keeps it from being deleted.
	if _, err := c.CreateNode(ctx, model.Node{Name: "node001", Settings: model.Settings{Image: name, Branch: "main"}}); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteBranch(ctx, name, "main")
	wantStatus(t, err, http.StatusConflict, "node node001")

	if _, err := c.Rollback(ctx, name, "main", r1.Manifest, "motd was wrong"); err != nil {
		t.Fatal(err)
	}
	if im, err = c.Image(ctx, name); err != nil {
		t.Fatal(err)
	}
	for _, b := range im.Branches {
		if b.Name == "main" && b.Version != r1.Manifest.String() {
			t.Errorf("main after rollback points at %s, want %s", b.Version, r1.Manifest)
		}
	}

	// A rename would leave node001 naming an image that is gone.
	_, err = c.PatchImage(ctx, name, model.ImagePatch{Name: "rocky/9 ✓"})
	wantStatus(t, err, http.StatusConflict, "node node001")
	if err := c.DeleteNode(ctx, "node001", 0); err != nil {
		t.Fatal(err)
	}
	// Names with slashes travel as one path segment.
	if _, err := c.PatchImage(ctx, name, model.ImagePatch{Name: "rocky/9 ✓"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Image(ctx, "rocky/9 ✓"); err != nil {
		t.Fatal(err)
	}
}

// TestImageBadInput: what would store a broken or forged version is refused
// and changes nothing.
func TestImageBadInput(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withImages(t, e)
	c := client.New(e.srv.URL, e.admin, nil)

	// A blob whose content is not its digest.
	d := manifest.Sum([]byte("the real content"))
	_, err := c.PutBlob(ctx, d, strings.NewReader("forged content!!"), int64(len("forged content!!")))
	wantStatus(t, err, http.StatusUnprocessableEntity, "not the blob")
	if miss, err := c.Missing(ctx, []manifest.Digest{d}); err != nil || len(miss) != 1 {
		t.Fatalf("after a refused upload: missing %v, %v", miss, err)
	}

	// A version whose content was never uploaded cannot become a branch.
	m := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{
		{Path: ".", Type: manifest.TypeDir, Mode: 0o755},
		{Path: "file", Type: manifest.TypeFile, Mode: 0o644, Size: 16, Digest: d},
	}}
	v, err := c.PutManifest(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Commit(ctx, "img", "main", manifest.Digest{}, v, "")
	wantStatus(t, err, http.StatusUnprocessableEntity, "blobs the store lacks")
	if _, err := c.Image(ctx, "img"); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("a refused first commit left an image: %v", err)
	}

	// Read-only users read but do not write.
	ro := client.New(e.srv.URL, e.readonly, nil)
	_, err = ro.Commit(ctx, "img", "main", manifest.Digest{}, v, "")
	wantStatus(t, err, http.StatusForbidden, "cannot change anything")
	if _, err := ro.Images(ctx); err != nil {
		t.Errorf("read-only list: %v", err)
	}

	// Names: no control characters.
	_, err = c.Commit(ctx, "bad\x07name", "main", manifest.Digest{}, v, "")
	wantStatus(t, err, http.StatusUnprocessableEntity, "control character")
}

// TestImportLease: an import through the API holds a GC lease from its
// first request until its commit, and the commit ends it.
func TestImportLease(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withImages(t, e)
	c := client.New(e.srv.URL, e.admin, nil)
	rdb, prefix := e.st.Redis()
	leases := func() int64 {
		n, err := rdb.ZCard(ctx, prefix+"image:imports").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etc/motd"), "hello\n")
	imp, err := c.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := push.Dir(ctx, imp, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := leases(); n != 1 {
		t.Fatalf("%d leases while the import runs, want 1", n)
	}
	pins, err := rdb.SCard(ctx, prefix+"image:imports:"+imp.Lease+":pins").Result()
	if err != nil || pins < 2 { // the file's blob and the manifest
		t.Fatalf("%d pins for the import (%v)", pins, err)
	}
	if _, err := imp.Commit(ctx, "leased", "main", manifest.Digest{}, r.Manifest, ""); err != nil {
		t.Fatal(err)
	}
	if n := leases(); n != 0 {
		t.Errorf("%d leases after the commit, want 0", n)
	}
	_, err = c.Missing(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := e.problemOf("POST", "/blobs/missing", e.admin, `{"digests":[],"lease":"not-a-lease"}`, 400)
	if p.Type == "" || !strings.Contains(p.Detail, "not-a-lease") {
		t.Errorf("bad lease: %+v", p)
	}
}

// TestBootFilesFollowTheBranch: a commit publishes the branch's kernel; a
// renamed branch's files move with it; a deleted image's files go.
func TestBootFilesFollowTheBranch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	obj := withImages(t, e)
	c := client.New(e.srv.URL, e.admin, nil)
	exists := func(key string) bool {
		_, err := obj.Stat(ctx, key)
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "boot/vmlinuz-6.1.0-1-amd64"), "a kernel")
	writeFile(t, filepath.Join(dir, "lib/modules/6.1.0-1-amd64/modules.dep"), "")
	writeFile(t, filepath.Join(dir, "lib/modules/6.1.0-1-amd64/kernel/fs/ext4/ext4.ko"), "module")
	imp, err := c.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := push.Dir(ctx, imp, dir, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := imp.Commit(ctx, "deb", "main", manifest.Digest{}, r.Manifest, "")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Kernel != "6.1.0-1-amd64" || reply.Note != "" {
		t.Fatalf("commit reply %+v", reply)
	}
	if !exists(imgstore.ArtifactKey("deb", "main", "kernel")) || !exists(imgstore.ArtifactKey("deb", "main", "modules")) {
		t.Fatal("the commit published no kernel")
	}
	if _, err := c.CreateBranch(ctx, "deb", model.BranchRequest{Name: "testing"}); err != nil {
		t.Fatal(err)
	}
	if !exists(imgstore.ArtifactKey("deb", "testing", "kernel")) {
		t.Error("a new branch got no boot files")
	}
	if _, err := c.RenameBranch(ctx, "deb", "main", "stable"); err != nil {
		t.Fatal(err)
	}
	if exists(imgstore.ArtifactKey("deb", "main", "kernel")) || !exists(imgstore.ArtifactKey("deb", "stable", "kernel")) {
		t.Error("boot files did not follow the branch rename")
	}
	if err := c.DeleteImage(ctx, "deb"); err != nil {
		t.Fatal(err)
	}
	if exists(imgstore.ArtifactKey("deb", "stable", "kernel")) {
		t.Error("boot files of a deleted image are still there")
	}
}
