package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/ipmisim"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

const (
	// bmcPassword must appear nowhere in the audit stream or the edge's log.
	bmcPassword = "e2e-bmc-pw-7c41d9"
	bmcSecret   = "bmc-e2e"
)

// bmcMachine is the test machine behind a real BMC: OpenIPMI's ipmi_sim,
// whose power on runs qemu (its startcmd), whose chassis is on while
// that qemu lives, and whose power off asks qemu to shut down over the
// machine's BMC line (QEMU's ipmi-bmc-extern; the guest sees the BMC as
// an isa-ipmi-bt device) before it kills it. herd drives it as any BMC:
// a power job, claimed by the edge, run with bmclib and ipmitool.
type bmcMachine struct {
	bmc     *ipmisim.BMC
	pidFile string
	// consoles brings the serial line of each qemu the BMC starts.
	consoles chan *vm
}

// newBMCMachine starts the BMC of the machine with disk, mac and rom
// (machineArgs'), powered off. Its files go into out.
func newBMCMachine(t *testing.T, ns, disk, mac, rom, out string) *bmcMachine {
	t.Helper()
	bm := &bmcMachine{pidFile: filepath.Join(out, "bmc-qemu.pid"), consoles: make(chan *vm, 4)}
	// qemu runs in the segment's namespace, whose loopback is not the
	// host's, and ipmi_sim listens on the host's: both reach a unix
	// socket (sockets in the file system belong to no network
	// namespace), so the serial console and the BMC line go through
	// sockets in out.
	consoleSock, bmcSock := filepath.Join(out, "bmc-console.sock"), filepath.Join(out, "bmc-line.sock")
	consoles, err := net.Listen("unix", consoleSock)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := net.Listen("unix", bmcSock)
	if err != nil {
		consoles.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	// Last, after qemu and ipmi_sim are gone: stop listening and reading.
	t.Cleanup(func() {
		consoles.Close()
		lines.Close()
		wg.Wait()
		for len(bm.consoles) > 0 {
			(<-bm.consoles).stop()
		}
	})
	// -nographic: the firmware and iPXE print on the serial line too.
	args := append(machineArgs(disk, mac, rom), "-nographic",
		"-chardev", "socket,id=con0,path="+consoleSock, "-serial", "chardev:con0",
		"-chardev", "socket,id=ipmi0,path="+bmcSock+",reconnect=1",
		"-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-bt,bmc=bmc0",
		"-pidfile", bm.pidFile)
	script := filepath.Join(out, "bmc-power-on.sh")
	// setpriv: qemu dies with ipmi_sim, which dies with the test.
	writeFile(t, script, "#!/bin/sh\n# ipmi_sim's startcmd: power on is this machine.\nexec setpriv --pdeathsig KILL ip netns exec "+
		shellQuote(ns)+" qemu-system-x86_64 "+shellQuote(args...)+"\n")
	bm.bmc = ipmisim.Start(t, 1, ipmisim.Options{Username: "admin", Password: bmcPassword,
		VM: &ipmisim.VM{Command: script, PoweroffWait: 10 * time.Second, KillWait: 3 * time.Second}})[0]

	// First, before ipmi_sim's own cleanup: a machine still on is
	// switched off here (and would die with ipmi_sim anyway).
	t.Cleanup(func() {
		pid := bm.pid()
		if pid <= 0 || !alive(pid) {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		// Let ipmi_sim reap it, or it stays a zombie until init does.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				return
			}
		}
	})

	wg.Add(2)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := consoles.Accept()
			if err != nil {
				return
			}
			serial := filepath.Join(out, fmt.Sprintf("serial-bmc-%d.log", n))
			f, err := os.Create(serial)
			if err != nil {
				c.Close()
				continue
			}
			m := newVM(serial)
			m.conn, m.stays = c, true
			go m.read(c, f, func() error { return c.Close() })
			bm.consoles <- m
		}
	}()
	go func() {
		defer wg.Done()
		relay(lines, bm.bmc.VMAddress)
	}()
	t.Logf("the machine's BMC: ipmi_sim on %s, its VM line on %s; power on runs %s", bm.bmc.Address, bm.bmc.VMAddress, script)
	return bm
}

