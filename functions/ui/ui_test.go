package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func TestLoginRequired(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for _, path := range []string{"/", "/nodes?group=gpu", "/nodes/node001", "/audit", "/no-such-page"} {
		res := e.get(c, path)
		if res.status != http.StatusSeeOther {
			t.Errorf("GET %s without a session: status %d, want 303", path, res.status)
			continue
		}
		want := "/login"
		if path != "/" {
			want += "?next=" + url.QueryEscape(path)
		}
		if got := res.header.Get("Location"); got != want {
			t.Errorf("GET %s without a session: Location %q, want %q", path, got, want)
		}
	}
	// A POST without a session changes nothing.
	res := e.post(c, "/nodes/new", nodeForm("node001", "52:54:00:00:00:01"))
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/login") {
		t.Errorf("POST without a session: status %d to %q, want 303 to /login", res.status, res.header.Get("Location"))
	}
	if _, err := e.st.GetNode(context.Background(), "node001"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("node created without a session: %v", err)
	}
	// htmx requests are told to load the login page instead of swapping it
	// into a fragment.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/nodes", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "nodes-table")
	res = e.do(c, req)
	if res.status != http.StatusUnauthorized || res.header.Get("HX-Redirect") == "" {
		t.Errorf("htmx request without a session: status %d, HX-Redirect %q; want 401 with HX-Redirect", res.status, res.header.Get("HX-Redirect"))
	}
	// The login page and its stylesheet need no session.
	if res := e.get(c, "/login"); res.status != http.StatusOK {
		t.Errorf("GET /login: status %d", res.status)
	}
	if res := e.get(c, "/static/herd.css"); res.status != http.StatusOK {
		t.Errorf("GET /static/herd.css: status %d", res.status)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	pw := e.user("alice", model.RoleAdmin)
	c := e.client()

	res := e.post(c, "/login", url.Values{"user": {"alice"}, "password": {"not-her-password"}, "next": {"/nodes"}})
	if res.status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", res.status)
	}
	wantContains(t, res.body, "wrong user name or password", `value="alice"`, `value="/nodes"`)
	if strings.Contains(res.body, "not-her-password") {
		t.Error("the wrong password is echoed back")
	}
	if res := e.post(c, "/login", url.Values{"user": {"nobody"}, "password": {"whatever-pw"}}); res.status != http.StatusUnauthorized ||
		!strings.Contains(res.body, "wrong user name or password") {
		t.Errorf("unknown user: status %d, want 401 with the same message", res.status)
	}

	// The next page must stay on this site.
	res = e.post(c, "/login", url.Values{"user": {"alice"}, "password": {pw}, "next": {"//evil.example/"}},
		"X-Forwarded-Proto", "https")
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/" {
		t.Fatalf("login: status %d to %q, want 303 to /", res.status, res.header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: res.header}).Cookies() {
		if ck.Name == auth.CookieName {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || !session.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Secure behind https", session)
	}

	c2 := e.client()
	res = e.post(c2, "/login", url.Values{"user": {"alice"}, "password": {pw}, "next": {"/nodes?state=up"}})
	if res.header.Get("Location") != "/nodes?state=up" {
		t.Errorf("login went to %q, want /nodes?state=up", res.header.Get("Location"))
	}
	res = e.get(c2, "/")
	wantContains(t, res.body, "Dashboard", "alice", "Log out")

	if res := e.post(c2, "/logout", nil); res.status != http.StatusSeeOther {
		t.Errorf("logout: status %d", res.status)
	}
	if res := e.get(c2, "/"); res.status != http.StatusSeeOther {
		t.Errorf("after logout GET /: status %d, want 303 to the login page", res.status)
	}
}

