package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store/storetest"
)

const testEdgeSecret = "test-edge-secret"

// powerHerd is loggedIn with an edge secret, so a test can play the edge.
func powerHerd(t *testing.T) *herd {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: testEdgeSecret, Log: log}
	_, pw, _, err := au.EnsureFirstAdmin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(st, au, log))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { st.Close() })
	h := &herd{t: t, url: srv.URL, store: st, password: pw,
		env: map[string]string{"HERD_CONFIG": filepath.Join(t.TempDir(), "herd", "credentials")}}
	h.ok(h.runIn(pw+"\n", "login", "--server", h.url, "--user", "admin", "--password-stdin"))
	return h
}

// fakeEdge claims power tasks until ctx ends and reports what outcome
// says for each; outcome returning ok=false drops the task unreported,
// as an edge that stops mid-job would.
func fakeEdge(ctx context.Context, t *testing.T, url, name string, lease time.Duration,
	outcome func(model.PowerTask) (model.PowerResult, bool)) <-chan struct{} {
	done := make(chan struct{})
	q := client.NewPowerQueue(url, nil, testEdgeSecret)
	q.Name, q.Lease = name, lease
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			tasks, err := q.Claim(ctx, 500*time.Millisecond, 100)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("%s: %v", name, err)
				}
				return
			}
			var results []model.PowerResult
			for _, tk := range tasks {
				r, ok := outcome(tk)
				if !ok {
					continue
				}
				r.Job, r.Node, r.Lease, r.Method, r.Done = tk.Job, tk.Node, tk.Lease, tk.Method, time.Now()
				results = append(results, r)
			}
			if err := q.Report(ctx, results); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}()
	return done
}

func TestPowerCLI(t *testing.T) {
	h := powerHerd(t)
	const password = "bmc-secret-9Xv"
	h.ok(h.runIn(password+"\n", "secret", "set", "bmc"))
	r := h.ok(h.run("secret", "list"))
	if !strings.Contains(r.stdout, "bmc") || strings.Contains(r.stdout, password) {
		t.Fatalf("secret list:\n%s", r.stdout)
	}
	h.failed(h.runIn("", "secret", "set", "bmc"), 2, "empty value")
	ctx := context.Background()
	cl := h.api()
	for i := 1; i <= 3; i++ {
		if _, err := cl.CreateNode(ctx, model.Node{Name: fmt.Sprintf("node%03d", i),
			BMC: model.BMC{Address: fmt.Sprintf("10.2.0.%d", i), Username: "root", CredentialRef: "bmc"}}); err != nil {
			t.Fatal(err)
		}
	}

	edgeCtx, stop := context.WithCancel(ctx)
	edgeDone := fakeEdge(edgeCtx, t, h.url, "edge1", 0, func(tk model.PowerTask) (model.PowerResult, bool) {
		if tk.BMC == nil || tk.BMC.Password != password {
			return model.PowerResult{State: model.PowerStateUnknown, Error: "no password"}, true
		}
		if tk.Node == "node002" {
			return model.PowerResult{State: model.PowerStateUnknown, TookMS: 3000, Error: "BMC 10.2.0.2 did not answer"}, true
		}
		return model.PowerResult{State: model.PowerStateOn, TookMS: 420}, true
	})
	defer func() { stop(); <-edgeDone }()

	r = h.failed(h.run("power", "on", "node[001-003]"), 1)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || lines[4] != "2 ok, 1 failed" {
		t.Fatalf("power on:\n%s", r.stdout)
	}
	checkAligned(t, strings.Join(lines[:4], "\n")+"\n")
	for i, want := range [][]string{
		{"NODE", "STATE", "METHOD", "TIME", "ERROR"},
		{"node001", "on", "ipmi", "0.4s", "-"},
		{"node002", "unknown", "ipmi", "3.0s", "BMC", "10.2.0.2", "did", "not", "answer"},
		{"node003", "on", "ipmi", "0.4s", "-"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}

	r = h.ok(h.run("power", "status", "node001", "--json"))
	job := decode[model.PowerJob](t, r.stdout)
	if job.State != model.PowerJobDone || job.Counts.OK != 1 || job.Results[0].State != model.PowerStateOn {
		t.Fatalf("status --json: %+v", job)
	}
	r = h.ok(h.run("power", "off", "node003", "--no-wait"))
	id := strings.Fields(r.stdout)[3]
	r = h.ok(h.run("power", "show", id))
	if !strings.Contains(r.stdout, "node003") || !strings.Contains(r.stdout, "1 ok, 0 failed") {
		t.Fatalf("power show:\n%s", r.stdout)
	}
	r = h.ok(h.run("power", "jobs"))
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "node[001-003]") {
		t.Fatalf("power jobs:\n%s", r.stdout)
	}
	h.failed(h.run("power", "on", "node[1-"), 2, "power on")
	h.failed(h.run("power", "on", "node001", "--method", "smoke"), 2, "not a power method")
	h.failed(h.run("power", "on", "nodeX"), 1, "none of the 1 node named exists")
	if a := h.ok(h.run("audit", "--json")); strings.Contains(a.stdout, password) {
		t.Fatal("the audit shows the secret")
	}
}

