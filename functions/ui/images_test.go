package ui_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/ui"
)

// kernelVer is the kernel the test images carry.
const kernelVer = "6.1.0-28-amd64"

// tree writes files (path → content) under a fresh directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bootable is a small root with a kernel, its initrd and two modules.
func bootable(extra map[string]string) map[string]string {
	files := map[string]string{
		"boot/vmlinuz-" + kernelVer:                                    strings.Repeat("k", 3000),
		"boot/initrd.img-" + kernelVer:                                 "initrd",
		"lib/modules/" + kernelVer + "/kernel/drivers/net/e1000.ko":    "e1000",
		"lib/modules/" + kernelVer + "/kernel/drivers/block/virtio.ko": "virtio",
		"etc/hostname": "image",
	}
	for p, c := range extra {
		files[p] = c
	}
	return files
}

// importImage commits files as a new version of image's branch and
// returns the version.
func (e *env) importImage(image, branch string, files map[string]string) manifest.Digest {
	e.t.Helper()
	res, err := e.images.ImportDir(context.Background(), image, branch, tree(e.t, files))
	if err != nil {
		e.t.Fatalf("import %s@%s: %v", image, branch, err)
	}
	return res.Manifest
}

// imageEvents returns the image audit events, newest first.
func (e *env) imageEvents() []model.AuditEvent {
	e.t.Helper()
	page, err := e.st.Audit(context.Background(), store.AuditQuery{Kind: "image"})
	if err != nil {
		e.t.Fatal(err)
	}
	return page.Items
}

// wantEvent fails unless the newest image event has this method, user and
// message.
func (e *env) wantEvent(method, user, msg string) model.AuditEvent {
	e.t.Helper()
	evs := e.imageEvents()
	if len(evs) == 0 {
		e.t.Fatalf("no image audit event, want %s %q", method, msg)
	}
	ev := evs[0]
	if ev.Method != method || ev.User != user || ev.Msg != msg {
		e.t.Errorf("audit event %s by %s %q, want %s by %s %q", ev.Method, ev.User, ev.Msg, method, user, msg)
	}
	return ev
}

// flash follows a 303 and returns the page it lands on.
func (e *env) follow(c *http.Client, res answer) answer {
	e.t.Helper()
	if res.status != http.StatusSeeOther {
		e.t.Fatalf("status %d, want 303\n%s", res.status, res.body)
	}
	return e.get(c, res.header.Get("Location"))
}

func short(d manifest.Digest) string { return strings.TrimPrefix(d.String(), "sha256:")[:12] }

func TestImagesPages(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	const name = "rocky 9/hpc"
	v1 := e.importImage(name, "main", bootable(nil))
	e.importImage("bare", "main", map[string]string{"etc/hostname": "bare"})

	res := e.get(c, "/images")
	if res.status != http.StatusOK {
		t.Fatalf("GET /images: status %d", res.status)
	}
	wantContains(t, res.body, `href="/images"`, ">Images<", `href="/images/rocky%209%2Fhpc"`, "rocky 9/hpc",
		`href="/images/bare"`, short(v1), `aria-current="page"`)

	res = e.get(c, components.ImageURL(name))
	if res.status != http.StatusOK {
		t.Fatalf("GET %s: status %d\n%s", components.ImageURL(name), res.status, res.body)
	}
	wantContains(t, res.body, "<h1>rocky 9/hpc</h1>", `data-branch="main"`, "live</span>", short(v1),
		kernelVer, "/boot/vmlinuz-"+kernelVer, "2.9 KiB", "/boot/initrd.img-"+kernelVer,
		`action="/images/rocky%209%2Fhpc/branches"`, "Create branch", "No group or node boots this image.",
		`href="/images/rocky%209%2Fhpc/branches/main/history"`)
	if !strings.Contains(res.body, `<td class="num">2</td>`) {
		t.Errorf("the kernel row does not count 2 modules:\n%s", res.body)
	}
	if strings.Contains(res.body, "No kernel") {
		t.Error("a bootable image is said to have no kernel")
	}

	res = e.get(c, "/images/bare")
	wantContains(t, res.body, "No kernel: nodes cannot boot this image")

	for _, path := range []string{"/images/nothing", "/images/bare/branches/nope/history", "/images/nothing/diff?from=a&to=b"} {
		if res := e.get(c, path); res.status != http.StatusNotFound || !strings.Contains(res.body, "Not found") {
			t.Errorf("GET %s: status %d, want the 404 page", path, res.status)
		}
	}
}