func TestAddNodeThroughForm(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	if _, err := e.st.CreateGroup(ctx, system(), model.Group{Name: "compute", Settings: model.Settings{Image: "rocky-9", Branch: "live"}}); err != nil {
		t.Fatal(err)
	}

	res := e.get(c, "/nodes/new")
	wantContains(t, res.body, `action="/nodes/new"`, `name="interfaces[0].mac"`, `<option value="compute">compute</option>`)

	form := nodeForm("node001", "52-54-00-AB-CD-01")
	form.Set("group", "compute")
	res = e.post(c, "/nodes/new", form)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/nodes/node001" {
		t.Fatalf("add node: status %d to %q, want 303 to /nodes/node001\n%s", res.status, res.header.Get("Location"), res.body)
	}
	n, err := e.st.GetNode(ctx, "node001")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Interfaces) != 1 || n.Interfaces[0].MAC != "52:54:00:ab:cd:01" || !n.Interfaces[0].Boot {
		t.Errorf("interfaces %+v: want one boot interface with the MAC in canonical form", n.Interfaces)
	}
	if got := strings.Join(n.Tags, ","); got != "rack12,ib" {
		t.Errorf("tags %q, want rack12,ib", got)
	}
	if got := strings.Join(n.PowerSupplies, ","); got != "psu1,psu2" {
		t.Errorf("power supplies %q, want psu1,psu2", got)
	}

	// The detail page shows the flash, the inherited image and no password.
	res = e.get(c, "/nodes/node001")
	wantContains(t, res.body, "Created node node001.", "rocky-9", "from group compute", "52:54:00:ab:cd:01", "bmc-default")
	if res := e.get(c, "/nodes/node001"); strings.Contains(res.body, "Created node node001.") {
		t.Error("the flash message is shown twice")
	}
	res = e.get(c, "/nodes")
	wantContains(t, res.body, `href="/nodes/node001"`, "rocky-9@live", "10.1.0.11/16")

	// The audit page shows who created it.
	res = e.get(c, "/audit?kind=node")
	wantContains(t, res.body, "created node node001", "admin")
}

func TestBadMACShownNextToTheFieldWithInputKept(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	form := nodeForm("node002", "52:54:00:zz:00:01")
	form.Set("bmc.address", "not a host!")
	res := e.post(c, "/nodes/new", form)
	if res.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad MAC: status %d, want 422", res.status)
	}
	wantContains(t, res.body,
		`value="52:54:00:zz:00:01"`, // what the user typed is kept
		`value="node002"`,
		`value="rack12 ib"`,
		`id="f-interfaces-0-mac" name="interfaces[0].mac" value="52:54:00:zz:00:01" placeholder="52:54:00:12:34:56" aria-label="interface 1 MAC address" aria-invalid="true" aria-describedby="f-interfaces-0-mac-err"`,
		`<p class="field-error" id="f-interfaces-0-mac-err">&#34;52:54:00:zz:00:01&#34; is not a MAC address`,
		`<p class="field-error" id="f-bmc-address-err">`,
	)
	if _, err := e.st.GetNode(context.Background(), "node002"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("a node with a bad MAC was created: %v", err)
	}

	// A MAC another node owns is reported on the same field.
	if res := e.post(c, "/nodes/new", nodeForm("node003", "52:54:00:00:00:03")); res.status != http.StatusSeeOther {
		t.Fatalf("add node003: status %d", res.status)
	}
	res = e.post(c, "/nodes/new", nodeForm("node004", "52:54:00:00:00:03"))
	if res.status != http.StatusConflict {
		t.Errorf("duplicate MAC: status %d, want 409", res.status)
	}
	wantContains(t, res.body, `<p class="field-error" id="f-interfaces-0-mac-err">MAC 52:54:00:00:00:03 already belongs to node node003</p>`)
}

func TestStaleEditRefused(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	n, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node001", Tags: []string{"old"}})
	if err != nil {
		t.Fatal(err)
	}
	res := e.get(c, "/nodes/node001/edit")
	wantContains(t, res.body, `name="revision" value="1"`)

	// Someone else saves first.
	n.Tags = []string{"theirs"}
	if _, err := e.st.ReplaceNode(ctx, system(), n, n.Revision); err != nil {
		t.Fatal(err)
	}

	form := nodeForm("node001", "52:54:00:00:00:01")
	form.Set("tags", "mine")
	form.Set("revision", "1")
	res = e.post(c, "/nodes/node001/edit", form)
	if res.status != http.StatusConflict {
		t.Fatalf("stale edit: status %d, want 409\n%s", res.status, res.body)
	}
	wantContains(t, res.body, "someone else changed this since you opened the form", `value="mine"`,
		`href="/nodes/node001/edit"`, `name="revision" value="1"`)
	got, err := e.st.GetNode(ctx, "node001")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Tags, ",") != "theirs" || got.Revision != 2 {
		t.Errorf("after a stale edit the node is %+v, want the other change kept at revision 2", got)
	}

	// With the current revision the same edit goes through.
	form.Set("revision", "2")
	if res := e.post(c, "/nodes/node001/edit", form); res.status != http.StatusSeeOther {
		t.Fatalf("fresh edit: status %d\n%s", res.status, res.body)
	}
	if got, _ := e.st.GetNode(ctx, "node001"); strings.Join(got.Tags, ",") != "mine" {
		t.Errorf("tags %v after the edit, want mine", got.Tags)
	}
}