// relay copies each connection on l to and from a new TCP connection to
// addr, until l is closed.
func relay(l net.Listener, addr string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer d.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(d, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, d); done <- struct{}{} }()
			<-done // either side ended: end both
		}()
	}
}

// pid is the running (or last) qemu's process id, 0 when none started.
func (bm *bmcMachine) pid() int {
	raw, err := os.ReadFile(bm.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// console waits for the serial line of the qemu the BMC has just started.
func (bm *bmcMachine) console(ctx context.Context) (*vm, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case m := <-bm.consoles:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("the BMC started no machine (no serial line connected): %w", ctx.Err())
	}
}

// powerFigures are the power actions' times, for the figures line.
type powerFigures struct {
	status       time.Duration // one power status job, end to end
	offToOff     time.Duration // power off asked to qemu gone and herd saying off
	offAtBMC     time.Duration // the edge's own measure of that power off
	boot4, boot5 boot          // power on asked to pivot, in toPivot
}

func (p powerFigures) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	return fmt.Sprintf("power status %s; power on to pivot %s (boot 4), %s (boot 5, after the BMC's power off); "+
		"power off to qemu gone and status off %s (at the BMC %s); image bytes fetched %d, %d",
		r(p.status), r(p.boot4.toPivot), r(p.boot5.toPivot), r(p.offToOff), r(p.offAtBMC), p.boot4.fetched, p.boot5.fetched)
}

// powerThroughHerd is step 8: n001 gets its BMC, and herd's power API
// drives it. Off (the machine powered itself off after boot 3); on boots
// it through herd with nothing to do (boot 4); on while it runs; off ends
// qemu; on boots it again (boot 5); off.
func powerThroughHerd(t *testing.T, ctx context.Context, api *client.Client, ns, disk, rom, out, prev string, fail func(string, ...any)) powerFigures {
	t.Helper()
	var pf powerFigures
	bm := newBMCMachine(t, ns, disk, vmMAC, rom, out)
	if _, err := api.SetSecret(ctx, bmcSecret, bmcPassword); err != nil {
		fail("set the BMC secret: %v", err)
	}
	if _, err := api.PatchNode(ctx, nodeName, map[string]any{"bmc": map[string]any{
		"address": bm.bmc.Address, "username": "admin", "credential_ref": bmcSecret}}, 0); err != nil {
		fail("give %s its BMC: %v", nodeName, err)
	}

	begin := time.Now()
	if r := powerAction(t, ctx, api, model.PowerStatus, fail); r.State != model.PowerStateOff {
		t.Errorf("power status after boot 3 powered itself off: %s, want off", r.State)
	}
	pf.status = time.Since(begin)

	bootOn := func(n int) boot {
		t.Helper()
		onAt := time.Now()
		if r := powerAction(t, ctx, api, model.PowerOn, fail); r.State != model.PowerStateOn {
			t.Errorf("power on: the edge saw %s, want on", r.State)
		}
		m, err := bm.console(ctx)
		if err != nil {
			fail("boot %d: %v", n, err)
		}
		t.Logf("boot %d: the BMC started qemu %d; serial console in %s", n, bm.pid(), m.serial)
		m.started = onAt // power-on to pivot counts from the request to herd
		b := awaitBoot(t, ctx, api, m, prev, fail)
		prev = b.session.Session.ID
		t.Logf("boot %d: %s", n, b)
		checkTimeline(t, b)
		if !strings.Contains(b.marker, "bmc=true") || !strings.Contains(b.marker, "hostname="+nodeName) ||
			!strings.Contains(b.marker, `marker="version 2"`) {
			t.Errorf("boot %d: the image's init said %q, want n001, version 2, with a BMC", n, b.marker)
		}
		if !strings.Contains(b.disksMsg, "nothing to do") {
			t.Errorf("boot %d: disks step %q, want nothing to do", n, b.disksMsg)
		}
		if b.fetched != 0 {
			t.Errorf("boot %d fetched %d image bytes, want 0: %s", n, b.fetched, b.imageMsg)
		}
		return b
	}

	pf.boot4 = bootOn(4)
	if r := powerAction(t, ctx, api, model.PowerStatus, fail); r.State != model.PowerStateOn {
		t.Errorf("power status while the machine runs: %s, want on", r.State)
	}
	pid := bm.pid()
	if !alive(pid) {
		t.Errorf("qemu (pid %d) is not running after boot 4", pid)
	}

	offAt := time.Now()
	r := powerAction(t, ctx, api, model.PowerOff, fail)
	pf.offAtBMC = time.Duration(r.TookMS) * time.Millisecond
	for deadline := time.Now().Add(30 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail("qemu (pid %d) still runs 30s after power off", pid)
		}
	}
	if s := powerAction(t, ctx, api, model.PowerStatus, fail); s.State != model.PowerStateOff {
		t.Errorf("power status after power off: %s, want off", s.State)
	}
	pf.offToOff = time.Since(offAt)
	t.Logf("power off: qemu %d gone and herd says off after %s", pid, pf.offToOff.Round(10*time.Millisecond))

	pf.boot5 = bootOn(5)
	pid = bm.pid()
	powerAction(t, ctx, api, model.PowerOff, fail)
	for deadline := time.Now().Add(30 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail("qemu (pid %d) still runs 30s after the last power off", pid)
		}
	}
	return pf
}

