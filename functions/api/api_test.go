package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
)

// env is one API over a fresh key prefix on the real Redis from localdev.
type env struct {
	t        testing.TB
	st       *store.Store
	api      *api.API
	srv      *httptest.Server
	admin    string // bearer token of an admin
	readonly string // bearer token of a read-only user
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: "edge-secret", Log: log}
	a := api.New(st, au, log)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	e := &env{t: t, st: st, api: a, srv: srv}
	for _, u := range []struct {
		name string
		role model.Role
		tok  *string
	}{{"alice", model.RoleAdmin, &e.admin}, {"rob", model.RoleReadOnly, &e.readonly}} {
		hash, err := auth.HashPassword("correct horse " + u.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(ctx, store.Actor{User: "test"}, u.name, u.role, hash); err != nil {
			t.Fatal(err)
		}
		var lr model.LoginReply
		e.must("POST", "/login", "", model.LoginRequest{User: u.name, Password: "correct horse " + u.name}, 200, &lr)
		*u.tok = lr.Token
	}
	return e
}

// call sends one request and returns the status, headers and body.
func (e *env) call(method, path, token string, body any, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.srv.URL+api.Prefix+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// must sends a request, checks the status and decodes the answer.
func (e *env) must(method, path, token string, body any, status int, out any, hdr ...string) http.Header {
	e.t.Helper()
	got, h, raw := e.call(method, path, token, body, hdr...)
	if got != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return h
}

// problemOf sends a request that must fail and returns its problem.
func (e *env) problemOf(method, path, token string, body any, status int, hdr ...string) problem.Problem {
	e.t.Helper()
	got, h, raw := e.call(method, path, token, body, hdr...)
	if got != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, raw)
	}
	if ct := h.Get("Content-Type"); ct != problem.ContentType {
		e.t.Fatalf("%s %s: content type %q, want problem+json", method, path, ct)
	}
	var p problem.Problem
	if err := json.Unmarshal(raw, &p); err != nil || p.Status != status || p.Detail == "" {
		e.t.Fatalf("%s %s: not a complete problem: %s", method, path, raw)
	}
	return p
}