// TestPowerCLISharedOutlet: an off through an outlet shared with a node
// outside the range is refused naming that node, and goes ahead forced.
func TestPowerCLISharedOutlet(t *testing.T) {
	h := powerHerd(t)
	ctx := context.Background()
	cl := h.api()
	if _, err := cl.CreateDevice(ctx, model.Device{Name: "pdu1", Kind: model.DevicePDU, Address: "10.1.0.1", Driver: "eaton-g4", Outlets: []string{"A1"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"gpu01", "gpu02"} {
		if _, err := cl.CreateNode(ctx, model.Node{Name: n, PowerSupplies: []string{"psu1"}, Settings: model.Settings{PowerMethod: model.PowerPDU}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Connect(ctx, model.Connection{Kind: model.ConnPower, Node: n, End: "psu1", Device: "pdu1", Port: "A1"}); err != nil {
			t.Fatal(err)
		}
	}
	h.failed(h.run("power", "cycle", "gpu01"), 1, "pdu1 outlet A1 also feeds gpu02")

	edgeCtx, stop := context.WithCancel(ctx)
	edgeDone := fakeEdge(edgeCtx, t, h.url, "edge1", 0, func(tk model.PowerTask) (model.PowerResult, bool) {
		if len(tk.Outlets) != 1 || tk.Outlets[0].Outlet != "A1" || tk.CycleWaitMS != 2000 {
			return model.PowerResult{State: model.PowerStateUnknown, Error: fmt.Sprintf("bad task %+v", tk)}, true
		}
		return model.PowerResult{State: model.PowerStateOn}, true
	})
	defer func() { stop(); <-edgeDone }()
	r := h.ok(h.run("power", "cycle", "gpu01", "--force", "--cycle-wait", "2s"))
	if !strings.Contains(r.stdout, "gpu01") || !strings.Contains(r.stdout, "pdu") {
		t.Fatalf("forced cycle:\n%s", r.stdout)
	}
}

// TestPowerCLIEdgeRestart: the edge that claimed the job stops without
// reporting; once its lease runs out another edge picks the task up as
// attempt 2, and the command the admin is watching finishes.
func TestPowerCLIEdgeRestart(t *testing.T) {
	h := powerHerd(t)
	ctx := context.Background()
	if _, err := h.api().CreateNode(ctx, model.Node{Name: "node001", BMC: model.BMC{Address: "10.2.0.1"}}); err != nil {
		t.Fatal(err)
	}
	firstCtx, stopFirst := context.WithCancel(ctx)
	claimed := make(chan struct{})
	firstDone := fakeEdge(firstCtx, t, h.url, "edge-before", time.Second, func(tk model.PowerTask) (model.PowerResult, bool) {
		close(claimed)
		return model.PowerResult{}, false // stops before reporting
	})
	res := make(chan result, 1)
	go func() { res <- h.run("power", "on", "node001", "--json") }()
	<-claimed
	stopFirst()
	<-firstDone

	secondCtx, stopSecond := context.WithCancel(ctx)
	secondDone := fakeEdge(secondCtx, t, h.url, "edge-after", 0, func(tk model.PowerTask) (model.PowerResult, bool) {
		if tk.Attempt != 2 {
			return model.PowerResult{State: model.PowerStateUnknown, Error: fmt.Sprintf("attempt %d", tk.Attempt)}, true
		}
		return model.PowerResult{State: model.PowerStateOn}, true
	})
	defer func() { stopSecond(); <-secondDone }()
	var r result
	select {
	case r = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not finish after the second edge took over")
	}
	h.ok(r)
	job := decode[model.PowerJob](t, r.stdout)
	if got := job.Results[0]; got.Attempt != 2 || got.Edge != "edge-after" || got.Status != model.PowerNodeOK {
		t.Fatalf("result: %+v", got)
	}
}
