package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// TestOpenAPIPowerSchemasMatchTypes is TestOpenAPISchemasMatchTypes for
// power jobs and secrets.
func TestOpenAPIPowerSchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"PowerRequest": model.PowerRequest{}, "PowerJob": model.PowerJob{}, "PowerNodeResult": model.PowerNodeResult{},
		"PowerCounts": model.PowerCounts{}, "PowerJobPage": model.Page[model.PowerJob]{}, "PowerTask": model.PowerTask{},
		"BMCTarget": model.BMCTarget{}, "OutletTarget": model.OutletTarget{}, "PowerClaim": model.PowerClaim{},
		"PowerResult": model.PowerResult{}, "PowerReport": model.PowerReport{}, "PowerRefusal": model.PowerRefusal{},
		"PowerReportReply": model.PowerReportReply{}, "SecretInfo": model.SecretInfo{}, "SecretValue": model.SecretValue{},
		"SecretInfoPage": model.Page[model.SecretInfo]{},
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if want := jsonFields(reflect.TypeOf(v)); !slices.Equal(props, want) {
			t.Errorf("schema %s has %v, the Go type has %v", name, props, want)
		}
	}
}

const (
	edgeSecret  = "edge-secret"
	bmcPassword = "bmc-Pw-7Hq2zR"
)

// newLoggedEnv is newEnv with the API's log kept, to check what it wrote.
func newLoggedEnv(t *testing.T) (*env, *testenv.Logs) {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	logs := &testenv.Logs{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: edgeSecret, Log: log}
	a := api.New(st, au, log)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { st.Close() }) // runs first: ends long polls blocked in Redis
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
	return e, logs
}