func TestReadOnlyUserCannotChangeAnything(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node001"}); err != nil {
		t.Fatal(err)
	}
	c := e.login("viewer", model.RoleReadOnly)

	res := e.get(c, "/nodes")
	if res.status != http.StatusOK {
		t.Fatalf("GET /nodes: status %d", res.status)
	}
	wantContains(t, res.body, "node001", "read-only")
	for _, s := range []string{"Add node", `name="action"`, `name="node"`} {
		if strings.Contains(res.body, s) {
			t.Errorf("a read-only user sees %q", s)
		}
	}
	res = e.get(c, "/nodes/node001")
	if strings.Contains(res.body, "/nodes/node001/edit") || strings.Contains(res.body, "/nodes/node001/delete") {
		t.Error("a read-only user sees edit or delete on the node page")
	}

	for path, form := range map[string]url.Values{
		"/nodes/new":            nodeForm("node002", ""),
		"/nodes/node001/delete": {"revision": {"1"}},
		"/nodes/bulk":           {"action": {"delete"}, "node": {"node001"}, "confirm": {"yes"}},
		"/groups/new":           {"name": {"gpu"}},
	} {
		res := e.post(c, path, form)
		if res.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: status %d, want 403", path, res.status)
		}
	}
	if _, err := e.st.GetNode(ctx, "node001"); err != nil {
		t.Errorf("node001 after read-only posts: %v", err)
	}
	if _, err := e.st.GetNode(ctx, "node002"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("node002 was created by a read-only user: %v", err)
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	for _, h := range [][]string{
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		res := e.post(c, "/nodes/new", nodeForm("node001", "52:54:00:00:00:01"), h...)
		if res.status != http.StatusForbidden {
			t.Errorf("POST with %s: %s: status %d, want 403", h[0], h[1], res.status)
		}
		wantContains(t, res.body, "Cross-origin request refused")
	}
	if _, err := e.st.GetNode(context.Background(), "node001"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("a cross-origin POST created a node: %v", err)
	}
	// The same form from herd's own page goes through.
	res := e.post(c, "/nodes/new", nodeForm("node001", "52:54:00:00:00:01"), "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin")
	if res.status != http.StatusSeeOther {
		t.Errorf("same-origin POST: status %d, want 303", res.status)
	}
	// Logging in from another site is refused too.
	pw := e.user("bob", model.RoleAdmin)
	res = e.post(e.client(), "/login", url.Values{"user": {"bob"}, "password": {pw}}, "Origin", "http://evil.example")
	if res.status != http.StatusForbidden {
		t.Errorf("cross-origin login: status %d, want 403", res.status)
	}
}

