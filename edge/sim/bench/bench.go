// Package bench is the boot-storm benchmark (`herd-sim bench`, run by
// `make bench-boot`): herd, built from this tree and run for real on
// localdev's Redis and MinIO, and Debian's dnsmasq, each serving the same
// simulated rack over loopback, driven by the same simulator, one after the
// other in one run; then a table of both.
//
// The rack lives in 127.77.0.0/16; the simulator is the DHCP relay agent
// at 127.77.0.1:67 (root), so thousands of MACs share one socket and no
// raw sockets or interfaces are needed. dnsmasq binds DHCP to the wildcard
// port 67 (the relay shares it through SO_REUSEPORT) and TFTP to
// 127.0.0.1:69; herd's edge takes DHCP on dhcp_listen and TFTP on ports of
// its own.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/herd-hpc/herd/edge/sim"
)

// Run is one storm of the matrix and what it measured.
type Run struct {
	Server   string        `json:"server"` // herd or dnsmasq
	Scenario string        `json:"scenario"`
	Nodes    int           `json:"nodes"`
	Spread   time.Duration `json:"spread_ns"`
	Until    sim.Until     `json:"until"`
	Summary  sim.Summary   `json:"summary"`
}

type options struct {
	sizes         []int
	spread        time.Duration
	spreadLarge   time.Duration
	inflight      int
	timeout       time.Duration
	jsonFile      string
	keep          bool
	relay         string
	subnet        string
	pool          string
	skipDnsmasq   bool
	skipSpread    bool
	artifacts     string
	artifactBytes int64
}

