package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/sim"
)

func TestWriteTable(t *testing.T) {
	sum := func(leasesPerS, p99 float64, failed int) sim.Summary {
		return sim.Summary{Nodes: 5000, Leases: 5000, LeasesPerS: leasesPerS, Duration: 5000 / leasesPerS,
			Outcomes: map[sim.Outcome]int{sim.OutcomeFailed: failed},
			Lease:    sim.Latency{Count: 5000, P50: p99 / 2, P99: p99}}
	}
	boot := sum(400, 20, 0)
	boot.Script = sim.Latency{Count: 5000, P50: 100, P99: 300}
	runs := []Run{
		{Server: "herd", Scenario: "boot", Nodes: 5000, Spread: time.Minute, Until: sim.UntilBoot, Summary: boot},
		{Server: "herd", Scenario: "dhcp-first", Nodes: 5000, Summary: sum(12000, 11, 0)},
		{Server: "herd", Scenario: "dhcp-reboot", Nodes: 5000, Summary: sum(1000, 12, 0)},
		{Server: "dnsmasq", Scenario: "dhcp-first", Nodes: 5000, Summary: sum(400, 280, 0)},
		{Server: "dnsmasq", Scenario: "dhcp-reboot", Nodes: 5000, Summary: sum(280, 290, 3)},
	}
	var out bytes.Buffer
	writeTable(&out, runs, options{inflight: 64})
	for _, want := range []string{
		"DHCP storm: 5000 nodes at once",
		"herd leases/s ≥ 5× dnsmasq (first): 12000 vs 400 = 30.0×  PASS",
		"herd leases/s ≥ 5× dnsmasq (reboot): 1000 vs 280 = 3.6×  MISS",
		"no failures in any storm: 3  MISS",
		"boot 5000 over 1m0s: DISCOVER→ACK 20.0 ms PASS; DISCOVER→script 300.0 ms MISS",
		"100.0 / 300.0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMainRefusesWithoutBacking(t *testing.T) {
	var out bytes.Buffer
	env := func(string) (string, bool) { return "", false }
	if code := Main(context.Background(), nil, &out, &out, env); code != 2 || !strings.Contains(out.String(), "HERD_REDIS_URL is not set") {
		t.Errorf("exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"-sizes", "10,x"}, &out, &out, env); code != 2 {
		t.Errorf("bad sizes: exit %d", code)
	}
}