func TestImageBranchActions(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	const name = "rocky 9/hpc"
	v1 := e.importImage(name, "main", bootable(nil))
	page := components.ImageURL(name)

	// A new branch from the live one, published so nodes can boot it.
	res := e.follow(c, e.post(c, page+"/branches", url.Values{"name": {"testing"}, "from": {"main"}}))
	wantContains(t, res.body, "Created branch testing from main.", `data-branch="testing"`)
	if d, err := e.images.Branch(ctx, name, "testing"); err != nil || d != v1 {
		t.Errorf("branch testing is %s (%v), want %s", d, err, v1)
	}
	e.wantEvent("branch", "admin", "image rocky 9/hpc: branch testing created from main")
	if p, err := e.images.Publish(ctx, name, "testing"); err != nil || p.Default != kernelVer {
		t.Errorf("publish testing: %+v %v", p, err)
	}

	// Make it live.
	res = e.follow(c, e.post(c, page+"/live", url.Values{"branch": {"testing"}}))
	wantContains(t, res.body, "Branch testing is live.")
	if live, err := e.images.Live(ctx, name); err != nil || live != "testing" {
		t.Errorf("live branch %q (%v), want testing", live, err)
	}
	e.wantEvent("set-live", "admin", "image rocky 9/hpc: branch testing is live")

	// The live branch cannot be deleted: the page says why.
	res = e.follow(c, e.post(c, components.BranchURL(name, "testing")+"/delete", nil))
	wantContains(t, res.body, "Nothing was changed:", "live branch")
	if _, err := e.images.Branch(ctx, name, "testing"); err != nil {
		t.Errorf("the live branch was deleted: %v", err)
	}

	// Rename a branch; a taken name is refused.
	res = e.follow(c, e.post(c, components.BranchURL(name, "main")+"/rename", url.Values{"name": {"testing"}}))
	wantContains(t, res.body, "Nothing was changed:", "already exists")
	res = e.follow(c, e.post(c, components.BranchURL(name, "main")+"/rename", url.Values{"name": {"old main"}}))
	wantContains(t, res.body, "Renamed branch main to old main.", `data-branch="old main"`)
	e.wantEvent("rename-branch", "admin", "image rocky 9/hpc: branch main renamed to old main")

	// Delete it.
	res = e.follow(c, e.post(c, components.BranchURL(name, "old main")+"/delete", nil))
	wantContains(t, res.body, "Deleted branch old main.")
	if _, err := e.images.Branch(ctx, name, "old main"); err == nil {
		t.Error("branch old main still exists")
	}
	e.wantEvent("delete-branch", "admin", "image rocky 9/hpc: branch old main deleted")

	// A bad name is refused with the reason.
	res = e.follow(c, e.post(c, page+"/branches", url.Values{"name": {""}, "from": {"testing"}}))
	wantContains(t, res.body, "Nothing was changed:")

	// Stale names get the not-found page and change nothing.
	before := len(e.imageEvents())
	for path, form := range map[string]url.Values{
		"/images/gone/branches": {"name": {"x"}},
		"/images/gone/live":     {"branch": {"main"}},
		page + "/live":          {"branch": {"gone"}},
		components.BranchURL(name, "gone") + "/delete": nil,
		components.BranchURL(name, "gone") + "/rename": {"name": {"x"}},
		"/images/gone/delete":                          nil,
	} {
		if res := e.post(c, path, form); res.status != http.StatusNotFound {
			t.Errorf("POST %s: status %d, want 404\n%s", path, res.status, res.body)
		}
	}
	if after := len(e.imageEvents()); after != before {
		t.Errorf("refused changes wrote %d audit events", after-before)
	}

	// Rename the image, then delete it.
	res = e.follow(c, e.post(c, page+"/rename", url.Values{"name": {"rocky-9"}}))
	wantContains(t, res.body, "Renamed image rocky 9/hpc to rocky-9.", "<h1>rocky-9</h1>")
	ev := e.wantEvent("rename", "admin", "image rocky 9/hpc renamed to rocky-9")
	if strings.Join(ev.Refs, " ") != "image/rocky 9/hpc image/rocky-9" {
		t.Errorf("rename refs %q", ev.Refs)
	}
	res = e.post(c, "/images/rocky-9/delete", nil)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/images" {
		t.Fatalf("delete image: status %d to %q", res.status, res.header.Get("Location"))
	}
	if _, err := e.images.Image(ctx, "rocky-9"); err == nil {
		t.Error("image rocky-9 still exists")
	}
	e.wantEvent("delete", "admin", "image rocky-9 deleted")
}

