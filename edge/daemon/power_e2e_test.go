package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/ipmisim"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// TestPowerThroughTheEdge runs power jobs the whole way: an admin asks
// functions, the edge claims the tasks and drives real IPMI simulators
// through bmclib, and the results come back. One node's BMC does not
// answer: it fails alone, after the per-BMC timeout, and the BMC password
// appears nowhere in the audit stream or the edge's logs.
func TestPowerThroughTheEdge(t *testing.T) {
	ctx := context.Background()
	const password = "bmc-password-7f3a"
	bmcs := ipmisim.Start(t, 3, ipmisim.Options{Username: "admin", Password: password})

	fns, ecfg := startFunctions(t)
	ecfg.PowerTimeout = 3 * time.Second
	addrs, logs, _, _ := start(t, ecfg)

	user, pw, _, err := fns.Auth.EnsureFirstAdmin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	api := client.New("http://"+addrs.HTTP.String(), "", nil)
	lr, err := api.Login(ctx, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	api = api.WithToken(lr.Token)
	if _, err := api.SetSecret(ctx, "bmc", password); err != nil {
		t.Fatal(err)
	}
	dead, err := ipmisim.UnusedAddress()
	if err != nil {
		t.Fatal(err)
	}
	addresses := []string{bmcs[0].Address, bmcs[1].Address, bmcs[2].Address, dead}
	for i, a := range addresses {
		n := model.Node{Name: fmt.Sprintf("node%03d", i+1), BMC: model.BMC{Address: a, Username: "admin", CredentialRef: "bmc"}}
		if _, err := api.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	job, err := api.CreatePowerJob(ctx, model.PowerRequest{Action: model.PowerOn, Nodes: model.NodeSelection{"node[001-004]"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	job, err = api.FollowPowerJob(wctx, job.ID, func(model.PowerJob) {})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != model.PowerJobDone {
		t.Fatalf("job not done: %+v", job)
	}
	for _, r := range job.Results {
		want := model.PowerNodeOK
		if r.Node == "node004" {
			want = model.PowerNodeFailed
		}
		if r.Status != want {
			t.Errorf("%s: %s (%s), want %s", r.Node, r.Status, r.Error, want)
		}
		if r.Node != "node004" && r.State != model.PowerStateOn {
			t.Errorf("%s: state %s after power on", r.Node, r.State)
		}
	}
	for i, b := range bmcs {
		if on, err := b.On(); err != nil || !on {
			t.Errorf("BMC %d is not on after the job: %v %v", i, on, err)
		}
	}

	events, err := fns.Store.Audit(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events.Items {
		if strings.Contains(fmt.Sprint(ev), password) {
			t.Errorf("the BMC password is in audit event %s %s", ev.Kind, ev.Method)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Error("the BMC password is in the edge's logs")
	}
}