func (e *env) auditCount() int {
	e.t.Helper()
	page, err := e.st.Audit(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(page.Items)
}

func TestNodeLifecycle(t *testing.T) {
	e := newEnv(t)
	e.must("POST", "/groups", e.admin, model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9", PowerMethod: model.PowerIPMI}}, 201, nil)

	var n model.Node
	h := e.must("POST", "/nodes", e.admin, map[string]any{
		"name": "node001", "group": "compute",
		"interfaces": []map[string]any{{"name": "eth0", "mac": "52-54-00-AA-BB-01", "address": "10.0.0.1/16", "boot": true}},
		"tags":       []string{"rack1"},
	}, 201, &n)
	if h.Get("ETag") != `"1"` || h.Get("Location") != api.Prefix+"/nodes/node001" {
		t.Fatalf("create headers: etag %q location %q", h.Get("ETag"), h.Get("Location"))
	}
	if n.Interfaces[0].MAC != "52:54:00:aa:bb:01" {
		t.Errorf("MAC not canonical: %q", n.Interfaces[0].MAC)
	}
	if n.Effective == nil || n.Effective.Image != "rocky9" || n.Effective.PowerMethod != model.PowerIPMI || n.Image != "" {
		t.Errorf("group settings not inherited: own %+v effective %+v", n.Settings, n.Effective)
	}
	if n.State != model.StateNew {
		t.Errorf("state %q, want new", n.State)
	}

	// A node's own setting overrides the group's.
	var patched model.Node
	h = e.must("PATCH", "/nodes/node001", e.admin, `{"image":"rocky9-gpu","tags":["rack1","gpu"]}`, 200, &patched, "If-Match", `"1"`)
	if patched.Effective.Image != "rocky9-gpu" || len(patched.Tags) != 2 || patched.Revision != 2 || h.Get("ETag") != `"2"` {
		t.Errorf("patch: %+v", patched)
	}
	if patched.Interfaces[0].MAC != n.Interfaces[0].MAC {
		t.Errorf("patch lost the interfaces: %+v", patched.Interfaces)
	}

	// A stale ETag is refused and changes nothing.
	before := e.auditCount()
	p := e.problemOf("PUT", "/nodes/node001", e.admin, model.Node{Name: "node001"}, 412, "If-Match", `"1"`)
	if !strings.HasSuffix(p.Type, "/stale") {
		t.Errorf("stale type %q", p.Type)
	}
	var still model.Node
	e.must("GET", "/nodes/node001", e.admin, nil, 200, &still)
	if still.Revision != 2 || len(still.Interfaces) != 1 || e.auditCount() != before {
		t.Errorf("stale PUT changed something: %+v", still)
	}

	// Rename through PUT is refused.
	e.problemOf("PUT", "/nodes/node001", e.admin, model.Node{Name: "node002"}, 400)

	var got model.Node
	e.must("DELETE", "/nodes/node001", e.admin, nil, 204, nil, "If-Match", `"2"`)
	e.problemOf("GET", "/nodes/node001", e.admin, nil, 404)
	// The MAC is free again.
	e.must("POST", "/nodes", e.admin, model.Node{Name: "node009", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:aa:bb:01"}}}, 201, &got)

	page, err := e.st.Audit(context.Background(), store.AuditQuery{Ref: "node001"})
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, ev := range page.Items {
		methods = append(methods, ev.Method)
		if ev.User != "alice" || ev.UID < 1000 || ev.Host == "" {
			t.Errorf("audit event without who/where: %+v", ev)
		}
	}
	if strings.Join(methods, ",") != "delete,update,create" {
		t.Errorf("audit of node001: %v", methods)
	}
	if page.Items[1].Extras["changed"] != "image,tags" {
		t.Errorf("update extras: %v", page.Items[1].Extras)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "node001", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:01"}}}, 201, nil)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"broken json", "POST", "/nodes", `{"name": "node002",`, 400, ""},
		{"empty body", "POST", "/nodes", ``, 400, ""},
		{"two values", "POST", "/nodes", `{"name":"a"}{"name":"b"}`, 400, ""},
		{"unknown field", "POST", "/nodes", `{"name":"node002","colour":"red"}`, 400, "colour"},
		{"wrong type", "POST", "/nodes", `{"name":"node002","tags":"x"}`, 400, "tags"},
		{"bad name", "POST", "/nodes", `{"name":"node 2"}`, 422, "name"},
		{"bad mac", "POST", "/nodes", `{"name":"node002","interfaces":[{"name":"eth0","mac":"52:54:00:zz"}]}`, 422, "interfaces[0].mac"},
		{"bad address", "POST", "/nodes", `{"name":"node002","interfaces":[{"name":"eth0","address":"10.0.0.300"}]}`, 422, "interfaces[0].address"},
		{"duplicate name", "POST", "/nodes", `{"name":"node001"}`, 409, "name"},
		{"duplicate mac", "POST", "/nodes", `{"name":"node002","interfaces":[{"name":"eth0","mac":"52:54:00:00:00:01"}]}`, 409, "interfaces[0].mac"},
		{"missing group", "POST", "/nodes", `{"name":"node002","group":"nope"}`, 422, "group"},
		{"bad power method", "POST", "/nodes", `{"name":"node002","power_method":"magic"}`, 422, "power_method"},
		{"bad noderange", "GET", "/nodes?range=node[1-", nil, 400, "range"},
		{"bad limit", "GET", "/nodes?limit=0", nil, 400, ""},
		{"bad if-match", "PUT", "/nodes/node001", `{"name":"node001"}`, 400, ""},
		{"device without kind", "POST", "/devices", `{"name":"sw1"}`, 422, "kind"},
		{"connect unknown node", "POST", "/connections", `{"kind":"network","node":"ghost","end":"eth0","device":"sw1","port":"1"}`, 422, "node"},
		{"unknown endpoint", "GET", "/nodez", nil, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.auditCount()
			hdr := []string{}
			if c.name == "bad if-match" {
				hdr = []string{"If-Match", "yesterday"}
			}
			p := e.problemOf(c.method, c.path, e.admin, c.body, c.status, hdr...)
			if c.field != "" {
				found := false
				for _, fp := range p.Errors {
					found = found || fp.Field == c.field
				}
				if !found {
					t.Errorf("problem does not name field %q: %+v", c.field, p)
				}
			}
			if n := e.auditCount(); n != before {
				t.Errorf("audit grew from %d to %d", before, n)
			}
			var page model.Page[model.Node]
			e.must("GET", "/nodes", e.admin, nil, 200, &page)
			if page.Total != 1 || page.Items[0].Revision != 1 {
				t.Errorf("nodes changed: %+v", page)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.problemOf("GET", "/nodes", "", nil, 401)
	e.problemOf("GET", "/nodes", "hs_forged", nil, 401)
	e.problemOf("POST", "/login", "", model.LoginRequest{User: "alice", Password: "wrong password"}, 401)
	e.problemOf("POST", "/login", "", model.LoginRequest{User: "nobody", Password: "wrong password"}, 401)

	e.must("GET", "/nodes", e.readonly, nil, 200, nil)
	e.problemOf("POST", "/nodes", e.readonly, model.Node{Name: "n1"}, 403)

	// A cookie session cannot be used from another site to change things.
	req, _ := http.NewRequest("POST", e.srv.URL+api.Prefix+"/nodes", strings.NewReader(`{"name":"n1"}`))
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: e.admin})
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin cookie POST: %d", resp.StatusCode)
	}

	// API tokens work and can be revoked.
	var tok model.CreatedToken
	e.must("POST", "/tokens", e.readonly, model.NewToken{Name: "grafana", TTL: "24h"}, 201, &tok)
	var who model.User
	e.must("GET", "/whoami", tok.Secret, nil, 200, &who)
	if who.Name != "rob" || who.Role != model.RoleReadOnly {
		t.Errorf("token user: %+v", who)
	}
	e.must("DELETE", "/tokens/"+tok.ID, e.readonly, nil, 204, nil)
	e.problemOf("GET", "/whoami", tok.Secret, nil, 401)

	// Logging out ends the session.
	e.must("POST", "/logout", e.admin, nil, 204, nil)
	e.problemOf("GET", "/nodes", e.admin, nil, 401)

	// The audit stream holds logins but never a secret.
	page, err := e.st.Audit(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(page)
	if strings.Contains(string(raw), tok.Secret) || strings.Contains(string(raw), "correct horse") {
		t.Errorf("a secret reached the audit stream")
	}
}

func TestListPaginationAndRanges(t *testing.T) {
	e := newEnv(t)
	e.must("POST", "/groups", e.admin, model.Group{Name: "gpu"}, 201, nil)
	for i := 1; i <= 25; i++ {
		n := model.Node{Name: fmt.Sprintf("node%03d", i)}
		if i%5 == 0 {
			n.Group = "gpu"
		}
		e.must("POST", "/nodes", e.admin, n, 201, nil)
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page model.Page[model.Node]
		e.must("GET", "/nodes?limit=10&cursor="+cursor, e.admin, nil, 200, &page)
		if page.Total != 25 {
			t.Fatalf("total %d", page.Total)
		}
		for _, n := range page.Items {
			names = append(names, n.Name)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(names) != 25 || names[0] != "node001" || names[24] != "node025" {
		t.Fatalf("paged names: %v", names)
	}
	var page model.Page[model.Node]
	e.must("GET", "/nodes?range=node[001-010],-node[002-009],@gpu", e.admin, nil, 200, &page)
	var got []string
	for _, n := range page.Items {
		got = append(got, n.Name)
	}
	if strings.Join(got, ",") != "node001,node005,node010,node015,node020,node025" {
		t.Errorf("range: %v", got)
	}
	e.problemOf("GET", "/nodes?range=@nogroup", e.admin, nil, 404)
}

func TestConnections(t *testing.T) {
	e := newEnv(t)
	e.must("POST", "/devices", e.admin, model.Device{Name: "sw1", Kind: model.DeviceSwitch}, 201, nil)
	e.must("POST", "/devices", e.admin, model.Device{Name: "pdu1", Kind: model.DevicePDU, Outlets: []string{"A1", "A2"}}, 201, nil)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "n1", Interfaces: []model.Interface{{Name: "eth0"}}, PowerSupplies: []string{"psu1", "psu2"}}, 201, nil)

	var c model.Connection
	e.must("POST", "/connections", e.admin, model.Connection{Kind: model.ConnNetwork, Node: "n1", End: "eth0", Device: "sw1", Port: "Gi1/0/1"}, 201, &c)
	if c.ID != "network:n1:eth0" {
		t.Errorf("id %q", c.ID)
	}
	// A retry of the same connection succeeds without a second audit event.
	before := e.auditCount()
	e.must("POST", "/connections", e.admin, model.Connection{Kind: model.ConnNetwork, Node: "n1", End: "eth0", Device: "sw1", Port: "Gi1/0/1"}, 201, nil)
	if e.auditCount() != before {
		t.Error("idempotent retry wrote an audit event")
	}
	e.problemOf("POST", "/connections", e.admin, model.Connection{Kind: model.ConnNetwork, Node: "n1", End: "eth0", Device: "sw1", Port: "2"}, 409)
	e.problemOf("POST", "/connections", e.admin, model.Connection{Kind: model.ConnPower, Node: "n1", End: "psu1", Device: "pdu1", Port: "B7"}, 422)
	e.problemOf("POST", "/connections", e.admin, model.Connection{Kind: model.ConnPower, Node: "n1", End: "psu1", Device: "sw1", Port: "A1"}, 422)
	e.must("POST", "/connections", e.admin, model.Connection{Kind: model.ConnPower, Node: "n1", End: "psu1", Device: "pdu1", Port: "A1"}, 201, nil)

	// Dropping a plugged-in power supply or outlet is refused.
	e.problemOf("PATCH", "/nodes/n1", e.admin, `{"power_supplies":["psu2"]}`, 409)
	e.problemOf("PATCH", "/devices/pdu1", e.admin, `{"outlets":["A2"]}`, 409)
	e.problemOf("DELETE", "/devices/pdu1", e.admin, nil, 409)

	var page model.Page[model.Connection]
	e.must("GET", "/connections?device=pdu1", e.admin, nil, 200, &page)
	if page.Total != 1 || page.Items[0].Port != "A1" {
		t.Errorf("pdu1 connections: %+v", page)
	}
	// Deleting the node removes its connections, and says so in the audit.
	e.must("DELETE", "/nodes/n1", e.admin, nil, 204, nil)
	e.must("GET", "/connections", e.admin, nil, 200, &page)
	if page.Total != 0 {
		t.Errorf("connections left: %+v", page.Items)
	}
	e.must("DELETE", "/devices/pdu1", e.admin, nil, 204, nil)
	ev, err := e.st.Audit(context.Background(), store.AuditQuery{Kind: "node", Method: "delete"})
	if err != nil || len(ev.Items) != 1 || ev.Items[0].Extras["connections_removed"] != "network:n1:eth0,power:n1:psu1" {
		t.Errorf("delete audit: %+v %v", ev.Items, err)
	}
}

func TestGroupInUse(t *testing.T) {
	e := newEnv(t)
	e.must("POST", "/groups", e.admin, model.Group{Name: "g"}, 201, nil)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "n1", Group: "g"}, 201, nil)
	p := e.problemOf("DELETE", "/groups/g", e.admin, nil, 409)
	if !strings.Contains(p.Detail, "n1") {
		t.Errorf("conflict does not name the member: %s", p.Detail)
	}
	e.must("PATCH", "/nodes/n1", e.admin, `{"group":null}`, 200, nil)
	e.must("DELETE", "/groups/g", e.admin, nil, 204, nil)
}

func TestAuditFilters(t *testing.T) {
	e := newEnv(t)
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	e.must("POST", "/groups", e.admin, model.Group{Name: "g"}, 201, nil)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "n1"}, 201, nil)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "n2"}, 201, nil)
	e.must("DELETE", "/nodes/n2", e.admin, nil, 204, nil)

	count := func(q string) int {
		var page model.Page[model.AuditEvent]
		e.must("GET", "/audit?"+q, e.readonly, nil, 200, &page)
		return len(page.Items)
	}
	for q, want := range map[string]int{
		"kind=node":                     3,
		"kind=node&method=delete":       1,
		"ref=n2":                        2,
		"ref=node/n1":                   1,
		"user=alice&kind=group":         1,
		"user=rob&kind=node":            0,
		"kind=session&method=login":     2,
		"since=" + start + "&kind=node": 3,
		"until=2000-01-01T00:00:00Z":    0,
	} {
		if got := count(q); got != want {
			t.Errorf("audit?%s: %d events, want %d", q, got, want)
		}
	}
	var page model.Page[model.AuditEvent]
	e.must("GET", "/audit?limit=2", e.admin, nil, 200, &page)
	if len(page.Items) != 2 || page.Next == "" {
		t.Fatalf("first page: %+v", page)
	}
	var older model.Page[model.AuditEvent]
	e.must("GET", "/audit?limit=100&cursor="+page.Next, e.admin, nil, 200, &older)
	if len(older.Items) != count("")-2 {
		t.Errorf("older page has %d", len(older.Items))
	}
	e.problemOf("GET", "/audit?since=yesterday", e.admin, nil, 400)

	// Following: an event made after the follow started arrives.
	done := make(chan model.AuditFollowReply)
	go func() {
		var r model.AuditFollowReply
		e.must("GET", "/audit/follow?kind=node&wait=10s", e.admin, nil, 200, &r)
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	e.must("POST", "/nodes", e.admin, model.Node{Name: "n3"}, 201, nil)
	select {
	case r := <-done:
		if len(r.Items) != 1 || r.Items[0].Refs[0] != "node/n3" || r.After == "" {
			t.Errorf("follow: %+v", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("follow did not return")
	}
}
