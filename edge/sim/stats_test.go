package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := Percentiles(ds)
	want := Latency{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := Percentiles([]time.Duration{7 * time.Millisecond}); got.P50 != 7 || got.P99 != 7 {
		t.Errorf("one sample: %+v", got)
	}
	if got := Percentiles(nil); got != (Latency{}) {
		t.Errorf("none: %+v", got)
	}
}

func TestStatsSummary(t *testing.T) {
	s := NewStats(4)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 {
		s.Start(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	s.Add(Result{Node: 0, Outcome: OutcomeBooted, Started: t0, Lease: 10 * time.Millisecond, TFTP: 30 * time.Millisecond,
		Lease2: 35 * time.Millisecond, Script: 40 * time.Millisecond, Finished: 50 * time.Millisecond, Leases: 2,
		DHCPRetries: 1, TFTPBytes: 1000, BlockSize: 1432})
	s.Add(Result{Node: 1, Outcome: OutcomeDiscovery, Started: t0.Add(100 * time.Millisecond), Lease: 20 * time.Millisecond,
		Script: 60 * time.Millisecond, Finished: 60 * time.Millisecond, Leases: 2, BlockSize: 1432})
	s.Add(Result{Node: 2, Outcome: OutcomeFailed, Started: t0.Add(200 * time.Millisecond), Lease: 5 * time.Millisecond,
		Finished: 6 * time.Second, Leases: 1, TFTPRetransmits: 5, TFTPTimeouts: 1,
		Err: fmt.Errorf("wrapped: %w", stepErr(KindTFTPTimeout, "no block 1"))})
	s.Add(Result{Node: 3, Outcome: OutcomeFailed, Started: t0.Add(300 * time.Millisecond), Finished: time.Second,
		Err: errors.New("odd")})

	sum := s.Summary()
	if sum.Nodes != 4 || sum.Leases != 5 || sum.DHCPRetries != 1 || sum.Retransmits != 5 || sum.Timeouts != 1 ||
		sum.TFTPBytes != 1000 || sum.BlockSizes[1432] != 2 || sum.Failures() != 2 {
		t.Errorf("summary %+v", sum)
	}
	// From the first DISCOVER (t0) to the last node done (node 2 at
	// 0.2s + 6s).
	if sum.Duration != 6.2 || sum.LeasesPerS != 5/6.2 {
		t.Errorf("duration %v, leases/s %v", sum.Duration, sum.LeasesPerS)
	}
	if sum.Errors[KindTFTPTimeout] != 1 || sum.Errors[KindOther] != 1 || len(sum.Samples) != 2 {
		t.Errorf("errors %v, samples %q", sum.Errors, sum.Samples)
	}
	if sum.Lease.Count != 3 || sum.Lease.P50 != 10 || sum.Script.Count != 2 || sum.Finished.Count != 2 || sum.Finished.Max != 60 {
		t.Errorf("latencies lease %+v script %+v finished %+v", sum.Lease, sum.Script, sum.Finished)
	}

	var out bytes.Buffer
	sum.Write(&out)
	for _, want := range []string{"4 nodes in 6.20s: 5 leases", "booted 1, discovery 1, failed 2", "boot script",
		"TFTP retransmits 5, timeouts 1", "block size 1432×2", "errors: other 1, tftp-timeout 1", "node 2: wrapped: tftp-timeout: no block 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := sum.JSON(&out); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Leases != 5 || back.Errors[KindTFTPTimeout] != 1 {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}

	p := s.Progress(t0.Add(2 * time.Second))
	if p.Started != 4 || p.Done != 4 || p.Failed != 2 || !strings.Contains(p.String(), "leases 5 (2/s)") {
		t.Errorf("progress %+v %q", p, p)
	}
}