func TestImageReadOnly(t *testing.T) {
	e := newEnv(t)
	ro := e.login("viewer", model.RoleReadOnly)
	ctx := context.Background()
	e.importImage("rocky", "main", bootable(nil))
	if err := e.images.CreateBranch(ctx, "rocky", "main", "testing"); err != nil {
		t.Fatal(err)
	}

	res := e.get(ro, "/images/rocky")
	if res.status != http.StatusOK {
		t.Fatalf("status %d", res.status)
	}
	wantContains(t, res.body, `data-branch="testing"`, "read-only")
	for _, button := range []string{"make live", "Create branch", "<form method=\"post\" action=\"/images", "Rename", "Delete"} {
		if strings.Contains(res.body, button) {
			t.Errorf("a read-only user sees %q", button)
		}
	}
	for path, form := range map[string]url.Values{
		"/images/rocky/branches":                {"name": {"x"}, "from": {"main"}},
		"/images/rocky/live":                    {"branch": {"testing"}},
		"/images/rocky/branches/testing/delete": nil,
		"/images/rocky/branches/testing/rename": {"name": {"x"}},
		"/images/rocky/branches/main/rollback":  {"to": {"sha256:" + strings.Repeat("0", 64)}},
		"/images/rocky/rename":                  {"name": {"x"}},
		"/images/rocky/delete":                  nil,
	} {
		if res := e.post(ro, path, form); res.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: status %d, want 403", path, res.status)
		}
	}
	if live, err := e.images.Live(ctx, "rocky"); err != nil || live != "main" {
		t.Errorf("live %q (%v) after refused changes", live, err)
	}
	if evs := e.imageEvents(); len(evs) != 0 {
		t.Errorf("refused changes were audited: %+v", evs)
	}

	// Another site's page cannot use an admin's login either.
	admin := e.login("admin", model.RoleAdmin)
	res = e.post(admin, "/images/rocky/live", url.Values{"branch": {"testing"}}, "Origin", "https://evil.example")
	if res.status != http.StatusForbidden {
		t.Errorf("cross-origin POST: status %d, want 403", res.status)
	}
}