func TestNodesFilter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateGroup(ctx, system(), model.Group{Name: "gpu"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []model.Node{
		{Name: "node001", Tags: []string{"rack1"}},
		{Name: "node002", Tags: []string{"rack1"}},
		{Name: "node003", Group: "gpu", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:03"}}},
		{Name: "login1"},
	} {
		if _, err := e.st.CreateNode(ctx, system(), n); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("admin", model.RoleAdmin)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=" + url.QueryEscape("node[001-002]"), []string{"node001", "node002"}},
		{"q=" + url.QueryEscape("@gpu,login1"), []string{"login1", "node003"}},
		{"q=rack1", []string{"node001", "node002"}},
		{"q=00:03", []string{"node003"}},
		{"group=gpu", []string{"node003"}},
		{"q=" + url.QueryEscape("node[001-003]") + "&state=new&limit=50", []string{"node001", "node002", "node003"}},
	} {
		res := e.get(c, "/nodes?"+tc.query)
		for _, name := range []string{"node001", "node002", "node003", "login1"} {
			shown := strings.Contains(res.body, `href="/nodes/`+name+`"`)
			want := strings.Contains(strings.Join(tc.want, " "), name)
			if shown != want {
				t.Errorf("/nodes?%s: %s shown %v, want %v", tc.query, name, shown, want)
			}
		}
	}
	res := e.get(c, "/nodes?q="+url.QueryEscape("node[001-"))
	wantContains(t, res.body, `class="alert error"`, "No node matches the filter.")
	res = e.get(c, "/nodes?q="+url.QueryEscape("@nosuchgroup"))
	wantContains(t, res.body, `group &#34;nosuchgroup&#34; does not exist`)

	// The live filter gets the table alone.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/nodes?q=login", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "nodes-table")
	res = e.do(c, req)
	if !strings.HasPrefix(strings.TrimSpace(res.body), `<div id="nodes-table">`) || strings.Contains(res.body, "<html") {
		t.Errorf("htmx filter answer is not the table alone:\n%s", res.body)
	}
	wantContains(t, res.body, "login1")
}

func TestBulkActions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateGroup(ctx, system(), model.Group{Name: "gpu"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node001", "node002", "node003"} {
		if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("admin", model.RoleAdmin)

	res := e.post(c, "/nodes/bulk", url.Values{"action": {"setgroup"}, "group": {"gpu"}, "scope": {"selected"},
		"node": {"node001", "node002"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("set group: status %d\n%s", res.status, res.body)
	}
	for _, name := range []string{"node001", "node002"} {
		if n, _ := e.st.GetNode(ctx, name); n.Group != "gpu" {
			t.Errorf("%s is in group %q, want gpu", name, n.Group)
		}
	}
	wantContains(t, e.get(c, res.header.Get("Location")).body, "Moved 2 nodes (node[001-002]) to group gpu.")

	// Deleting asks first and deletes nothing until confirmed.
	res = e.post(c, "/nodes/bulk", url.Values{"action": {"delete"}, "scope": {"all"}, "q": {"@gpu"}})
	if res.status != http.StatusOK {
		t.Fatalf("delete: status %d, want the confirmation page", res.status)
	}
	wantContains(t, res.body, "Delete 2 nodes?", "node[001-002]", `name="confirm" value="yes"`)
	if _, err := e.st.GetNode(ctx, "node001"); err != nil {
		t.Fatalf("node001 deleted before confirmation: %v", err)
	}
	res = e.post(c, "/nodes/bulk", url.Values{"action": {"delete"}, "confirm": {"yes"}, "node": {"node001", "node002"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("confirmed delete: status %d", res.status)
	}
	for name, want := range map[string]bool{"node001": false, "node002": false, "node003": true} {
		_, err := e.st.GetNode(ctx, name)
		if (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
}

func TestGroupsDevicesConnections(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.login("admin", model.RoleAdmin)

	res := e.post(c, "/groups/new", url.Values{"name": {"compute"}, "image": {"rocky-9"}, "stateless": {"true"}, "tags": {"cpu"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("add group: status %d\n%s", res.status, res.body)
	}
	g, err := e.st.GetGroup(ctx, "compute")
	if err != nil || g.Image != "rocky-9" || g.Stateless == nil || !*g.Stateless {
		t.Fatalf("group %+v, %v", g, err)
	}
	res = e.post(c, "/devices/new", url.Values{"name": {"pdu1"}, "kind": {"pdu"}, "outlets": {"A1, A2,A3"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("add PDU: status %d\n%s", res.status, res.body)
	}
	res = e.post(c, "/devices/new", url.Values{"name": {"pdu2"}, "kind": {"pdu"}, "outlets": {"A1, A1"}})
	if res.status != http.StatusUnprocessableEntity {
		t.Errorf("PDU with a doubled outlet: status %d, want 422", res.status)
	}
	wantContains(t, res.body, `id="f-outlets-err"`, `value="A1, A1"`)

	if res := e.post(c, "/nodes/new", nodeForm("node001", "52:54:00:00:00:01")); res.status != http.StatusSeeOther {
		t.Fatalf("add node: status %d", res.status)
	}
	res = e.post(c, "/connections", url.Values{"kind": {"power"}, "node": {"node001"}, "end": {"psu1"}, "device": {"pdu1"}, "port": {"A9"}})
	if res.status != http.StatusUnprocessableEntity {
		t.Errorf("connect to a missing outlet: status %d, want 422", res.status)
	}
	wantContains(t, res.body, `id="f-port-err"`, "PDU pdu1 has no outlet")
	res = e.post(c, "/connections", url.Values{"kind": {"power"}, "node": {"node001"}, "end": {"psu1"}, "device": {"pdu1"}, "port": {"A2"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("connect: status %d\n%s", res.status, res.body)
	}
	wantContains(t, e.get(c, "/nodes/node001").body, "pdu1</a> outlet <span class=\"mono\">A2</span>")
	wantContains(t, e.get(c, "/devices/pdu1").body, `<a href="/nodes/node001">node001</a>`)

	// A device in use cannot be deleted; the page says why.
	d, _ := e.st.GetDevice(ctx, "pdu1")
	res = e.post(c, "/devices/pdu1/delete", url.Values{"revision": {"1"}})
	if res.status != http.StatusSeeOther || d.Name == "" {
		t.Fatalf("delete PDU in use: status %d", res.status)
	}
	wantContains(t, e.get(c, res.header.Get("Location")).body, "was not deleted", "delete them first")

	res = e.post(c, "/connections/delete", url.Values{"id": {"power:node001:psu1"}, "back": {"/connections"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("disconnect: status %d", res.status)
	}
	if res := e.post(c, "/devices/pdu1/delete", url.Values{"revision": {"1"}}); res.header.Get("Location") != "/devices" {
		t.Errorf("delete free PDU went to %q", res.header.Get("Location"))
	}
	if _, err := e.st.GetDevice(ctx, "pdu1"); !store.IsKind(err, store.KindNotFound) {
		t.Errorf("pdu1 after delete: %v", err)
	}
}

func TestAuditFiltersAndPager(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 105 {
		name := fmt.Sprintf("n%03d", i)
		if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("admin", model.RoleAdmin)
	res := e.get(c, "/audit?kind=node")
	wantContains(t, res.body, "created node n104", `rel="next"`)
	if strings.Contains(res.body, "created node n004<") {
		t.Error("the first page shows the oldest events")
	}
	i := strings.Index(res.body, `href="/audit?`)
	next := res.body[i+len(`href="`):]
	next = strings.ReplaceAll(next[:strings.Index(next, `"`)], "&amp;", "&")
	res = e.get(c, next)
	wantContains(t, res.body, "created node n000", "created node n004", "« newest")
	if strings.Contains(res.body, "created node n104") {
		t.Error("the older page repeats the newest events")
	}
	res = e.get(c, "/audit?since=yesterday")
	wantContains(t, res.body, "since: &#34;yesterday&#34; is not a time")
	// The live refresh gets the table body alone.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/audit?kind=node", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "audit-rows")
	res = e.do(c, req)
	if !strings.HasPrefix(res.body, `<tbody id="audit-rows"`) || !strings.Contains(res.body, "created node n104") {
		t.Errorf("htmx audit refresh is not the table body alone:\n%.300s", res.body)
	}
	res = e.get(c, "/audit?ref=n007")
	wantContains(t, res.body, "created node n007")
	if strings.Contains(res.body, "created node n008") {
		t.Error("ref filter shows other nodes")
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	page := e.get(c, "/").body
	i := strings.Index(page, `href="/static/herd.css?v=`)
	if i < 0 {
		t.Fatalf("the page does not link a versioned stylesheet:\n%s", page)
	}
	link := page[i+len(`href="`):]
	link = link[:strings.Index(link, `"`)]
	res := e.get(c, link)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "text/css") ||
		!strings.Contains(res.header.Get("Cache-Control"), "immutable") || res.header.Get("ETag") == "" {
		t.Errorf("GET %s: status %d, type %q, cache %q, etag %q", link, res.status, res.header.Get("Content-Type"),
			res.header.Get("Cache-Control"), res.header.Get("ETag"))
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/static/herd.css", nil)
	req.Header.Set("If-None-Match", res.header.Get("ETag"))
	if res := e.do(c, req); res.status != http.StatusNotModified {
		t.Errorf("revalidation: status %d, want 304", res.status)
	}
	if res := e.get(c, "/static/../ui.go"); res.status == http.StatusOK {
		t.Error("static serves outside its folder")
	}
	if csp := e.get(c, "/nodes").header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

// TestPageEditKeepsWhatTheFormDoesNotShow: settings only the CLI and the
// API set (plugin settings, the sync policy, a pinned BMC certificate)
// survive saving the node and group forms; kernel arguments go through
// the forms both ways.
func TestPageEditKeepsWhatTheFormDoesNotShow(t *testing.T) {
	e := newEnv(t)
	c := e.login("admin", model.RoleAdmin)
	ctx := context.Background()
	no := false
	fp := "sha256:" + strings.Repeat("ab", 32)
	kept := model.Settings{CheckEveryBoot: &no, SyncVerify: "always", Plugins: map[string]map[string]string{"limits": {"nofile": "65536"}}}
	g := model.Group{Name: "compute", Settings: kept}
	if _, err := e.st.CreateGroup(ctx, system(), g); err != nil {
		t.Fatal(err)
	}
	n := model.Node{Name: "node001", Group: "compute", BMC: model.BMC{Address: "10.1.0.1", Fingerprint: fp}, Settings: kept}
	if _, err := e.st.CreateNode(ctx, system(), n); err != nil {
		t.Fatal(err)
	}

	form := nodeForm("node001", "52:54:00:00:00:01")
	form.Set("group", "compute")
	form.Set("bmc.address", "10.1.0.1")
	form.Set("kernel_args", " console=ttyS0,115200   nomodeset ")
	form.Set("revision", "1")
	if res := e.post(c, "/nodes/node001/edit", form); res.status != http.StatusSeeOther {
		t.Fatalf("node edit: status %d\n%s", res.status, res.body)
	}
	got, err := e.st.GetNode(ctx, "node001")
	if err != nil {
		t.Fatal(err)
	}
	if got.KernelArgs != "console=ttyS0,115200 nomodeset" || got.SyncVerify != "always" || got.CheckEveryBoot == nil || *got.CheckEveryBoot ||
		got.Plugins["limits"]["nofile"] != "65536" || got.BMC.Fingerprint != fp {
		t.Errorf("after the page's edit the node is %+v", got)
	}
	res := e.get(c, "/nodes/node001")
	wantContains(t, res.body, "Kernel arguments", "console=ttyS0,115200 nomodeset")
	res = e.get(c, "/nodes/node001/edit")
	wantContains(t, res.body, `name="kernel_args"`, `value="console=ttyS0,115200 nomodeset"`)

	// A bad argument is refused next to its field, and nothing changes.
	form.Set("kernel_args", "herd.server=http://elsewhere")
	form.Set("revision", "2")
	res = e.post(c, "/nodes/node001/edit", form)
	if res.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad kernel args: status %d\n%s", res.status, res.body)
	}
	wantContains(t, res.body, "is set by herd itself")
	if again, _ := e.st.GetNode(ctx, "node001"); again.Revision != 2 {
		t.Errorf("a refused edit changed the node: %+v", again)
	}

	gform := url.Values{"name": {"compute"}, "revision": {"1"}, "kernel": {"6.1.0-28-amd64"}}
	if res := e.post(c, "/groups/compute/edit", gform); res.status != http.StatusSeeOther {
		t.Fatalf("group edit: status %d\n%s", res.status, res.body)
	}
	gg, err := e.st.GetGroup(ctx, "compute")
	if err != nil {
		t.Fatal(err)
	}
	if gg.Kernel != "6.1.0-28-amd64" || gg.SyncVerify != "always" || gg.Plugins["limits"]["nofile"] != "65536" {
		t.Errorf("after the page's edit the group is %+v", gg)
	}
}