func TestPowerJobsAPI(t *testing.T) {
	e, logs := newLoggedEnv(t)
	ctx := context.Background()
	edge := []string{auth.HeaderEdgeSecret, edgeSecret}

	// Secrets: set, listed without value, refused to read-only users.
	var info model.SecretInfo
	e.must("PUT", "/secrets/bmc", e.admin, model.SecretValue{Value: bmcPassword}, 200, &info)
	if info.Name != "bmc" || info.User != "alice" {
		t.Fatalf("set secret: %+v", info)
	}
	e.problemOf("PUT", "/secrets/bmc", e.readonly, model.SecretValue{Value: "x"}, 403)
	p := e.problemOf("PUT", "/secrets/bmc", e.admin, `{"value": "`+bmcPassword+`", "oops": 1}`, 400)
	if strings.Contains(p.Detail, bmcPassword) {
		t.Fatal("a refused secret body was quoted back")
	}
	_, _, raw := e.call("GET", "/secrets", e.readonly, nil)
	if strings.Contains(string(raw), bmcPassword) || !strings.Contains(string(raw), `"bmc"`) {
		t.Fatalf("secret list: %s", raw)
	}

	e.must("POST", "/groups", e.admin, model.Group{Name: "pdunodes", Settings: model.Settings{PowerMethod: model.PowerPDU}}, 201, nil)
	e.must("POST", "/devices", e.admin, model.Device{Name: "pdu1", Kind: model.DevicePDU, Address: "10.1.0.1", Driver: "eaton-g4",
		Outlets: []string{"A1", "A2"}, PowerSupplies: []string{"ps1"}, PowerMethod: model.PowerIPMI}, 201, nil)
	for i := 1; i <= 4; i++ {
		n := model.Node{Name: fmt.Sprintf("node%03d", i), BMC: model.BMC{Address: fmt.Sprintf("10.2.0.%d", i), Username: "root", CredentialRef: "bmc"},
			PowerSupplies: []string{"psu1"}}
		if i >= 3 {
			n.Group = "pdunodes"
		}
		e.must("POST", "/nodes", e.admin, n, 201, nil)
	}
	e.must("POST", "/connections", e.admin, model.Connection{Kind: model.ConnPower, Node: "node003", End: "psu1", Device: "pdu1", Port: "A1"}, 201, nil)
	e.must("POST", "/connections", e.admin, model.Connection{Kind: model.ConnPower, Node: "node004", End: "psu1", Device: "pdu1", Port: "A1"}, 201, nil)

	// An off through an outlet shared with a node outside the job.
	p = e.problemOf("POST", "/power/jobs", e.admin, model.PowerRequest{Action: model.PowerOff, Nodes: model.NodeSelection{"node003"}}, 409)
	if !strings.Contains(p.Detail, "pdu1 outlet A1 also feeds node004") {
		t.Fatalf("shared outlet: %s", p.Detail)
	}
	e.problemOf("POST", "/power/jobs", e.admin, `{"action": "on", "nodes": "node[1-"}`, 400)
	e.problemOf("POST", "/power/jobs", e.admin, `{"action": "explode", "nodes": "node001"}`, 422)
	e.problemOf("POST", "/power/jobs", e.readonly, `{"action": "on", "nodes": "node001"}`, 403)

	var job model.PowerJob
	h := e.must("POST", "/power/jobs", e.admin, `{"action": "on", "nodes": "node[001-004]"}`, 202, &job, "Idempotency-Key", "k1")
	if h.Get("Location") != api.Prefix+"/power/jobs/"+job.ID || job.Counts.Total != 4 || job.Counts.Queued != 4 {
		t.Fatalf("job: %+v", job)
	}
	var again model.PowerJob
	e.must("POST", "/power/jobs", e.admin, `{"action": "on", "nodes": "node[001-004]"}`, 200, &again, "Idempotency-Key", "k1")
	if again.ID != job.ID {
		t.Fatalf("same key made job %s, then %s", job.ID, again.ID)
	}

	// Only the edge claims and reports, never with a user's token.
	e.problemOf("POST", "/power/claim?wait=0s", e.admin, nil, 401)
	e.problemOf("POST", "/power/claim?wait=0s", "", nil, 401, auth.HeaderEdgeSecret, "wrong")
	e.problemOf("POST", "/power/claim?wait=0s&max=0", "", nil, 400, edge...)
	var claim model.PowerClaim
	e.must("POST", "/power/claim?wait=0s&max=10&edge=edge1", "", nil, 200, &claim, edge...)
	if len(claim.Tasks) != 4 {
		t.Fatalf("claim: %+v", claim)
	}
	leases := map[string]string{}
	for _, tk := range claim.Tasks {
		leases[tk.Node] = tk.Lease
		if tk.BMC != nil && tk.BMC.Password != bmcPassword {
			t.Fatalf("task %s lacks its password", tk.Node)
		}
	}

	// A follower blocks until results arrive.
	var cur model.PowerJob
	e.must("GET", "/power/jobs/"+job.ID, e.readonly, nil, 200, &cur)
	followed := make(chan model.PowerJob, 1)
	go func() {
		var j model.PowerJob
		_, _, raw := e.call("GET", fmt.Sprintf("/power/jobs/%s?wait=20s&after=%d", job.ID, cur.Revision), e.readonly, nil)
		_ = json.Unmarshal(raw, &j)
		followed <- j
	}()
	time.Sleep(100 * time.Millisecond)
	report := model.PowerReport{Results: []model.PowerResult{
		{Job: job.ID, Node: "node001", Lease: leases["node001"], State: model.PowerStateOn, Method: model.PowerIPMI, TookMS: 120},
		{Job: job.ID, Node: "node002", Lease: "stale", State: model.PowerStateOn},
	}}
	var rr model.PowerReportReply
	e.must("POST", "/power/results", "", report, 200, &rr, edge...)
	if rr.Accepted != 1 || len(rr.Refused) != 1 || rr.Refused[0].Node != "node002" {
		t.Fatalf("report: %+v", rr)
	}
	j := <-followed
	if r, _ := j.Result("node001"); r.Status != model.PowerNodeOK || j.Revision <= cur.Revision {
		t.Fatalf("followed job: %+v", j)
	}
	e.problemOf("POST", "/power/results", e.admin, report, 401)

	var list model.Page[model.PowerJob]
	e.must("GET", "/power/jobs?limit=5", e.readonly, nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].ID != job.ID || list.Items[0].Results != nil {
		t.Fatalf("list: %+v", list)
	}
	e.problemOf("GET", "/power/jobs/nope", e.readonly, nil, 404)
	e.problemOf("GET", "/power/jobs/"+strings.Repeat("0", 32), e.readonly, nil, 404)
	e.must("DELETE", "/secrets/bmc", e.admin, nil, 204, nil)
	e.problemOf("DELETE", "/secrets/bmc", e.admin, nil, 404)

	// The password went to the edge and nowhere else: not into the audit
	// stream, not into the log.
	page, err := e.st.Audit(ctx, store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(page)
	if strings.Contains(string(b), bmcPassword) {
		t.Fatal("the audit stream holds the BMC password")
	}
	if !strings.Contains(string(b), "secret bmc set") || !strings.Contains(string(b), "power on node[001-004]") {
		t.Fatalf("audit lacks the secret or power events: %s", b)
	}
	if l := logs.String(); strings.Contains(l, bmcPassword) || !strings.Contains(l, "power result refused") {
		t.Fatalf("log: %s", l)
	}
}