func TestImageInUse(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	e.importImage("rocky", "main", bootable(nil))
	if err := e.images.CreateBranch(ctx, "rocky", "main", "testing"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateGroup(ctx, system(), model.Group{Name: "compute", Settings: model.Settings{Image: "rocky"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []model.Node{
		{Name: "node001", Group: "compute"}, // inherits the image, live branch
		{Name: "node002", Group: "compute", Settings: model.Settings{Branch: "testing"}},
		{Name: "login1", Settings: model.Settings{Image: "rocky", Branch: "testing"}},
	} {
		n.Interfaces = []model.Interface{{Name: "eth0", MAC: model.MAC(fmt.Sprintf("52:54:00:00:01:%02x", len(n.Name))), Boot: true}}
		if n.Name == "node002" {
			n.Interfaces[0].MAC = "52:54:00:00:02:01"
		}
		if _, err := e.st.CreateNode(ctx, system(), n); err != nil {
			t.Fatal(err)
		}
	}

	res := e.get(c, "/images/rocky")
	wantContains(t, res.body, `href="/groups/compute/edit"`, `href="/nodes/node001"`, `href="/nodes/node002"`, `href="/nodes/login1"`,
		"group compute", "live (main)", "in use: cannot be deleted")
	if strings.Contains(res.body, "Delete image rocky") {
		t.Error("the page offers to delete an image in use")
	}

	// The branch nodes name cannot be deleted or renamed; the refusal
	// names them.
	res = e.follow(c, e.post(c, "/images/rocky/branches/testing/delete", nil))
	wantContains(t, res.body, "Nothing was changed: branch testing of image rocky is used by node login1, node node002; point them elsewhere first.")
	res = e.follow(c, e.post(c, "/images/rocky/branches/testing/rename", url.Values{"name": {"next"}}))
	wantContains(t, res.body, "is used by node login1, node node002")
	res = e.follow(c, e.post(c, "/images/rocky/delete", nil))
	wantContains(t, res.body, "Nothing was changed: image rocky is used by group compute, node login1; point them elsewhere first.")
	res = e.follow(c, e.post(c, "/images/rocky/rename", url.Values{"name": {"rocky-9"}}))
	wantContains(t, res.body, "image rocky is used by group compute, node login1")
	if _, err := e.images.Branch(ctx, "rocky", "testing"); err != nil {
		t.Errorf("branch testing is gone: %v", err)
	}
	if _, err := e.images.Image(ctx, "rocky"); err != nil {
		t.Errorf("image rocky is gone: %v", err)
	}
	if evs := e.imageEvents(); len(evs) != 0 {
		t.Errorf("refused changes were audited: %+v", evs)
	}
}

func TestImageHistoryRollback(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	v1 := e.importImage("rocky", "main", bootable(nil))
	v2 := e.importImage("rocky", "main", bootable(map[string]string{"etc/hostname": "changed", "etc/motd": "new"}))

	res := e.get(c, "/images/rocky/branches/main/history")
	if res.status != http.StatusOK {
		t.Fatalf("history: status %d", res.status)
	}
	wantContains(t, res.body, short(v1), short(v2), "current", "commit", "roll back to this",
		`href="`+strings.ReplaceAll(components.DiffURL("rocky", v1.String(), "main"), "&", "&amp;")+`"`)
	if n := strings.Count(res.body, "roll back to this"); n != 1 {
		t.Errorf("%d rollback buttons, want 1 (the current version has none)", n)
	}

	res = e.follow(c, e.post(c, "/images/rocky/branches/main/rollback", url.Values{"to": {v1.String()}}))
	wantContains(t, res.body, "Rolled branch main back to "+v1.String()+".", "rollback")
	if d, err := e.images.Branch(ctx, "rocky", "main"); err != nil || d != v1 {
		t.Errorf("main is %s (%v), want %s", d, err, v1)
	}
	ev := e.wantEvent("rollback", "admin", "image rocky branch main rolled back to "+v1.String())
	if ev.Extras["branch"] != "main" || ev.Extras["version"] != v1.String() {
		t.Errorf("rollback extras %v", ev.Extras)
	}
	hist, err := e.images.History(ctx, "rocky", "main", 1)
	if err != nil || len(hist) != 1 || hist[0].User != "admin" {
		t.Errorf("newest history record %+v (%v), want a rollback by admin", hist, err)
	}

	// A version the branch never had is refused.
	res = e.follow(c, e.post(c, "/images/rocky/branches/main/rollback", url.Values{"to": {"sha256:" + strings.Repeat("ab", 32)}}))
	wantContains(t, res.body, "Nothing was changed:")
	if res := e.post(c, "/images/rocky/branches/main/rollback", url.Values{"to": {"v1"}}); res.status != http.StatusBadRequest {
		t.Errorf("rollback to a non-digest: status %d, want 400", res.status)
	}
}

func TestImageDiff(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	v1 := e.importImage("rocky", "main", bootable(map[string]string{"etc/old": "gone soon"}))
	if err := e.images.CreateBranch(context.Background(), "rocky", "main", "testing"); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{"etc/hostname": "changed"}
	for i := range 520 {
		many[fmt.Sprintf("usr/share/doc/f%04d", i)] = "doc"
	}
	v2 := e.importImage("rocky", "testing", bootable(many))

	res := e.get(c, components.DiffURL("rocky", "main", "testing"))
	if res.status != http.StatusOK {
		t.Fatalf("diff: status %d\n%s", res.status, res.body)
	}
	// The trees were written apart, so directories and files differ in
	// mtime too; /usr, /usr/share and /usr/share/doc are added.
	wantContains(t, res.body, short(v1), short(v2), "523 added, 15 changed, 1 removed",
		"+ /usr/share/doc/f0000", "<td class=\"mono\">~ /etc/hostname</td><td>content,mtime</td>", "- /etc/old", "… and 23 more",
		`<option value="testing">`, `value="main"`)
	if strings.Contains(res.body, "f0519") {
		t.Error("the capped list shows its last path")
	}

	// Digests work as well as branch names.
	res = e.get(c, components.DiffURL("rocky", v2.String(), v1.String()))
	wantContains(t, res.body, "1 added, 15 changed, 523 removed")
	res = e.get(c, components.DiffURL("rocky", "main", "main"))
	wantContains(t, res.body, "The two versions are identical.")

	// The form alone, then bad and unknown versions.
	res = e.get(c, "/images/rocky/diff")
	if res.status != http.StatusOK || !strings.Contains(res.body, `id="diff-form"`) || strings.Contains(res.body, "diff-summary") {
		t.Errorf("diff without versions: status %d, want the form alone", res.status)
	}
	if res := e.get(c, components.DiffURL("rocky", "main", "nope")); res.status != http.StatusBadRequest ||
		!strings.Contains(res.body, `&#34;nope&#34; is not a branch of this image nor a version digest`) {
		t.Errorf("diff with an unknown branch: status %d\n%s", res.status, res.body)
	}
	if res := e.get(c, components.DiffURL("rocky", "main", "sha256:"+strings.Repeat("cd", 32))); res.status != http.StatusNotFound {
		t.Errorf("diff with an unknown digest: status %d, want 404", res.status)
	}
}

// TestImagesWithoutObjectStore: a herd run without an object store keeps
// no images, and its image pages say so instead of failing.
func TestImagesWithoutObjectStore(t *testing.T) {
	e := newEnv(t)
	pw := e.user("admin", model.RoleAdmin)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: e.st, SessionTTL: time.Hour, Log: log}
	h := ui.New(e.st, nil, au, log)
	secret, _, _, err := au.Login(context.Background(), "admin", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/images", "/images/rocky", "/images/rocky/diff?from=a&to=b"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: secret})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "keeps no images") {
			t.Errorf("GET %s without an object store: status %d, want 503 saying so", path, rec.Code)
		}
	}
}