// Main runs the benchmark with args and returns the exit code: 0 when
// every node of every storm booted as expected, 1 otherwise, 2 for bad
// flags.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("herd-sim bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	sizes := fs.String("sizes", "1000,5000", "rack sizes to storm, comma separated")
	fs.DurationVar(&o.spread, "spread", 60*time.Second, "arrival spread of the spread storms")
	fs.DurationVar(&o.spreadLarge, "spread-large", 0, "arrival spread for racks over 1,000 nodes (default -spread)")
	fs.IntVar(&o.inflight, "inflight", 64, "nodes booting at once")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on the whole benchmark after this long")
	fs.StringVar(&o.jsonFile, "json", "", "also write every storm's figures to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (logs, configs) for a look afterwards")
	fs.StringVar(&o.relay, "relay", "127.77.0.1:67", "the simulated relay agent's address:port (the giaddr)")
	fs.StringVar(&o.subnet, "subnet", "127.77.0.0/16", "the rack's subnet; nodes get addresses from its .1.0 on")
	fs.StringVar(&o.pool, "pool", "127.77.200.1-127.77.255.254", "herd's discovery pool inside the subnet")
	fs.BoolVar(&o.skipDnsmasq, "no-dnsmasq", false, "storm herd only")
	fs.BoolVar(&o.skipSpread, "no-spread", false, "only the all-at-once storms")
	fs.StringVar(&o.artifacts, "artifacts", "head", "how herd's nodes fetch kernel and initrds: head, get or none")
	fs.Int64Var(&o.artifactBytes, "artifact-bytes", 64<<10, "with -artifacts get: bytes read of each")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `herd-sim bench storms herd and dnsmasq with the same simulated rack, one after the
other, and prints both side by side. It needs root (the relay binds port 67),
dnsmasq and Debian's ipxe, and Redis and MinIO from localdev/up
(HERD_REDIS_URL, HERD_S3_ENDPOINT, HERD_S3_ACCESS_KEY, HERD_S3_SECRET_KEY, as
localdev/.state/env has them; make bench-boot sets all that up).

For each server:
  DHCP storm    every node of the largest rack at once, DHCP only (DORA), first
                boot (dnsmasq with an empty lease file) and reboot
  boot storms   each rack size, at once and spread: herd goes DHCP, TFTP
                (undionly.kpxe at blksize 1432), iPXE's DHCP, the boot script,
                the artifacts (HEAD) and two boot events; dnsmasq, which has no
                boot script, DHCP and TFTP

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			fmt.Fprintf(stderr, "herd-sim bench: -sizes: %q is not a rack size\n", s)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	if o.spreadLarge == 0 {
		o.spreadLarge = o.spread
	}
	var b Backing
	for _, v := range []struct {
		key string
		dst *string
	}{{"HERD_REDIS_URL", &b.RedisURL}, {"HERD_S3_ENDPOINT", &b.S3Endpoint}, {"HERD_S3_ACCESS_KEY", &b.S3AccessKey}, {"HERD_S3_SECRET_KEY", &b.S3Secret}} {
		val, ok := env(v.key)
		if !ok || val == "" {
			fmt.Fprintf(stderr, "herd-sim bench: %s is not set: start Redis and MinIO with localdev/up and export localdev/.state/env (make bench-boot does)\n", v.key)
			return 2
		}
		*v.dst = val
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	runs, err := run(ctx, o, b, stderr)
	if len(runs) > 0 {
		writeTable(stdout, runs, o)
		if o.jsonFile != "" {
			if err := writeJSON(o.jsonFile, runs); err != nil {
				fmt.Fprintln(stderr, "herd-sim bench:", err)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "herd-sim bench:", err)
		return 1
	}
	for _, r := range runs {
		if r.Summary.Failures() > 0 {
			return 1
		}
	}
	return 0
}

func writeJSON(file string, runs []Run) error {
	b, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// run executes the matrix: herd first, then dnsmasq; servers are stopped
// and their state removed even when a step fails.
func run(ctx context.Context, o options, b Backing, log io.Writer) (runs []Run, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the relay agent binds port 67")
	}
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err != nil {
		return nil, fmt.Errorf("Debian's ipxe is not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "herd-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(log, "work folder %s is kept\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	subnet, err := netip.ParsePrefix(o.subnet)
	if err != nil {
		return nil, fmt.Errorf("-subnet: %w", err)
	}
	largest := 0
	for _, n := range o.sizes {
		largest = max(largest, n)
	}
	b4 := subnet.Masked().Addr().As4()
	b4[2]++
	rack := func(n int) sim.Rack {
		return sim.Rack{Nodes: n, MACPrefix: sim.DefaultMACPrefix(), NamePrefix: "bench", NameDigits: 5,
			Subnet: subnet.Masked(), FirstAddr: netip.AddrFrom4(b4)}
	}
	if err := rack(largest).Check(); err != nil {
		return nil, err
	}
	relay, err := netip.ParseAddrPort(o.relay)
	if err != nil {
		return nil, fmt.Errorf("-relay: %w", err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(log, "bench: "+format+"\n", args...) }

	// --- herd -----------------------------------------------------------
	say("building herd-functions and herd-edge")
	if err := buildHerd(ctx, dir); err != nil {
		return nil, err
	}
	h, err := startHerd(ctx, dir, b, rack(largest), o.pool)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := h.close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("start herd: %w", err)
	}
	say("herd up: edge %s, DHCP %s, TFTP %s (logs in %s)", h.edgeURL, h.dhcp, h.tftp, dir)
	storm := func(server string, target, tftp netip.AddrPort, scenario string, n int, spread time.Duration, until sim.Until) error {
		cfg := stormConfig(o, rack(n), spread, until, tftp, h.edgeBase)
		if server == "dnsmasq" {
			cfg.Expect = sim.ExpectAny
		}
		conn, err := sim.ListenRelay(ctx, relay, target)
		if err != nil {
			return err
		}
		defer conn.Close()
		if server == "herd" {
			// The edge learns reservations every few seconds: wait until
			// the rack's last node is known before the storm.
			if err := sim.WaitReserved(ctx, conn, cfg, n-1, 30*time.Second, 500*time.Millisecond); err != nil {
				return fmt.Errorf("herd did not pick up the registered nodes: %w", err)
			}
		}
		say("%s: %s, %d nodes, spread %s, until %s", server, scenario, n, spread, until)
		sum := sim.Run(ctx, cfg, conn, nil)
		sum.Label = fmt.Sprintf("%s %s %d", server, scenario, n)
		sum.Write(log)
		runs = append(runs, Run{Server: server, Scenario: scenario, Nodes: n, Spread: spread, Until: until, Summary: sum})
		if ctx.Err() != nil {
			return fmt.Errorf("stopped during %s: %w", sum.Label, ctx.Err())
		}
		return nil
	}
	spreads := func(n int) []time.Duration {
		if o.skipSpread {
			return []time.Duration{0}
		}
		if n > 1000 {
			return []time.Duration{0, o.spreadLarge}
		}
		return []time.Duration{0, o.spread}
	}
	registered := 0
	boots := func(server string, target, tftp netip.AddrPort, until sim.Until) error {
		for _, n := range o.sizes {
			if server == "herd" && n > registered {
				t := time.Now()
				reg, err := h.register(ctx, rack(n))
				if err != nil {
					return err
				}
				registered = n
				say("registered %d nodes (%d new) in %s", n, reg.Created, time.Since(t).Round(time.Millisecond))
			}
			for _, sp := range spreads(n) {
				if err := storm(server, target, tftp, "boot", n, sp, until); err != nil {
					return err
				}
			}
		}
		return nil
	}
	dhcpStorms := func(server string, target netip.AddrPort) error {
		for _, sc := range []string{"dhcp-first", "dhcp-reboot"} {
			if err := storm(server, target, netip.AddrPort{}, sc, largest, 0, sim.UntilDHCP); err != nil {
				return err
			}
		}
		return nil
	}

	if err := boots("herd", h.dhcp, h.tftp, sim.UntilBoot); err != nil {
		return runs, err
	}
	if registered < largest {
		if _, err := h.register(ctx, rack(largest)); err != nil {
			return runs, err
		}
	}
	if err := dhcpStorms("herd", h.dhcp); err != nil {
		return runs, err
	}
	if err := h.close(ctx); err != nil {
		return runs, err
	}
	if o.skipDnsmasq {
		return runs, nil
	}

	// --- dnsmasq ----------------------------------------------------------
	d, err := startDnsmasq(ctx, dir, rack(largest), true)
	if err != nil {
		d.close()
		return runs, err
	}
	say("dnsmasq up: DHCP %s, TFTP %s, %d reservations", d.dhcp, d.tftp, largest)
	err = dhcpStorms("dnsmasq", d.dhcp)
	if err == nil {
		err = boots("dnsmasq", d.dhcp, d.tftp, sim.UntilTFTP)
	}
	d.close()
	return runs, err
}

// stormConfig is the simulator's configuration for one storm.
func stormConfig(o options, rack sim.Rack, spread time.Duration, until sim.Until, tftp netip.AddrPort, edge *url.URL) sim.Config {
	fw, _ := sim.FirmwareByName("bios")
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	events, _ := sim.ParseEvents("ipxe:ok,done:ok")
	return sim.Config{
		Rack: rack, Firmware: fw, Spread: spread, Inflight: o.inflight, Until: until,
		Expect: sim.ExpectBoot, CheckAddr: true, TFTP: tftp, Edge: edge,
		HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 2 * o.inflight, MaxIdleConnsPerHost: 2 * o.inflight, IdleConnTimeout: 30 * time.Second}},
		Artifacts: sim.Artifacts(o.artifacts), ArtifactBytes: o.artifactBytes, Events: events,
		Seed: binary.BigEndian.Uint32(seed[:]),
	}
}
