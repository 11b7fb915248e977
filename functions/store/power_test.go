package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// The secrets the tests store; none may show up anywhere but in a
// claimed task.
const (
	bmcPassword = "bmc-pw-Zq81xX"
	pduPassword = "pdu-pw-Wk27yY"
)

var admin = Actor{User: "alice", UID: 1000, Host: "10.0.0.9"}

// powerCluster stores: node001-004 with BMCs (secret "bmc"), of which
// node003 and node004 are switched through pdu1 (secret "pdu"): node003
// psu1 on A1 alone, node004 psu1 on A2 shared with node002 psu1.
func powerCluster(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, sec := range []struct{ name, value string }{{"bmc", bmcPassword}, {"pdu", pduPassword}} {
		if _, err := s.SetSecret(ctx, admin, sec.name, model.SecretValue{Value: sec.value}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateDevice(ctx, admin, model.Device{Name: "pdu1", Kind: model.DevicePDU, Address: "10.1.0.1", Driver: "eaton-g4",
		Outlets: []string{"A1", "A2", "A3"}, Username: "admin", CredentialRef: "pdu"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		n := model.Node{Name: fmt.Sprintf("node%03d", i), BMC: model.BMC{Address: fmt.Sprintf("10.2.0.%d", i), Username: "root", CredentialRef: "bmc"},
			PowerSupplies: []string{"psu1"}}
		if i >= 3 {
			n.PowerMethod = model.PowerPDU
		}
		if _, err := s.CreateNode(ctx, admin, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []model.Connection{
		{Kind: model.ConnPower, Node: "node003", End: "psu1", Device: "pdu1", Port: "A1"},
		{Kind: model.ConnPower, Node: "node004", End: "psu1", Device: "pdu1", Port: "A2"},
		{Kind: model.ConnPower, Node: "node002", End: "psu1", Device: "pdu1", Port: "A2"},
	} {
		if _, err := s.Connect(ctx, admin, c); err != nil {
			t.Fatal(err)
		}
	}
}

// rawAudit is every byte of the audit stream.
func rawAudit(t *testing.T, s *Store) string {
	t.Helper()
	msgs, err := s.rdb.XRange(context.Background(), s.auditKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(msgs)
	return string(b)
}

func TestPowerJobLifecycle(t *testing.T) {
	s, now := openTest(t)
	ctx := context.Background()
	powerCluster(t, s)
	req := model.PowerRequest{Action: model.PowerOn, Nodes: model.NodeSelection{"node[001-003],ghost"}}
	job, created, err := s.CreatePowerJob(ctx, admin, req, []string{"node001", "node002", "node003", "ghost"}, "")
	if err != nil || !created {
		t.Fatalf("create: created=%v %v", created, err)
	}
	if job.State != model.PowerJobQueued || job.Counts != (model.PowerCounts{Total: 4, Queued: 3, Failed: 1}) {
		t.Fatalf("new job: %+v", job)
	}
	if r, _ := job.Result("ghost"); r.Status != model.PowerNodeFailed || !strings.Contains(r.Error, "ghost does not exist") {
		t.Fatalf("ghost: %+v", r)
	}

	// The audit event says who did what to which nodes, and nothing of
	// the secrets; nor does any stored key but the secrets' own.
	page, err := s.Audit(ctx, AuditQuery{Kind: "power"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("audit: %+v %v", page, err)
	}
	ev := page.Items[0]
	if ev.User != "alice" || ev.Method != "on" || !strings.Contains(ev.Msg, "node[001-003]") || ev.Extras["job"] != job.ID {
		t.Fatalf("audit event: %+v", ev)
	}
	assertNoSecrets(t, s)

	tasks, err := s.ClaimPowerTasks(ctx, ClaimOptions{Edge: "edge1", Max: 10})
	if err != nil || len(tasks) != 3 {
		t.Fatalf("claim: %d tasks, %v", len(tasks), err)
	}
	byNode := map[string]model.PowerTask{}
	for _, tk := range tasks {
		byNode[tk.Node] = tk
		if tk.Attempt != 1 || tk.Lease == "" || tk.Job != job.ID || tk.Action != model.PowerOn {
			t.Fatalf("task: %+v", tk)
		}
	}
	if b := byNode["node001"].BMC; b == nil || b.Password != bmcPassword || b.Address != "10.2.0.1" || b.Protocol != model.PowerIPMI {
		t.Fatalf("node001's BMC: %+v", b)
	}
	if o := byNode["node003"].Outlets; len(o) != 1 || o[0].Password != pduPassword || o[0].Outlet != "A1" || o[0].Driver != "eaton-g4" {
		t.Fatalf("node003's outlets: %+v", o)
	}
	assertNoSecrets(t, s) // claiming does not write passwords anywhere either

	job, err = s.GetPowerJob(ctx, job.ID)
	if err != nil || job.State != model.PowerJobRunning || job.Counts.Running != 3 {
		t.Fatalf("running job: %+v %v", job, err)
	}
	if more, err := s.ClaimPowerTasks(ctx, ClaimOptions{Max: 10}); err != nil || len(more) != 0 {
		t.Fatalf("second claim: %+v %v", more, err)
	}

	*now = now.Add(time.Second)
	results := []model.PowerResult{
		{Job: job.ID, Node: "node001", Lease: byNode["node001"].Lease, State: model.PowerStateOff, Method: model.PowerIPMI, TookMS: 250},
		{Job: job.ID, Node: "node002", Lease: byNode["node002"].Lease, State: model.PowerStateUnknown, Error: "dial 10.2.0.2: timeout"},
	}
	reply, err := s.ReportPowerResults(ctx, results)
	if err != nil || reply.Accepted != 2 || len(reply.Refused) != 0 {
		t.Fatalf("report: %+v %v", reply, err)
	}
	before, _ := s.GetPowerJob(ctx, job.ID)
	// The same report again changes nothing.
	if reply, err := s.ReportPowerResults(ctx, results); err != nil || reply.Accepted != 2 {
		t.Fatalf("repeated report: %+v %v", reply, err)
	}
	again, _ := s.GetPowerJob(ctx, job.ID)
	if again.Revision != before.Revision || again.Counts != before.Counts {
		t.Fatalf("a repeated report changed the job: %+v → %+v", before.Counts, again.Counts)
	}
	// A wrong lease is refused.
	reply, err = s.ReportPowerResults(ctx, []model.PowerResult{{Job: job.ID, Node: "node003", Lease: "forged", State: model.PowerStateOn}})
	if err != nil || reply.Accepted != 0 || len(reply.Refused) != 1 || !strings.Contains(reply.Refused[0].Reason, "lease") {
		t.Fatalf("forged lease: %+v %v", reply, err)
	}
	if _, err := s.ReportPowerResults(ctx, []model.PowerResult{{Job: job.ID, Node: "node003", Lease: byNode["node003"].Lease, State: model.PowerStateOn, Method: model.PowerPDU}}); err != nil {
		t.Fatal(err)
	}
	job, err = s.GetPowerJob(ctx, job.ID)
	if err != nil || job.State != model.PowerJobDone || job.Counts != (model.PowerCounts{Total: 4, OK: 2, Failed: 2}) {
		t.Fatalf("done job: %+v %v", job, err)
	}
	if r, _ := job.Result("node002"); r.Status != model.PowerNodeFailed || r.Error != "dial 10.2.0.2: timeout" || r.Edge != "edge1" {
		t.Fatalf("node002: %+v", r)
	}
	states, err := s.NodePowerStates(ctx, []string{"node001", "node002", "node003"})
	if err != nil || states["node001"].State != model.PowerStateOff || states["node003"].Method != model.PowerPDU {
		t.Fatalf("power states: %+v %v", states, err)
	}
	// A node seen off is down; one seen on keeps its state for its boot
	// to move. Neither is an admin's edit: no new revision.
	if n, err := s.GetNode(ctx, "node001"); err != nil || n.State != model.StateDown || n.Revision != 1 {
		t.Errorf("node001 after power off: state %q revision %d %v", n.State, n.Revision, err)
	}
	if n, err := s.GetNode(ctx, "node003"); err != nil || n.State == model.StateDown {
		t.Errorf("node003 after power on: state %q %v", n.State, err)
	}
	if _, ok := states["node002"]; ok {
		t.Fatalf("node002's unknown state was recorded: %+v", states["node002"])
	}
	list, err := s.ListPowerJobs(ctx, 10)
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != job.ID || list.Items[0].Results != nil || list.Items[0].Counts.OK != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// assertNoSecrets reads every key of the store but the secrets' own and
// fails if a password is in any of them.
func assertNoSecrets(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	keys, err := s.rdb.Keys(ctx, s.p+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, s.key("secret")+":") {
			continue
		}
		raw, err := s.rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		// DUMP may compress long values; read the usual types plainly too.
		var plain string
		switch typ := s.rdb.Type(ctx, k).Val(); typ {
		case "string":
			plain = s.rdb.Get(ctx, k).Val()
		case "hash":
			b, _ := json.Marshal(s.rdb.HGetAll(ctx, k).Val())
			plain = string(b)
		case "list":
			plain = strings.Join(s.rdb.LRange(ctx, k, 0, -1).Val(), " ")
		case "stream":
			b, _ := json.Marshal(s.rdb.XRange(ctx, k, "-", "+").Val())
			plain = string(b)
		case "zset", "set":
			plain = fmt.Sprint(s.rdb.ZRange(ctx, k, 0, -1).Val(), s.rdb.SMembers(ctx, k).Val())
		}
		for _, pw := range []string{bmcPassword, pduPassword} {
			if strings.Contains(raw, pw) || strings.Contains(plain, pw) {
				t.Fatalf("key %s holds a password", k)
			}
		}
	}
	if a := rawAudit(t, s); strings.Contains(a, bmcPassword) || strings.Contains(a, pduPassword) {
		t.Fatal("the audit stream holds a password")
	}
}

func TestPowerIdempotencyKey(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	powerCluster(t, s)
	req := model.PowerRequest{Action: model.PowerCycle, Nodes: model.NodeSelection{"node001"}}
	first, created, err := s.CreatePowerJob(ctx, admin, req, []string{"node001"}, "key-1")
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	second, created, err := s.CreatePowerJob(ctx, admin, req, []string{"node001"}, "key-1")
	if err != nil || created || second.ID != first.ID {
		t.Fatalf("same key: created=%v id %s vs %s: %v", created, second.ID, first.ID, err)
	}
	page, _ := s.Audit(ctx, AuditQuery{Kind: "power"})
	if len(page.Items) != 1 {
		t.Fatalf("%d power audit events, want 1", len(page.Items))
	}
	if tasks, _ := s.ClaimPowerTasks(ctx, ClaimOptions{Max: 10}); len(tasks) != 1 {
		t.Fatalf("the repeated request queued a second task: %+v", tasks)
	}
	other := req
	other.Action = model.PowerOff
	if _, _, err := s.CreatePowerJob(ctx, admin, other, []string{"node001"}, "key-1"); !IsKind(err, KindConflict) {
		t.Fatalf("the key reused for another request: %v", err)
	}
	// Keys are per user.
	bob := Actor{User: "bob"}
	if j, created, err := s.CreatePowerJob(ctx, bob, req, []string{"node001"}, "key-1"); err != nil || !created || j.ID == first.ID {
		t.Fatalf("another user's key: %v %v", created, err)
	}
}

func TestPowerSharedOutlet(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	powerCluster(t, s)
	req := model.PowerRequest{Action: model.PowerOff, Nodes: model.NodeSelection{"node004"}}
	_, _, err := s.CreatePowerJob(ctx, admin, req, []string{"node004"}, "")
	if !IsKind(err, KindConflict) || !strings.Contains(err.Error(), "pdu1 outlet A2 also feeds node002") {
		t.Fatalf("shared outlet: %v", err)
	}
	if page, _ := s.Audit(ctx, AuditQuery{Kind: "power"}); len(page.Items) != 0 {
		t.Fatal("a refused job was audited as done")
	}
	// Status through the same outlet harms nobody; so does off with the
	// other node in the job; or forced.
	for _, r := range []struct {
		action model.PowerAction
		names  []string
		force  bool
	}{
		{model.PowerStatus, []string{"node004"}, false},
		{model.PowerOff, []string{"node004", "node002"}, false},
		{model.PowerCycle, []string{"node004"}, true},
	} {
		req := model.PowerRequest{Action: r.action, Nodes: r.names, Force: r.force}
		if _, _, err := s.CreatePowerJob(ctx, admin, req, r.names, ""); err != nil {
			t.Errorf("%s %v force=%v: %v", r.action, r.names, r.force, err)
		}
	}
}

// TestPowerLeaseExpiry is an edge that stops mid-job: its lease runs out,
// the next claim gets the task again as attempt 2, and the first edge's
// late report is refused.
func TestPowerLeaseExpiry(t *testing.T) {
	s, now := openTest(t)
	ctx := context.Background()
	powerCluster(t, s)
	job, _, err := s.CreatePowerJob(ctx, admin, model.PowerRequest{Action: model.PowerReset, Nodes: model.NodeSelection{"node001"}}, []string{"node001"}, "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.ClaimPowerTasks(ctx, ClaimOptions{Edge: "edge1", Max: 5, Lease: time.Minute})
	if err != nil || len(first) != 1 || first[0].Attempt != 1 {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	*now = now.Add(59 * time.Second)
	if got, _ := s.ClaimPowerTasks(ctx, ClaimOptions{Edge: "edge2", Max: 5}); len(got) != 0 {
		t.Fatalf("claimed a task whose lease still runs: %+v", got)
	}
	*now = now.Add(2 * time.Second)
	second, err := s.ClaimPowerTasks(ctx, ClaimOptions{Edge: "edge2", Max: 5})
	if err != nil || len(second) != 1 || second[0].Attempt != 2 || second[0].Lease == first[0].Lease || second[0].BMC.Password != bmcPassword {
		t.Fatalf("reclaim: %+v %v", second, err)
	}
	reply, err := s.ReportPowerResults(ctx, []model.PowerResult{{Job: job.ID, Node: "node001", Lease: first[0].Lease, State: model.PowerStateOn}})
	if err != nil || reply.Accepted != 0 || len(reply.Refused) != 1 || !strings.Contains(reply.Refused[0].Reason, "attempt 2") {
		t.Fatalf("stale report: %+v %v", reply, err)
	}
	reply, err = s.ReportPowerResults(ctx, []model.PowerResult{{Job: job.ID, Node: "node001", Lease: second[0].Lease, State: model.PowerStateUnknown,
		Error: "not re-run: reset is not idempotent and attempt 1 may have run"}})
	if err != nil || reply.Accepted != 1 {
		t.Fatalf("current report: %+v %v", reply, err)
	}
	j, _ := s.GetPowerJob(ctx, job.ID)
	if r, _ := j.Result("node001"); j.State != model.PowerJobDone || r.Attempt != 2 || r.Edge != "edge2" {
		t.Fatalf("job after reclaim: %+v", j)
	}
	// A done task is never handed out again, even once its old lease
	// time has long passed.
	*now = now.Add(time.Hour)
	if got, _ := s.ClaimPowerTasks(ctx, ClaimOptions{Max: 5}); len(got) != 0 {
		t.Fatalf("a done task was claimed: %+v", got)
	}
}

// TestPowerLongPolls: a claim waiting for work wakes when a job is queued,
// and a follower waiting on a job wakes when a result arrives.
func TestPowerLongPolls(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	powerCluster(t, s)
	claimed := make(chan []model.PowerTask, 1)
	go func() {
		tasks, err := s.ClaimPowerTasks(ctx, ClaimOptions{Max: 5, Wait: 20 * time.Second})
		if err != nil {
			t.Error(err)
		}
		claimed <- tasks
	}()
	time.Sleep(100 * time.Millisecond) // let the claim block
	job, _, err := s.CreatePowerJob(ctx, admin, model.PowerRequest{Action: model.PowerStatus, Nodes: model.NodeSelection{"node001"}}, []string{"node001"}, "")
	if err != nil {
		t.Fatal(err)
	}
	tasks := <-claimed
	if len(tasks) != 1 || tasks[0].Job != job.ID {
		t.Fatalf("woken claim: %+v", tasks)
	}
	cur, _ := s.GetPowerJob(ctx, job.ID)
	followed := make(chan model.PowerJob, 1)
	go func() {
		j, err := s.WaitPowerJob(ctx, job.ID, cur.Revision, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		followed <- j
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := s.ReportPowerResults(ctx, []model.PowerResult{{Job: job.ID, Node: "node001", Lease: tasks[0].Lease, State: model.PowerStateOff}}); err != nil {
		t.Fatal(err)
	}
	j := <-followed
	if r, _ := j.Result("node001"); j.State != model.PowerJobDone || r.State != model.PowerStateOff {
		t.Fatalf("woken follower: %+v", j)
	}
	if _, err := s.WaitPowerJob(ctx, "00000000000000000000000000000000", 0, time.Second); !IsKind(err, KindNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.SetSecret(ctx, admin, "bmc", model.SecretValue{Value: bmcPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetSecret(ctx, admin, "bmc", model.SecretValue{Value: bmcPassword + "2"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ name, value string }{{"", "x"}, {"a b", "x"}, {"ok", ""}, {"ok", strings.Repeat("x", model.MaxSecretLen+1)}} {
		if _, err := s.SetSecret(ctx, admin, bad.name, model.SecretValue{Value: bad.value}); err == nil {
			t.Errorf("secret %q accepted", bad.name)
		}
	}
	list, err := s.ListSecrets(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "bmc" || list[0].User != "alice" || list[0].Updated.IsZero() {
		t.Fatalf("list: %+v %v", list, err)
	}
	page, _ := s.Audit(ctx, AuditQuery{Kind: "secret"})
	if len(page.Items) != 2 || page.Items[0].Method != "update" || page.Items[1].Msg != "secret bmc set" {
		t.Fatalf("audit: %+v", page.Items)
	}
	if a := rawAudit(t, s); strings.Contains(a, bmcPassword) {
		t.Fatal("the audit stream holds the secret")
	}
	if err := s.DeleteSecret(ctx, admin, "bmc"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, admin, "bmc"); !IsKind(err, KindNotFound) {
		t.Fatalf("delete again: %v", err)
	}
}

func TestPlanPower(t *testing.T) {
	node := func(name string, m model.PowerMethod, bmc string) model.Node {
		n := model.Node{Name: name, BMC: model.BMC{Address: bmc, CredentialRef: "bmc"}, PowerSupplies: []string{"psu1", "psu2"}}
		n.Effective = &model.Settings{PowerMethod: m}
		return n
	}
	conn := func(n, end, port string) model.Connection {
		return model.Connection{ID: model.ConnectionID(model.ConnPower, n, end), Kind: model.ConnPower, Node: n, End: end, Device: "pdu1", Port: port}
	}
	world := powerWorld{
		nodes: map[string]model.Node{
			"n1": node("n1", "", "10.0.0.1"), "n2": node("n2", model.PowerRedfish, ""), "n3": node("n3", model.PowerPDU, ""),
			"n4": node("n4", model.PowerPDU, ""), "n5": node("n5", model.PowerPDU, ""),
		},
		conns: map[string][]model.Connection{
			"n3": {conn("n3", "psu1", "A1"), conn("n3", "psu2", "A2")},
			"n4": {conn("n4", "psu1", "A3")},
		},
		devices: map[string]model.Device{"pdu1": {Name: "pdu1", Kind: model.DevicePDU, Driver: "eaton-g4", Address: "10.9.0.1", CredentialRef: "pdu"}},
		feeds: map[outletRef][]model.Connection{
			{"pdu1", "A1"}: {conn("n3", "psu1", "A1")},
			{"pdu1", "A2"}: {conn("n3", "psu2", "A2"), conn("n9", "psu1", "A2")},
			{"pdu1", "A3"}: {conn("n4", "psu1", "A3"), conn("n8", "psu1", "A3")},
		},
		secrets: map[string]bool{"bmc": true, "pdu": true},
	}
	for _, tc := range []struct {
		name    string
		req     model.PowerRequest
		names   []string
		tasks   map[string]model.PowerMethod // node → method of its task
		failed  map[string]string            // node → part of the reason
		refused string
	}{
		{name: "each node's own method", req: model.PowerRequest{Action: model.PowerOn}, names: []string{"n1", "n2", "n3", "n5", "zz"},
			tasks:  map[string]model.PowerMethod{"n1": model.PowerIPMI, "n3": model.PowerPDU},
			failed: map[string]string{"n2": "no BMC address", "n5": "plugged into a PDU outlet", "zz": "does not exist"}},
		{name: "method overrides", req: model.PowerRequest{Action: model.PowerStatus, Method: model.PowerIPMI}, names: []string{"n1", "n3"},
			tasks: map[string]model.PowerMethod{"n1": model.PowerIPMI}, failed: map[string]string{"n3": "no BMC address"}},
		{name: "soft through a PDU", req: model.PowerRequest{Action: model.PowerSoft}, names: []string{"n3"},
			failed: map[string]string{"n3": "cannot ask the operating system"}},
		{name: "shared outlets", req: model.PowerRequest{Action: model.PowerCycle}, names: []string{"n3", "n4"},
			refused: "pdu1 outlet A2 also feeds n9; pdu1 outlet A3 also feeds n8; add n[8-9]"},
		{name: "shared outlets forced", req: model.PowerRequest{Action: model.PowerCycle, Force: true}, names: []string{"n3", "n4"},
			tasks: map[string]model.PowerMethod{"n3": model.PowerPDU, "n4": model.PowerPDU}},
		{name: "shared outlets harmless for on", req: model.PowerRequest{Action: model.PowerOn}, names: []string{"n3", "n4"},
			tasks: map[string]model.PowerMethod{"n3": model.PowerPDU, "n4": model.PowerPDU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := planPower("job", tc.req, tc.names, world)
			if tc.refused != "" {
				if !IsKind(err, KindConflict) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("got %v, want a conflict with %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.tasks) != len(tc.tasks) || len(plan.failed) != len(tc.failed) {
				t.Fatalf("plan: %+v", plan)
			}
			for _, tk := range plan.tasks {
				if tc.tasks[tk.Task.Node] != tk.Task.Method {
					t.Errorf("%s: method %s, want %s", tk.Task.Node, tk.Task.Method, tc.tasks[tk.Task.Node])
				}
			}
			for _, f := range plan.failed {
				if !strings.Contains(f.Error, tc.failed[f.Node]) || tc.failed[f.Node] == "" {
					t.Errorf("%s: %q, want %q", f.Node, f.Error, tc.failed[f.Node])
				}
			}
		})
	}
	plan, _ := planPower("job", model.PowerRequest{Action: model.PowerCycle, CycleWait: "12s", Force: true}, []string{"n3"}, world)
	if tk := plan.tasks[0]; tk.Task.CycleWaitMS != 12000 || len(tk.Task.Outlets) != 2 || tk.OutletSecrets[1] != "pdu" || tk.Task.Outlets[1].Password != "" {
		t.Fatalf("cycle task: %+v", tk)
	}
}

// BenchmarkPowerJob1000 queues a 1000-node job, claims all of it and
// reports every result: the store's work for one cluster-wide power on.
func BenchmarkPowerJob1000(b *testing.B) {
	s, _ := openTest(b)
	ctx := context.Background()
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("n%04d", i)
		if _, err := s.CreateNode(ctx, admin, model.Node{Name: names[i], BMC: model.BMC{Address: "10.0.0.1"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		job, _, err := s.CreatePowerJob(ctx, admin, model.PowerRequest{Action: model.PowerOn, Nodes: model.NodeSelection{"x"}}, names, "")
		if err != nil {
			b.Fatal(err)
		}
		tasks, err := s.ClaimPowerTasks(ctx, ClaimOptions{Max: 1000})
		if err != nil || len(tasks) != 1000 {
			b.Fatalf("claimed %d: %v", len(tasks), err)
		}
		results := make([]model.PowerResult, len(tasks))
		for i, tk := range tasks {
			results[i] = model.PowerResult{Job: tk.Job, Node: tk.Node, Lease: tk.Lease, State: model.PowerStateOn}
		}
		if _, err := s.ReportPowerResults(ctx, results); err != nil {
			b.Fatal(err)
		}
		if j, _ := s.GetPowerJob(ctx, job.ID); j.State != model.PowerJobDone {
			b.Fatalf("job %s", j.State)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "nodes/s")
}
