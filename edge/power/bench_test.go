package power_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/ipmisim"
	"github.com/herd-hpc/herd/edge/power/redfishsim"
	"github.com/herd-hpc/herd/functions/model"
)

// The figure: `herd power status` and `cycle` across 1,000
// simulated BMCs. 1,000 ipmi_sim processes and as many ipmitool runs do
// not fit this 2-core machine's share, so the 1,000 are Redfish BMCs with
// 50 ms per request (a BMC across a network), and the side-by-side with a
// plain ipmitool loop runs on HERD_BENCH_IPMISIM ipmi_sim BMCs (default
// 200).

const benchLatency = 50 * time.Millisecond

// runJob runs tasks through a fresh worker and returns the wall time until
// the last result was reported.
func runJob(b *testing.B, tasks []model.PowerTask, parallelism int, bmcTimeout time.Duration) time.Duration {
	b.Helper()
	q := newMemQueue(len(tasks))
	w := power.NewWorker(q, power.NewBMC(power.BMCOptions{Timeout: bmcTimeout}), nil,
		power.WorkerOptions{Parallelism: parallelism, ClaimWait: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	start := time.Now()
	q.add(tasks...)
	wait, cancelWait := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelWait()
	got, _, err := q.collect(wait, len(tasks))
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%d of %d results: %v", len(got), len(tasks), err)
	}
	for node, r := range got {
		if r.Error != "" {
			b.Fatalf("%s: %s", node, r.Error)
		}
	}
	return took
}

func benchRedfish(b *testing.B, action model.PowerAction, parallelism int) {
	const n = 1000
	sim, err := redfishsim.New(redfishsim.Options{BMCs: n, Latency: benchLatency, On: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	tasks := make([]model.PowerTask, n)
	for i := range tasks {
		target := redfishTarget(sim, i)
		tasks[i] = task("bench", fmt.Sprintf("node%04d", i), action, model.PowerRedfish)
		tasks[i].BMC = &target
	}
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		total += runJob(b, tasks, parallelism, 60*time.Second)
	}
	wall := total / time.Duration(b.N)
	b.ReportMetric(float64(wall.Milliseconds()), "wall_ms")
	b.ReportMetric(float64(n)/wall.Seconds(), "nodes/s")
	b.ReportMetric(float64(parallelism), "parallelism")
	b.ReportMetric(float64(sim.Requests())/float64(b.N*n), "requests/node")
	b.ReportMetric(float64(sim.Connections())/float64(b.N*n), "tls_handshakes/node")
}

// BenchmarkStatus1000Redfish: status of 1,000 Redfish BMCs, 50 ms a request.
func BenchmarkStatus1000Redfish(b *testing.B) {
	for _, p := range []int{128, 256} {
		b.Run("parallelism="+strconv.Itoa(p), func(b *testing.B) { benchRedfish(b, model.PowerStatus, p) })
	}
}

// BenchmarkCycle1000Redfish: cycle of 1,000 Redfish BMCs, 50 ms a request.
func BenchmarkCycle1000Redfish(b *testing.B) {
	for _, p := range []int{128, 256} {
		b.Run("parallelism="+strconv.Itoa(p), func(b *testing.B) { benchRedfish(b, model.PowerCycle, p) })
	}
}

func ipmiBenchBMCs(b *testing.B, delay time.Duration) ([]*ipmisim.BMC, int64) {
	n := 200
	if v := os.Getenv("HERD_BENCH_IPMISIM"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("HERD_BENCH_IPMISIM=%q: want a count", v)
		}
	}
	bmcs := ipmisim.Start(b, n, ipmisim.Options{On: true, Delay: delay})
	var rss int64
	for _, s := range bmcs {
		rss += rssKB(s.PID())
	}
	return bmcs, rss
}

// benchIPMI runs action on every ipmi_sim BMC through herd's worker, then
// the same through a plain sequential ipmitool loop, in the same run: once
// with BMCs that answer at once, where both are bound by the CPU that
// ipmitool runs cost, and once with BMCs that take 50 ms per chassis
// command, as BMCs across a network and busy with their own work do.
func benchIPMI(b *testing.B, action model.PowerAction, loopVerb string) {
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run("bmc_delay="+delay.String(), func(b *testing.B) { benchIPMIDelay(b, action, loopVerb, delay) })
	}
}

func benchIPMIDelay(b *testing.B, action model.PowerAction, loopVerb string, delay time.Duration) {
	bmcs, rss := ipmiBenchBMCs(b, delay)
	const parallelism = 128
	tasks := make([]model.PowerTask, len(bmcs))
	var ports []string
	for i, s := range bmcs {
		target := ipmiTarget(s)
		tasks[i] = task("bench", fmt.Sprintf("node%04d", i), action, model.PowerIPMI)
		tasks[i].BMC = &target
		ports = append(ports, strconv.Itoa(s.Port))
	}
	loop := `for p in ` + strings.Join(ports, " ") + `; do ipmitool -I lanplus -C 3 -H 127.0.0.1 -p $p -U admin -E power ` + loopVerb + ` >/dev/null || exit 1; done`

	b.ResetTimer()
	var herd, plain time.Duration
	for range b.N {
		herd += runJob(b, tasks, parallelism, 60*time.Second)
		start := time.Now()
		cmd := exec.Command("bash", "-c", loop)
		cmd.Env = append(os.Environ(), "IPMITOOL_PASSWORD="+bmcs[0].Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ipmitool loop: %v: %s", err, out)
		}
		plain += time.Since(start)
	}
	n := float64(len(bmcs))
	herd /= time.Duration(b.N)
	plain /= time.Duration(b.N)
	b.ReportMetric(float64(herd.Milliseconds()), "herd_wall_ms")
	b.ReportMetric(n/herd.Seconds(), "herd_nodes/s")
	b.ReportMetric(float64(parallelism), "parallelism")
	b.ReportMetric(float64(plain.Milliseconds()), "ipmitool_loop_wall_ms")
	b.ReportMetric(n/plain.Seconds(), "ipmitool_loop_nodes/s")
	b.ReportMetric(n, "bmcs")
	b.ReportMetric(float64(rss)/1024, "sims_rss_MB")
}

// BenchmarkStatusIPMISim: herd status vs a sequential ipmitool loop over
// the same ipmi_sim BMCs.
func BenchmarkStatusIPMISim(b *testing.B) { benchIPMI(b, model.PowerStatus, "status") }

// BenchmarkCycleIPMISim: herd cycle vs a sequential `ipmitool power cycle`
// loop over the same ipmi_sim BMCs.
func BenchmarkCycleIPMISim(b *testing.B) { benchIPMI(b, model.PowerCycle, "cycle") }

// rssKB reads a process's resident memory from /proc; 0 where unknown.
func rssKB(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
