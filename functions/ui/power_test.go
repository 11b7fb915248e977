package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// edgeRuns plays the edge once: it claims every queued task and reports
// it on, except those of the failing node.
func edgeRuns(t *testing.T, st *store.Store, failing string) {
	t.Helper()
	ctx := context.Background()
	tasks, err := st.ClaimPowerTasks(ctx, store.ClaimOptions{Edge: "edge1", Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	var results []model.PowerResult
	for _, tk := range tasks {
		r := model.PowerResult{Job: tk.Job, Node: tk.Node, Lease: tk.Lease, Method: tk.Method, State: model.PowerStateOn, TookMS: 300}
		if tk.Node == failing {
			r.State, r.Error = model.PowerStateUnknown, "BMC did not answer"
		}
		results = append(results, r)
	}
	if _, err := st.ReportPowerResults(ctx, results); err != nil {
		t.Fatal(err)
	}
}

func TestPowerPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateDevice(ctx, system(), model.Device{Name: "pdu1", Kind: model.DevicePDU, Address: "10.1.0.1",
		Driver: "eaton-g4", Outlets: []string{"A1", "A2"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node001", "node002"} {
		if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: n, BMC: model.BMC{Address: "10.2.0.1"}, PowerSupplies: []string{"psu1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.Connect(ctx, system(), model.Connection{Kind: model.ConnPower, Node: "node001", End: "psu1", Device: "pdu1", Port: "A1"}); err != nil {
		t.Fatal(err)
	}
	c := e.login("alice", model.RoleAdmin)

	page := e.get(c, "/nodes/node001")
	wantContains(t, page.body, `action="/nodes/node001/power"`, "Power on", "Power cycle…", "no power job has reported on this node yet",
		"pdu1</a> outlet <span class=\"mono\">A1")

	// A button press queues a job and lands on its page, which refreshes
	// itself until the job is done.
	res := e.post(c, "/nodes/node001/power", url.Values{"action": {"on"}, "key": {"k1"}})
	loc := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/power/jobs/") {
		t.Fatalf("power on: %d %s\n%s", res.status, loc, res.body)
	}
	if again := e.post(c, "/nodes/node001/power", url.Values{"action": {"on"}, "key": {"k1"}}); again.header.Get("Location") != loc {
		t.Fatalf("the same form sent twice made a second job: %s", again.header.Get("Location"))
	}
	page = e.get(c, loc)
	wantContains(t, page.body, `http-equiv="refresh"`, `hx-trigger="every 2s"`, "queued")
	edgeRuns(t, e.st, "")
	page = e.get(c, loc)
	wantContains(t, page.body, "1 ok", "0 failed")
	if strings.Contains(page.body, `http-equiv="refresh"`) {
		t.Error("a done job's page still refreshes")
	}
	wantContains(t, e.get(c, "/nodes/node001").body, "state state-up\">on", "via ipmi")
	wantContains(t, e.get(c, "/devices/pdu1").body, "<th>Power</th>", "state state-up\">on", "unknown")

	// Bulk: powering off asks first; confirmed, one job for both nodes,
	// one of which fails.
	res = e.post(c, "/power/bulk", url.Values{"power": {"off"}, "node": {"node001", "node002"}, "scope": {"selected"}})
	wantContains(t, res.body, "Power off 2 nodes?", "node[001-002]", `name="confirm" value="yes"`)
	res = e.post(c, "/power/bulk", url.Values{"power": {"off"}, "node": {"node001", "node002"}, "confirm": {"yes"}, "key": {"k2"}})
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/power/jobs/") {
		t.Fatalf("bulk off: %d\n%s", res.status, res.body)
	}
	edgeRuns(t, e.st, "node002")
	page = e.get(c, res.header.Get("Location"))
	wantContains(t, page.body, "1 ok", "1 failed", "BMC did not answer")
	wantContains(t, e.get(c, "/power/jobs").body, "node[001-002]", "off")

	// Status of ticked nodes needs no confirmation; nodes that cannot be
	// switched come back with the reason.
	res = e.post(c, "/power/bulk", url.Values{"power": {"status"}, "node": {"ghost"}, "scope": {"selected"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/nodes" {
		t.Fatalf("status of a missing node: %d %s", res.status, res.header.Get("Location"))
	}

	ro := e.login("rob", model.RoleReadOnly)
	if strings.Contains(e.get(ro, "/nodes/node001").body, `action="/nodes/node001/power"`) {
		t.Error("a read-only user sees power buttons")
	}
	if res := e.post(ro, "/nodes/node001/power", url.Values{"action": {"off"}}); res.status != http.StatusForbidden {
		t.Errorf("read-only power off: %d", res.status)
	}
}
