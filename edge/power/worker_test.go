package power_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/eaton/eatonsim"
	"github.com/herd-hpc/herd/edge/power/ipmisim"
	"github.com/herd-hpc/herd/edge/power/redfishsim"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// runWorker runs a worker over q until the test ends and checks that Run
// returns once its context is cancelled.
func runWorker(t *testing.T, q power.Queue, opts power.WorkerOptions, bmcTimeout time.Duration, log *slog.Logger) {
	t.Helper()
	pdus := power.NewPDUs(drivers(), power.PDUOptions{Timeout: 5 * time.Second})
	w := power.NewWorker(q, power.NewBMC(power.BMCOptions{Timeout: bmcTimeout}), pdus, opts, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		_ = pdus.Close(context.Background())
	})
}

func task(job, node string, action model.PowerAction, method model.PowerMethod) model.PowerTask {
	return model.PowerTask{Job: job, Node: node, Action: action, Method: method, Attempt: 1, Lease: "lease-" + node}
}

func TestWorkerPartialFailureAcrossNodes(t *testing.T) {
	ipmi := ipmisim.Start(t, 3, ipmisim.Options{On: true})
	slow := ipmisim.Start(t, 1, ipmisim.Options{Delay: 1500 * time.Millisecond})[0]
	rf := redfishsim.Start(t, redfishsim.Options{BMCs: 2, On: true})
	card := eatonsim.Start(t, eatonsim.Options{Outlets: 4, On: true})
	dead, err := ipmisim.UnusedAddress()
	if err != nil {
		t.Fatal(err)
	}

	q := newMemQueue(100)
	runWorker(t, q, power.WorkerOptions{Parallelism: 16, ClaimWait: 200 * time.Millisecond}, 4*time.Second, slog.New(slog.DiscardHandler))

	var tasks []model.PowerTask
	for i, b := range ipmi {
		tk := task("job1", fmt.Sprintf("ipmi%d", i), model.PowerOff, model.PowerIPMI)
		tk.BMC = &model.BMCTarget{Address: b.Address, Username: b.Username, Password: b.Password}
		tasks = append(tasks, tk)
	}
	wrong := task("job1", "wrongpw", model.PowerOff, model.PowerIPMI)
	wrong.BMC = &model.BMCTarget{Address: ipmi[0].Address, Username: "admin", Password: "nope"}
	unreachable := task("job1", "unreachable", model.PowerOff, model.PowerIPMI)
	unreachable.BMC = &model.BMCTarget{Address: dead, Username: "admin", Password: "x"}
	slowTask := task("job1", "slow", model.PowerStatus, model.PowerIPMI)
	slowTask.BMC = &model.BMCTarget{Address: slow.Address, Username: slow.Username, Password: slow.Password}
	rfTask := task("job1", "redfish0", model.PowerOff, model.PowerRedfish)
	target := redfishTarget(rf, 0)
	rfTask.BMC = &target
	pduTask := task("job1", "pdu-node", model.PowerOff, model.PowerPDU)
	pduTask.Outlets = []model.OutletTarget{outlet(card, "pdu", "psu1", "1"), outlet(card, "pdu", "psu2", "2")}
	noBMC := task("job1", "nobmc", model.PowerOff, model.PowerRedfish)
	tasks = append(tasks, unreachable, wrong, slowTask, rfTask, pduTask, noBMC)
	q.add(tasks...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, order, err := q.collect(ctx, len(tasks))
	if err != nil {
		t.Fatalf("results so far %q: %v", order, err)
	}

	for i, b := range ipmi {
		r := got[fmt.Sprintf("ipmi%d", i)]
		if r.Error != "" || r.State != model.PowerStateOff {
			t.Errorf("ipmi%d: %+v", i, r)
		}
		if on, _ := b.On(); on {
			t.Errorf("ipmi%d still on", i)
		}
	}
	for _, r := range got {
		if r.Job != "job1" || r.Lease != "lease-"+r.Node || r.Done.IsZero() {
			t.Errorf("result %+v lacks its job, lease or time", r)
		}
	}
	if r := got["wrongpw"]; !strings.Contains(r.Error, "wrong username or password") || r.State != model.PowerStateUnknown {
		t.Errorf("wrong password: %+v", r)
	}
	if r := got["unreachable"]; !strings.Contains(r.Error, "no answer within the timeout") {
		t.Errorf("unreachable BMC: %+v", r)
	}
	if r := got["slow"]; r.Error != "" || r.State != model.PowerStateOff {
		t.Errorf("slow BMC: %+v", r)
	}
	if r := got["redfish0"]; r.Error != "" || r.State != model.PowerStateOff || rf.On(0) || !rf.On(1) {
		t.Errorf("redfish: %+v (BMC 0 on=%t, BMC 1 on=%t)", r, rf.On(0), rf.On(1))
	}
	if r := got["pdu-node"]; r.Error != "" || r.State != model.PowerStateOff || card.On(1) || card.On(2) || !card.On(3) {
		t.Errorf("PDU node: %+v", r)
	}
	if r := got["nobmc"]; !strings.Contains(r.Error, "names no BMC") {
		t.Errorf("task without a BMC: %+v", r)
	}
	// The dead BMC holds only its own slot: everything else was reported
	// before its timeout ended.
	if order[len(order)-1] != "unreachable" {
		t.Errorf("report order %q; the unreachable BMC should come last", order)
	}
}

func TestWorkerDoesNotRepeatInterruptedTasks(t *testing.T) {
	rf := redfishsim.Start(t, redfishsim.Options{BMCs: 3, On: true})
	ipmi := ipmisim.Start(t, 1, ipmisim.Options{On: true})[0]
	q := newMemQueue(10)
	runWorker(t, q, power.WorkerOptions{ClaimWait: 200 * time.Millisecond}, 10*time.Second, slog.New(slog.DiscardHandler))

	again := func(node string, action model.PowerAction, method model.PowerMethod, target model.BMCTarget) model.PowerTask {
		tk := task("job2", node, action, method)
		tk.Attempt = 2
		tk.BMC = &target
		return tk
	}
	q.add(
		again("rf-cycle", model.PowerCycle, model.PowerRedfish, redfishTarget(rf, 0)),
		again("rf-reset", model.PowerReset, model.PowerRedfish, redfishTarget(rf, 1)),
		again("rf-off", model.PowerOff, model.PowerRedfish, redfishTarget(rf, 2)),
		again("ipmi-cycle", model.PowerCycle, model.PowerIPMI, ipmiTarget(ipmi)),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, _, err := q.collect(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"rf-cycle", "rf-reset", "ipmi-cycle"} {
		if r := got[node]; r.Error != power.Interrupted || r.State != model.PowerStateOn {
			t.Errorf("%s claimed a second time: %+v; want the interrupted error and the state read now", node, r)
		}
	}
	if len(rf.Resets(0)) != 0 || len(rf.Resets(1)) != 0 {
		t.Errorf("an interrupted cycle or reset ran again: %q %q", rf.Resets(0), rf.Resets(1))
	}
	if slices.ContainsFunc(ipmi.Commands(), func(c string) bool { return strings.HasPrefix(c, "set ") }) {
		t.Errorf("an interrupted IPMI cycle ran again: %q", ipmi.Commands())
	}
	// off is idempotent: a second claim runs it.
	if r := got["rf-off"]; r.Error != "" || r.State != model.PowerStateOff || rf.On(2) {
		t.Errorf("idempotent off on its second claim: %+v", r)
	}
}

func TestWorkerBoundsParallelism(t *testing.T) {
	rf := redfishsim.Start(t, redfishsim.Options{BMCs: 6, Latency: 20 * time.Millisecond})
	q := newMemQueue(10)
	runWorker(t, q, power.WorkerOptions{Parallelism: 2, ClaimWait: 100 * time.Millisecond}, 10*time.Second, slog.New(slog.DiscardHandler))
	for i := range 6 {
		tk := task("job3", fmt.Sprintf("n%d", i), model.PowerStatus, model.PowerRedfish)
		target := redfishTarget(rf, i)
		tk.BMC = &target
		q.add(tk)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, _, err := q.collect(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	for node, r := range got {
		if r.Error != "" || r.State != model.PowerStateOff {
			t.Errorf("%s: %+v", node, r)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.maxAsked > 2 {
		t.Errorf("the worker asked for %d tasks at once with parallelism 2", q.maxAsked)
	}
}

func TestWorkerNeverLogsPasswords(t *testing.T) {
	ipmi := ipmisim.Start(t, 1, ipmisim.Options{Password: "ipmi-Pa55word"})[0]
	rf := redfishsim.Start(t, redfishsim.Options{Password: "redfish-Pa55word"})
	card := eatonsim.Start(t, eatonsim.Options{Password: "eaton-Pa55word"})
	var logs testenv.Logs
	q := newMemQueue(10)
	runWorker(t, q, power.WorkerOptions{ClaimWait: 200 * time.Millisecond}, 5*time.Second,
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	secrets := []string{"ipmi-Pa55word", "redfish-Pa55word", "eaton-Pa55word", "wrong-Pa55word"}
	ok := task("job4", "ipmi-ok", model.PowerOn, model.PowerIPMI)
	ok.BMC = &model.BMCTarget{Address: ipmi.Address, Username: ipmi.Username, Password: "ipmi-Pa55word"}
	bad := task("job4", "ipmi-bad", model.PowerOn, model.PowerIPMI)
	bad.BMC = &model.BMCTarget{Address: ipmi.Address, Username: ipmi.Username, Password: "wrong-Pa55word"}
	rfOK := task("job4", "rf-ok", model.PowerCycle, model.PowerRedfish)
	rfOK.BMC = &model.BMCTarget{Address: rf.Address(0), Username: "admin", Password: "redfish-Pa55word", Fingerprint: rf.Fingerprint()}
	rfBad := task("job4", "rf-bad", model.PowerCycle, model.PowerRedfish)
	rfBad.BMC = &model.BMCTarget{Address: rf.Address(0), Username: "admin", Password: "wrong-Pa55word", Fingerprint: rf.Fingerprint()}
	rfBad.Attempt = 3
	pduOK := task("job4", "pdu-ok", model.PowerOn, model.PowerPDU)
	o := outlet(card, "pdu", "psu1", "1")
	o.Password = "eaton-Pa55word"
	pduOK.Outlets = []model.OutletTarget{o}
	pduBad := task("job4", "pdu-bad", model.PowerOn, model.PowerPDU)
	o.Password, o.Username = "wrong-Pa55word", "other"
	pduBad.Outlets = []model.OutletTarget{o}
	q.add(ok, bad, rfOK, rfBad, pduOK, pduBad)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, _, err := q.collect(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if got["ipmi-ok"].Error != "" || got["rf-ok"].Error != "" || got["pdu-ok"].Error != "" {
		t.Fatalf("the tasks with good passwords failed: %+v", got)
	}
	if got["ipmi-bad"].Error == "" || got["rf-bad"].Error == "" || got["pdu-bad"].Error == "" {
		t.Fatalf("the tasks with wrong passwords succeeded: %+v", got)
	}
	text := logs.String()
	if !strings.Contains(text, "ipmi-bad") || !strings.Contains(text, "power task done") {
		t.Fatalf("the worker logged too little to check: %s", text)
	}
	for _, secret := range secrets {
		if strings.Contains(text, secret) {
			t.Errorf("the log shows password %q:\n%s", secret, text)
		}
		for node, r := range got {
			if strings.Contains(r.Error, secret) {
				t.Errorf("the result of %s shows password %q: %s", node, secret, r.Error)
			}
		}
	}
}
