package ui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// discover records a machine as the boot function does when an unknown MAC
// asks for its boot script.
func (e *env) discover(d model.Discovered) {
	e.t.Helper()
	if _, err := e.st.Discover(context.Background(), d, 0); err != nil {
		e.t.Fatal(err)
	}
}

// openSession opens a boot session of node as the boot function does when
// it sends the boot script, and returns its id.
func (e *env) openSession(node string, mac model.MAC) string {
	e.t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	s := model.BootSession{ID: id, Node: node, MAC: mac, Arch: "x86_64", Platform: "efi", ClientAddr: "10.1.0.11",
		Image: "rocky-9.4", Branch: "live", State: model.BootScriptSent, Expires: time.Now().Add(time.Hour)}
	first := model.BootEvent{Step: "ipxe", State: model.EventOK, Message: "boot script sent: image rocky-9.4 branch live",
		Extras: map[string]string{"arch": "x86_64", "platform": "efi"}}
	if err := e.st.OpenBootSession(context.Background(), s, "", 0, first); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// bootEvent adds an event to a session as bootenv reports it.
func (e *env) bootEvent(id, step string, state model.BootEventState, msg string, ms int64) {
	e.t.Helper()
	if _, _, err := e.st.AddBootEvent(context.Background(), id, model.BootEvent{Step: step, State: state, Message: msg, DurationMS: ms}); err != nil {
		e.t.Fatal(err)
	}
}

func TestAssignDiscoveredThroughPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateGroup(ctx, system(), model.Group{Name: "compute"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node001",
		Interfaces: []model.Interface{{Name: "eth0", Address: "10.1.0.1/16", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node002",
		Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:02", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	e.discover(model.Discovered{MAC: "52:54:00:00:01:01", Arch: "x86_64", Platform: "efi", ClientAddr: "10.9.0.11",
		Manufacturer: "Dell Inc.", Product: "PowerEdge R650", Serial: "ABC123"})
	e.discover(model.Discovered{MAC: "52:54:00:00:01:02", Arch: "x86_64", Platform: "pcbios"})
	e.discover(model.Discovered{MAC: "52:54:00:00:01:03", Arch: "arm64", Platform: "efi"})
	c := e.login("admin", model.RoleAdmin)

	// Every page's menu counts the waiting machines.
	wantContains(t, e.get(c, "/nodes").body, `href="/discovered"`, `<span class="nav-count" aria-label="3 machines waiting">3</span>`)
	res := e.get(c, "/discovered")
	wantContains(t, res.body, "3 machines waiting", "52:54:00:00:01:01", "PowerEdge R650", "serial ABC123", "x86_64 / efi", "10.9.0.11",
		`action="/discovered/52:54:00:00:01:01/assign"`, `action="/discovered/52:54:00:00:01:01/forget"`,
		// Only the node without a MAC is suggested; every group is offered.
		`<datalist id="dl-candidates"><option value="node001"></option></datalist>`, `<option value="compute">compute</option>`,
		`class="active" aria-current="page"`)

	// Assign to an existing node, through the form as a browser posts it.
	res = e.post(c, "/discovered/52:54:00:00:01:01/assign", url.Values{"node": {"node001"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/nodes/node001" {
		t.Fatalf("assign: status %d to %q, want 303 to /nodes/node001\n%s", res.status, res.header.Get("Location"), res.body)
	}
	n, err := e.st.GetNode(ctx, "node001")
	if err != nil || len(n.Interfaces) != 1 || n.Interfaces[0] != (model.Interface{Name: "eth0", MAC: "52:54:00:00:01:01", Address: "10.1.0.1/16", Boot: true}) {
		t.Fatalf("node001 after assign: %+v %v", n.Interfaces, err)
	}
	wantContains(t, e.get(c, "/nodes/node001").body,
		"Assigned 52:54:00:00:01:01 to node001 as eth0. The machine boots as node001 the next time it asks for its boot script.",
		"52:54:00:00:01:01", `aria-label="2 machines waiting"`)
	if _, err := e.st.GetDiscovered(ctx, "52:54:00:00:01:01"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("the assigned machine is still listed: %v", err)
	}
	page, err := e.st.Audit(ctx, store.AuditQuery{Method: "assign"})
	if err != nil || len(page.Items) != 1 || page.Items[0].User != "admin" || page.Items[0].Extras["product"] != "PowerEdge R650" {
		t.Errorf("audit of the assign: %+v %v", page.Items, err)
	}

	// A refusal is shown next to that machine's form, with what was typed.
	res = e.post(c, "/discovered/52:54:00:00:01:02/assign", url.Values{"node": {"node999"}})
	if res.status != http.StatusUnprocessableEntity {
		t.Errorf("assign to a missing node: status %d, want 422", res.status)
	}
	wantContains(t, res.body, `<div class="field-error" id="assign-525400000102-err" role="alert"><p>Not assigned: node &#34;node999&#34; does not exist`,
		`value="node999"`, `aria-invalid="true"`, "52:54:00:00:01:02")
	res = e.post(c, "/discovered/52:54:00:00:01:02/assign", url.Values{"node": {""}})
	if res.status != http.StatusUnprocessableEntity {
		t.Errorf("assign to no node: status %d, want 422", res.status)
	}
	wantContains(t, res.body, "type the name of the node")

	// Create the node from the machine; a bad name first.
	res = e.post(c, "/discovered/52:54:00:00:01:02/assign", url.Values{"create": {"true"}, "node": {"bad name"}, "group": {"compute"}})
	if res.status != http.StatusUnprocessableEntity {
		t.Errorf("create with a bad name: status %d, want 422", res.status)
	}
	wantContains(t, res.body, `<details class="create" open>`, `id="create-525400000102-err"`, `value="bad name"`,
		`<option value="compute" selected>compute</option>`)
	res = e.post(c, "/discovered/52:54:00:00:01:02/assign", url.Values{"create": {"true"}, "node": {"node001"}})
	if res.status != http.StatusConflict {
		t.Errorf("create an existing node: status %d, want 409", res.status)
	}
	wantContains(t, res.body, "node &#34;node001&#34; already exists")
	res = e.post(c, "/discovered/52-54-00-00-01-02/assign", url.Values{"create": {"true"}, "node": {"node042"}, "group": {"compute"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/nodes/node042" {
		t.Fatalf("create: status %d to %q\n%s", res.status, res.header.Get("Location"), res.body)
	}
	n, err = e.st.GetNode(ctx, "node042")
	if err != nil || n.Group != "compute" || len(n.Interfaces) != 1 || n.Interfaces[0] != (model.Interface{Name: "eth0", MAC: "52:54:00:00:01:02", Boot: true}) {
		t.Fatalf("node042: %+v %v", n, err)
	}
	wantContains(t, e.get(c, "/nodes/node042").body, "Created node node042 with 52:54:00:00:01:02 on eth0.")

	// Forget the last one; forgetting it twice says it is gone.
	res = e.post(c, "/discovered/52:54:00:00:01:03/forget", nil)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/discovered" {
		t.Fatalf("forget: status %d to %q", res.status, res.header.Get("Location"))
	}
	res = e.get(c, "/discovered")
	wantContains(t, res.body, "Forgot 52:54:00:00:01:03.", "0 machines waiting", "No machine is waiting.")
	if strings.Contains(res.body, "nav-count") {
		t.Error("the menu still counts machines after the last one went")
	}
	res = e.post(c, "/discovered/52:54:00:00:01:03/forget", nil)
	wantContains(t, e.get(c, res.header.Get("Location")).body, `class="alert error"`, "52:54:00:00:01:03 was not listed any more")
	page, _ = e.st.Audit(ctx, store.AuditQuery{Kind: "discovery"})
	if len(page.Items) != 1 || page.Items[0].User != "admin" {
		t.Errorf("audit of the forget: %+v", page.Items)
	}

	// A machine that is no longer listed is said so above the list.
	res = e.post(c, "/discovered/52:54:00:00:01:03/assign", url.Values{"node": {"node001"}})
	if res.status != http.StatusNotFound {
		t.Errorf("assign a forgotten machine: status %d, want 404", res.status)
	}
	wantContains(t, res.body, `<div class="alert error" role="alert">Not assigned: no machine with MAC 52:54:00:00:01:03 is waiting to be assigned`)
	if res := e.post(c, "/discovered/zz/assign", url.Values{"node": {"node001"}}); res.status != http.StatusBadRequest {
		t.Errorf("a bad MAC in the path: status %d, want 400", res.status)
	}
}

func TestDiscoveredReadOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node001"}); err != nil {
		t.Fatal(err)
	}
	e.discover(model.Discovered{MAC: "52:54:00:00:01:01", Product: "PowerEdge R650"})
	c := e.login("viewer", model.RoleReadOnly)
	res := e.get(c, "/discovered")
	wantContains(t, res.body, "52:54:00:00:01:01", "PowerEdge R650", "1 machine waiting")
	for _, s := range []string{"/assign", "/forget", "Create node", "dl-candidates", "Make it a node"} {
		if strings.Contains(res.body, s) {
			t.Errorf("a read-only user sees %q", s)
		}
	}
	for path, form := range map[string]url.Values{
		"/discovered/52:54:00:00:01:01/assign": {"node": {"node001"}},
		"/discovered/52:54:00:00:01:01/forget": nil,
	} {
		if res := e.post(c, path, form); res.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: status %d, want 403", path, res.status)
		}
	}
	if n, _ := e.st.GetNode(ctx, "node001"); len(n.Interfaces) != 0 {
		t.Errorf("a read-only user assigned a MAC: %+v", n.Interfaces)
	}
	if _, err := e.st.GetDiscovered(ctx, "52:54:00:00:01:01"); err != nil {
		t.Errorf("the machine went after read-only posts: %v", err)
	}
}

func TestBootSessionsOnNodePage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node001",
		Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:01", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	c := e.login("viewer", model.RoleReadOnly)
	wantContains(t, e.get(c, "/nodes/node001").body, `id="boot-sessions"`, "No network boot recorded.")

	old := e.openSession("node001", "52:54:00:00:00:01")
	e.bootEvent(old, "image", model.EventFail, "checksum mismatch", 0)
	id := e.openSession("node001", "52:54:00:00:00:01")
	e.bootEvent(id, "plan", model.EventStart, "", 0)
	e.bootEvent(id, "plan", model.EventOK, "nothing to change", 1200)

	res := e.get(c, "/nodes/node001")
	// The latest session's timeline, refreshing itself; the one before it
	// in the list, linking to its page.
	wantContains(t, res.body, `hx-get="/nodes/node001" hx-trigger="every 2s"`, "updates every 2 s", `href="/nodes/node001#boot-sessions"`,
		`<span class="state boot-running">running</span>`, "boot script sent: image rocky-9.4 branch live", "arch: x86_64",
		"nothing to change", "1.2s", `href="/boot-sessions/`+id+`"`,
		"Earlier sessions", `href="/boot-sessions/`+old+`"`, `<span class="state boot-failed">failed</span>`, "image: checksum mismatch")

	// The poll gets the card alone.
	poll := func(path, target string) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Target", target)
		return e.do(c, req)
	}
	res = poll("/nodes/node001", "boot-sessions")
	if !strings.HasPrefix(res.body, `<section class="card" id="boot-sessions" hx-get=`) || strings.Contains(res.body, "<html") {
		t.Errorf("the boot card's poll is not the card alone:\n%.300s", res.body)
	}
	// Once done, the card stops asking.
	e.bootEvent(id, model.StepDone, model.EventOK, "", 0)
	res = poll("/nodes/node001", "boot-sessions")
	wantContains(t, res.body, `<span class="state boot-done">done</span>`, "took ")
	if strings.Contains(res.body, "hx-trigger") || strings.Contains(res.body, "updates every 2 s") {
		t.Errorf("the card of a finished session still refreshes:\n%s", res.body)
	}

	// The session's own page has the whole timeline.
	res = e.get(c, "/boot-sessions/"+id)
	wantContains(t, res.body, "Boot of", `href="/nodes/node001"`, id, "rocky-9.4@live", "x86_64 / efi", "10.1.0.11",
		"ipxe", "plan", "nothing to change", `<span class="ev ev-ok">ok</span>`, `<span class="state boot-done">done</span>`)
	if strings.Contains(res.body, "hx-trigger") {
		t.Error("the page of a finished session refreshes itself")
	}
	running := e.openSession("node001", "52:54:00:00:00:01")
	wantContains(t, e.get(c, "/boot-sessions/"+running).body, `hx-get="/boot-sessions/`+running+`" hx-trigger="every 2s"`,
		"Nothing printed yet")
	// What bootenv printed shows on the session's page, escaped.
	for i, chunk := range []string{"bootenv starting\n", "disks: <nothing to do>\n"} {
		if _, err := e.st.AppendConsole(context.Background(), running, uint64(i+1), []byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	wantContains(t, e.get(c, "/boot-sessions/"+running).body, `<pre class="console">bootenv starting`+"\n"+`disks: &lt;nothing to do&gt;`)
	if res := poll("/boot-sessions/"+running, "boot-timeline"); !strings.HasPrefix(res.body, `<section class="card" id="boot-timeline"`) {
		t.Errorf("the session page's poll is not the card alone:\n%.300s", res.body)
	}
	if res := e.get(c, "/boot-sessions/nope"); res.status != http.StatusNotFound {
		t.Errorf("a malformed session id: status %d, want 404", res.status)
	}
	res = e.get(c, "/boot-sessions/"+strings.Repeat("0", 32))
	if res.status != http.StatusNotFound {
		t.Errorf("an unknown session: status %d, want 404", res.status)
	}
	wantContains(t, res.body, "does not exist")
}