// powerAction runs one power job on n001 through herd (the edge claims
// it and drives the BMC) and returns the node's result, failing the test
// unless it is ok.
func powerAction(t *testing.T, ctx context.Context, api *client.Client, action model.PowerAction, fail func(string, ...any)) model.PowerNodeResult {
	t.Helper()
	job, err := api.CreatePowerJob(ctx, model.PowerRequest{Action: action, Nodes: model.NodeSelection{nodeName}}, "")
	if err != nil {
		fail("power %s: %v", action, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if job, err = api.FollowPowerJob(wctx, job.ID, nil); err != nil {
		fail("power %s: job %s: %v", action, job.ID, err)
	}
	r, ok := job.Result(nodeName)
	if !ok || r.Status != model.PowerNodeOK {
		fail("power %s: job %s: %+v", action, job.ID, job.Results)
	}
	t.Logf("power %s: %s, state %s, %dms at the BMC", action, r.Status, r.State, r.TookMS)
	return r
}

// checkPowerAudit wants each power action on n001 in the audit stream,
// and the BMC password in no event of it nor in the edge's log.
func checkPowerAudit(t *testing.T, ctx context.Context, api *client.Client, edgeLog string) {
	t.Helper()
	page, err := api.Audit(ctx, client.AuditQuery{Kind: "power", Ref: nodeName, ListOptions: client.ListOptions{Limit: 100}})
	if err != nil {
		t.Errorf("audit of the power actions: %v", err)
		return
	}
	count := map[string]int{}
	for _, e := range page.Items {
		if !strings.Contains(e.Msg, nodeName) {
			t.Errorf("power audit event without the node's name: %+v", e)
		}
		count[e.Method]++
	}
	// status, on, status, off, status, on, off.
	if count["on"] != 2 || count["off"] != 2 || count["status"] != 3 {
		t.Errorf("the audit stream holds power events %v, want on 2, off 2, status 3", count)
	}
	all, err := api.Audit(ctx, client.AuditQuery{ListOptions: client.ListOptions{Limit: 1000}})
	if err != nil {
		t.Errorf("audit: %v", err)
	}
	raw, _ := json.Marshal(all)
	if strings.Contains(string(raw), bmcPassword) {
		t.Error("the BMC password is in the audit stream")
	}
	if !strings.Contains(string(raw), "secret "+bmcSecret) {
		t.Errorf("the audit stream lacks the setting of secret %s", bmcSecret)
	}
	if log, err := os.ReadFile(edgeLog); err != nil {
		t.Error(err)
	} else if strings.Contains(string(log), bmcPassword) {
		t.Error("the BMC password is in the edge's log")
	}
}

// shellQuote quotes each of args for /bin/sh, joined by spaces.
func shellQuote(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
