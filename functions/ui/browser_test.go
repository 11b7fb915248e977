package ui_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// chromium finds the browser. A missing browser fails the test rather
// than skipping it, so that a machine without one cannot pass the suite
// by accident.
func chromium(t *testing.T) string {
	t.Helper()
	exe, err := testenv.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// seedCluster fills the store with a small but realistic cluster, so the
// screenshot shows a page as admins will see it.
func seedCluster(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	yes := true
	for _, g := range []model.Group{
		{Name: "compute", Description: "CPU nodes", Settings: model.Settings{Image: "rocky-9.4", Branch: "live", DiskLayout: "raid1-os", PowerMethod: model.PowerIPMI}},
		{Name: "gpu", Description: "A100 nodes", Settings: model.Settings{Image: "rocky-9.4-cuda", Branch: "live", Stateless: &yes}},
		{Name: "login", Settings: model.Settings{Image: "rocky-9.4", Branch: "test"}},
	} {
		if _, err := e.st.CreateGroup(ctx, system(), g); err != nil {
			t.Fatal(err)
		}
	}
	states := []model.NodeState{model.StateUp, model.StateUp, model.StateUp, model.StateProvisioning, model.StateUp, model.StateDown, model.StateUp, model.StateError}
	for i := 1; i <= 24; i++ {
		group, rack := "compute", "rack1"
		if i > 16 {
			group, rack = "gpu", "rack2"
		}
		n := model.Node{
			Name: fmt.Sprintf("node%03d", i), Group: group, State: states[i%len(states)],
			Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(fmt.Sprintf("52:54:00:10:00:%02x", i)),
				Address: fmt.Sprintf("10.1.0.%d/16", 10+i), Boot: true}},
			BMC:           model.BMC{Address: fmt.Sprintf("10.2.0.%d", 10+i), Username: "ADMIN", CredentialRef: "bmc-default"},
			PowerSupplies: []string{"psu1", "psu2"},
			Tags:          []string{rack},
		}
		if group == "gpu" {
			n.Tags = append(n.Tags, "ib", "a100")
		}
		if i == 3 {
			n.Image = "rocky-9.5-test" // set on the node itself
		}
		if _, err := e.st.CreateNode(ctx, system(), n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "login1", Group: "login", State: model.StateUp,
		Interfaces: []model.Interface{{Name: "eno1", MAC: "52:54:00:20:00:01", Address: "10.1.1.1/16", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateDevice(ctx, system(), model.Device{Name: "pdu-r1a", Kind: model.DevicePDU, Driver: "eaton-g4",
		Outlets: []string{"A1", "A2", "A3", "A4"}}); err != nil {
		t.Fatal(err)
	}
	for i, psu := range []string{"psu1", "psu2"} {
		if _, err := e.st.Connect(ctx, system(), model.Connection{Kind: model.ConnPower, Node: "node001", End: psu,
			Device: "pdu-r1a", Port: fmt.Sprintf("A%d", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
}

// browser is one headless Chromium with a fresh profile, driving one tab.
type browser struct {
	t   *testing.T
	e   *env
	ctx context.Context

	mu      sync.Mutex
	console []string // errors the pages wrote to the console
}

// newBrowser starts Chromium. When the test ends it fails the test for any
// script error or Content-Security-Policy violation the pages reported,
// and stops the browser.
func newBrowser(t *testing.T, e *env) *browser {
	t.Helper()
	exe := chromium(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), testenv.ChromiumOptions(exe, t.TempDir())...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	b := &browser{t: t, e: e, ctx: ctx}
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
		t.Fatalf("start %s: %v", exe, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			// Forms shown again with their errors answer 401, 409 or 422,
			// which the browser logs; a missing file (404) is a real fault.
			expected := strings.Contains(m.Text, "Failed to load resource") &&
				(strings.Contains(m.Text, "status of 401") || strings.Contains(m.Text, "status of 409") || strings.Contains(m.Text, "status of 422"))
			if (m.Type == chromedp.ConsoleError || m.IsException()) && !expected {
				b.mu.Lock()
				b.console = append(b.console, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
		<-done
		for _, m := range b.console {
			t.Errorf("browser console: %s", m)
		}
	})
	return b
}

// step runs actions, failing the test with what was being done.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element sel finds.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// snap saves a screenshot of the whole page as name.png in the test's
// artifact folder.
func (b *browser) snap(name string) {
	b.t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.t.ArtifactDir(), name+".png"), shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// location is the path and query the tab shows.
func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.TrimPrefix(loc, b.e.srv.URL)
}

// login goes to path, lands on the login form, logs in and comes back.
func (b *browser) login(path, user, password string) {
	b.t.Helper()
	b.step("open "+path, chromedp.Navigate(b.e.srv.URL+path), chromedp.WaitVisible(chromedp.ID("f-user")))
	if loc, want := b.location(), "/login?next="+url.QueryEscape(path); loc != want {
		b.t.Errorf("not logged in, %s went to %s, want %s", path, loc, want)
	}
	b.step("log in",
		chromedp.SendKeys(chromedp.ID("f-user"), user),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("nav[aria-label=main]")),
	)
	if loc := b.location(); loc != path {
		b.t.Errorf("after login the browser is at %s, want %s", loc, path)
	}
}

// TestBrowser drives the real pages in headless Chromium, with htmx: log
// in through the form, add a node through the page, find it in the nodes
// table and with the live filter, move nodes in bulk, see a bad MAC refused
// next to its field, delete a node after confirming, and see the creation
// in the audit page. Every page is saved as a screenshot in the test's
// artifact folder, nodes.png among them (kept with
// `go test -artifacts -outputdir DIR`).
func TestBrowser(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	pw := e.user("admin", model.RoleAdmin)
	seedCluster(t, e)
	b := newBrowser(t, e)

	b.login("/nodes", "admin", pw)
	if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`typeof htmx !== "undefined"`)); err != nil || !ok {
		t.Fatalf("htmx did not load (%v): run make, which copies frontend/node_modules/htmx.org/dist/htmx.min.js to frontend/static/vendor/", err)
	}
	// Add a node through the form.
	b.step("open the add form",
		chromedp.Click(chromedp.CSS(`a[href="/nodes/new"]`)),
		chromedp.WaitVisible(chromedp.ID("f-name")),
	)
	b.step("fill in the form",
		chromedp.SendKeys(chromedp.ID("f-name"), "node100"),
		chromedp.SetValue(chromedp.ID("f-group"), "gpu"),
		chromedp.SendKeys(chromedp.ID("f-interfaces-0-mac"), "52:54:00:AA:01:00"),
		chromedp.SendKeys(chromedp.ID("f-interfaces-0-address"), "10.1.0.100/16"),
		chromedp.SendKeys(chromedp.ID("f-bmc-address"), "10.2.0.100"),
		chromedp.SendKeys(chromedp.ID("f-tags"), "rack2, ib"),
		chromedp.Click(chromedp.CSS(`form[action="/nodes/new"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if got := b.text(".alert.ok"); !strings.Contains(got, "Created node node100.") {
		t.Errorf("after adding, the page says %q", got)
	}
	if loc := b.location(); loc != "/nodes/node100" {
		t.Errorf("after adding, the browser is at %s, want /nodes/node100 (Post/Redirect/Get)", loc)
	}
	if got := b.text("main"); !strings.Contains(got, "52:54:00:aa:01:00") || !strings.Contains(got, "from group gpu") {
		t.Errorf("the node page lacks the MAC or the inherited settings:\n%s", got)
	}

	// The nodes table lists it; the live filter narrows the table.
	b.step("open the nodes page",
		chromedp.Click(chromedp.CSS(`nav a[href="/nodes"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nodes-table a[href="/nodes/node100"]`)),
	)
	b.snap("nodes")
	t.Logf("screenshot of the nodes page: %s", filepath.Join(t.ArtifactDir(), "nodes.png"))
	b.step("filter with a noderange",
		chromedp.SendKeys(chromedp.ID("f-q"), "@gpu,-node017"),
		chromedp.WaitNotPresent(chromedp.CSS(`#nodes-table a[href="/nodes/node017"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nodes-table a[href="/nodes/node100"]`)),
	)
	if got := b.text("#nodes-table .count"); !strings.HasPrefix(got, "8 nodes") {
		t.Errorf("filtered by @gpu,-node017 the table counts %q, want 8 nodes", got)
	}
	if loc := b.location(); !strings.HasPrefix(loc, "/nodes?q=%40gpu%2C-node017") {
		t.Errorf("the live filter did not update the address: %s", loc)
	}
	b.snap("nodes-filtered")

	// The audit page shows the creation.
	b.step("open the audit page",
		chromedp.Click(chromedp.CSS(`nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("audit-rows")),
	)
	if got := b.text("#audit-rows"); !strings.Contains(got, "created node node100") || !strings.Contains(got, "admin") {
		t.Errorf("the audit page lacks the creation of node100:\n%s", got)
	}
	b.snap("audit")

	// Select all, with herd.js, then bulk-move through the confirmation-free
	// path: the ticked nodes go to another group without a reload.
	b.step("back to the nodes page", chromedp.Navigate(e.srv.URL+"/nodes?q="+url.QueryEscape("node[020-024]")),
		chromedp.WaitVisible(chromedp.CSS(".select-all")), chromedp.Click(chromedp.CSS(".select-all")))
	ticked, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('tbody input[name="node"]:checked').length`))
	if err != nil || ticked != 5 {
		t.Errorf("select-all ticked %d nodes (%v), want 5", ticked, err)
	}
	b.step("move the ticked nodes",
		chromedp.SetValue(chromedp.CSS(`select[name="group"][aria-label="new group"]`), "compute"),
		chromedp.Click(chromedp.CSS(`button[value="setgroup"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if got := b.text(".alert.ok"); !strings.Contains(got, "Moved 5 nodes (node[020-024]) to group compute.") {
		t.Errorf("after the bulk move the page says %q", got)
	}

	// A bad MAC in the edit form is shown next to the field.
	b.step("edit a node with a bad MAC",
		chromedp.Navigate(e.srv.URL+"/nodes/node003/edit"),
		chromedp.WaitVisible(chromedp.ID("f-interfaces-0-mac")),
		chromedp.SetValue(chromedp.ID("f-interfaces-0-mac"), "52:54:00:10:00:0g"),
		chromedp.Click(chromedp.CSS(`form[action="/nodes/node003/edit"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("f-interfaces-0-mac-err")),
	)
	if got := b.text("#f-interfaces-0-mac-err"); !strings.Contains(got, "is not a MAC address") {
		t.Errorf("the MAC field says %q", got)
	}
	if v, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("f-interfaces-0-mac"))); err != nil || v != "52:54:00:10:00:0g" {
		t.Errorf("the MAC field holds %q (%v), want what was typed", v, err)
	}
	b.snap("nodeform-error")

	// Deleting a node asks first, without a dialog box.
	b.step("ask to delete login1",
		chromedp.Navigate(e.srv.URL+"/nodes/login1"),
		chromedp.Click(chromedp.CSS("details.confirm summary")),
		chromedp.WaitVisible(chromedp.CSS(".confirm-box button")),
	)
	b.snap("node-delete-confirm")
	b.step("delete login1",
		chromedp.Click(chromedp.CSS(".confirm-box button")),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if got, loc := b.text(".alert.ok"), b.location(); got != "Deleted node login1." || loc != "/nodes" {
		t.Errorf("after deleting, the browser is at %s and says %q", loc, got)
	}

	// A look at every other page, for the eye and for console errors.
	for _, p := range []struct{ name, path, sel string }{
		{"dashboard", "/", ".tiles"},
		{"node", "/nodes/node001", ".kv"},
		{"groups", "/groups", "table.grid"},
		{"devices", "/devices", "table.grid"},
		{"device", "/devices/pdu-r1a", "table.grid"},
		{"connections", "/connections", "#add"},
	} {
		b.step("open "+p.path, chromedp.Navigate(e.srv.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.snap(p.name)
	}

	t.Logf("browser test took %v", time.Since(start).Round(10*time.Millisecond))
}

// TestBrowserWithoutJavaScript does the same work with scripts switched
// off: plain links and forms, full page loads, the confirmation page of a
// bulk delete, and assigning an unassigned machine.
func TestBrowserWithoutJavaScript(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	pw := e.user("admin", model.RoleAdmin)
	seedCluster(t, e)
	b := newBrowser(t, e)
	b.step("switch scripts off", chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))

	b.login("/nodes/new", "admin", pw)
	b.step("add a node",
		chromedp.SendKeys(chromedp.ID("f-name"), "node200"),
		chromedp.SendKeys(chromedp.ID("f-interfaces-0-mac"), "52:54:00:aa:02:00"),
		chromedp.Click(chromedp.CSS(`form[action="/nodes/new"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if loc := b.location(); loc != "/nodes/node200" {
		t.Errorf("after adding, the browser is at %s, want /nodes/node200", loc)
	}
	if js, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.documentElement.classList.contains("js")`)); err != nil || js {
		t.Fatalf("scripts ran in the page (%v): the test does not test what it says", err)
	}

	b.step("filter the nodes",
		chromedp.Click(chromedp.CSS(`nav a[href="/nodes"]`)),
		chromedp.WaitVisible(chromedp.ID("f-q")),
		chromedp.SendKeys(chromedp.ID("f-q"), "node[200-201],node001"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#nodes-table a[href="/nodes/node002"]`)),
	)
	if got := b.text("#nodes-table .count"); !strings.HasPrefix(got, "2 nodes") {
		t.Errorf("filtered by node[200-201],node001 the table counts %q, want 2 nodes", got)
	}
	if loc := b.location(); !strings.HasPrefix(loc, "/nodes?q=node%5B200-201%5D%2Cnode001") {
		t.Errorf("the filter is not in the address: %s", loc)
	}
	b.snap("nodes-nojs")

	b.step("ask to delete node200",
		chromedp.Click(chromedp.CSS(`input[name="node"][value="node200"]`)),
		chromedp.Click(chromedp.CSS(`button[value="delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.danger.solid`)),
	)
	if got := b.text("h1"); got != "Delete 1 node?" {
		t.Errorf("the confirmation page asks %q", got)
	}
	b.snap("bulk-delete-confirm-nojs")
	b.step("confirm",
		chromedp.Click(chromedp.CSS(`button.danger.solid`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if got := b.text(".alert.ok"); got != "Deleted 1 node (node200)." {
		t.Errorf("after the bulk delete the page says %q", got)
	}

	b.step("open the audit page",
		chromedp.Click(chromedp.CSS(`nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("audit-rows")),
	)
	if got := b.text("#audit-rows"); !strings.Contains(got, "created node node200") || !strings.Contains(got, "deleted node node200") {
		t.Errorf("the audit page lacks node200's creation and deletion:\n%s", got)
	}

	// A second network card of node001 booted on its own: give it to
	// node001, which already has a MAC, as a new interface.
	e.discover(model.Discovered{MAC: "52:54:00:aa:02:01", Arch: "x86_64", Platform: "efi"})
	b.step("assign an unassigned machine",
		chromedp.Navigate(e.srv.URL+"/discovered"),
		chromedp.WaitVisible(chromedp.ID("assign-525400aa0201")),
		chromedp.SendKeys(chromedp.ID("assign-525400aa0201"), "node001"),
		chromedp.Click(chromedp.CSS(`#m-525400aa0201 .assign-form button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if got, loc := b.text(".alert.ok"), b.location(); loc != "/nodes/node001" || !strings.HasPrefix(got, "Assigned 52:54:00:aa:02:01 to node001 as eth1.") {
		t.Errorf("after assigning, the browser is at %s and says %q", loc, got)
	}
	t.Logf("browser test without JavaScript took %v", time.Since(start).Round(10*time.Millisecond))
}
