// Command herd-sim plays a rack of network-booting nodes against a running
// herd edge (or any DHCP/TFTP server) through the real protocols, and
// prints how fast and how well they were served. Run it with -h for the
// flags and examples; `herd-sim bench` runs the boot-storm benchmark that
// `make bench-boot` runs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herd-hpc/herd/edge/sim"
	"github.com/herd-hpc/herd/edge/sim/bench"
	"github.com/herd-hpc/herd/functions/client"
)

const usageText = `herd-sim plays N nodes booting through the real protocols: DHCP
(DISCOVER, OFFER, REQUEST, ACK) as PXE firmware, TFTP of the iPXE binary at
iPXE's block size (1432), DHCP again as iPXE (user class "iPXE"), the chain
and boot scripts over HTTP, the kernel and initrds the script names, and
boot events with the session's token.

DHCP goes through one socket for all nodes: by default herd-sim is a DHCP
relay agent on -relay (its address is the giaddr) forwarding to -dhcp, which
works over loopback. herd's edge answers a relay on the port it sent from,
so any port does; other servers answer on port 67 (then run as root; the
relay shares the port with a server on the wildcard address). With
-broadcast IFACE it broadcasts from port 68 of that interface instead, as
real clients do (for a veth in a network namespace).

Usage:
  herd-sim [flags]              boot a simulated rack
  herd-sim bench [flags]        the boot-storm benchmark (herd vs dnsmasq);
                                herd-sim bench -h for its flags

Bring make run's demo cluster to life: start it with DHCP for relays on
(it prints the first admin's password and keeps it in
.herd/initial-admin-password; TFTP is on 127.0.0.1:6969, the cluster subnet
10.0.0.0/16), then register and boot 50 nodes, no root needed:
  make run ARGS="-dhcp-listen 127.0.0.1:6767"
  go run ./edge/cmd/herd-sim -register -nodes 50 -spread 10s \
      -subnet 10.0.0.0/16 -admin-file .herd/initial-admin-password
The nodes appear in the web page with their boot sessions. Until their image
has a kernel and initrd in the object store they are told to wait ("waiting"
in the summary); with -image NAME of an image that has them, they boot.

Without -register the nodes are unknown to herd: they get a discovery lease
and the discovery script, and show up under unassigned nodes.

The summary gives leases/s, latency percentiles from each node's first
DISCOVER, DHCP retries, TFTP retransmits and timeouts, and failures by
kind. The exit status is 1 when any node failed.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		code = bench.Main(ctx, os.Args[2:], os.Stdout, os.Stderr, os.LookupEnv)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	}
	stop()
	os.Exit(code)
}

type options struct {
	nodes, inflight, parallel        int
	spread                           time.Duration
	macPrefix, namePrefix, group     string
	image                            string
	firmware                         string
	edge, dhcp, relay, broadcast     string
	tftp                             string
	subnet, firstAddr                string
	register                         bool
	user, adminFile, token           string
	until, expect, artifacts, events string
	artifactBytes                    int64
	dhcpTimeout                      time.Duration
	dhcpTries                        int
	tftpBlock, tftpRetries           int
	tftpTimeout, settle, runTimeout  time.Duration
	jsonOut, quiet                   bool
	label                            string
}

func (o *options) flags(fs *flag.FlagSet) {
	fs.IntVar(&o.nodes, "nodes", 50, "how many nodes to simulate")
	fs.DurationVar(&o.spread, "spread", 0, "spread the nodes' arrivals evenly over this time; 0: all at once")
	fs.IntVar(&o.inflight, "inflight", 64, "nodes booting at the same time at most")
	fs.StringVar(&o.macPrefix, "mac-prefix", "02:68:64", "first three bytes of the nodes' MACs; the last three count from 1")
	fs.StringVar(&o.namePrefix, "name-prefix", "sim", "node names with -register: PREFIX0001, …")
	fs.StringVar(&o.group, "group", "", "with -register: the nodes' group (it must exist)")
	fs.StringVar(&o.image, "image", "", "with -register: the image the nodes boot (else they inherit their group's, or wait for one)")
	fs.StringVar(&o.firmware, "firmware", "bios", "bios (PXE ROM, undionly.kpxe) or efi (x86-64 UEFI)")
	fs.StringVar(&o.edge, "edge", "http://127.0.0.1:8080", "the edge's `URL`: the API for -register and the chain script when iPXE's lease names no URL")
	fs.StringVar(&o.dhcp, "dhcp", "127.0.0.1:6767", "relay mode: the DHCP server's `address:port`")
	fs.StringVar(&o.relay, "relay", "127.0.0.1:0", "relay mode: the relay's `address:port`; the address is the giaddr (dnsmasq wants it inside the served subnet, and port 67)")
	fs.StringVar(&o.broadcast, "broadcast", "", "broadcast on this `interface` (port 68 to 67) instead of relaying")
	fs.StringVar(&o.tftp, "tftp", "127.0.0.1:6969", "TFTP server `address:port`; empty: the lease's next-server on port 69")
	fs.StringVar(&o.subnet, "subnet", "", "give the nodes reserved addresses in this IPv4 `CIDR` (the server's subnet, e.g. the edge's dhcp_subnet): registered with -register, and checked in every lease; empty: no reserved addresses")
	fs.StringVar(&o.firstAddr, "first-addr", "", "with -subnet: the first node's address, the others follow (default: x.y.1.0 in a /16 or larger, e.g. 10.77.1.0, else the subnet's tenth address)")
	fs.BoolVar(&o.register, "register", false, "first create the nodes in herd with their MACs and addresses, so they are known")
	fs.IntVar(&o.parallel, "register-parallel", 8, "API requests in flight while registering")
	fs.StringVar(&o.user, "user", "admin", "with -register: account to log in as; the password comes from $HERD_PASSWORD or -admin-file")
	fs.StringVar(&o.adminFile, "admin-file", "", "with -register: a file holding \"USER PASSWORD\" (as make run writes .herd/initial-admin-password)")
	fs.StringVar(&o.token, "token", "", "with -register: an API token instead of a login (default $HERD_TOKEN)")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "with -register: wait up to this long for the edge to hand out the new reservations")
	fs.StringVar(&o.until, "until", "boot", "last step: dhcp, tftp, script or boot (artifacts and events)")
	fs.StringVar(&o.expect, "expect", "", "what the nodes must get: boot (a kernel), known (a kernel, or a wait for a missing image), unknown (discovery) or any (default known with -register, else any)")
	fs.StringVar(&o.artifacts, "artifacts", "head", "how to fetch the kernel and initrds: head, get or none")
	fs.Int64Var(&o.artifactBytes, "artifact-bytes", 64<<10, "with -artifacts get: read at most this many bytes of each (0: all)")
	fs.StringVar(&o.events, "events", "ipxe:ok", "boot events posted after the artifacts, as step:state,… (e.g. ipxe:ok,done:ok)")
	fs.DurationVar(&o.dhcpTimeout, "dhcp-timeout", time.Second, "first DHCP retry after this long; each later wait doubles")
	fs.IntVar(&o.dhcpTries, "dhcp-tries", 4, "DHCP packets sent per message before giving up")
	fs.IntVar(&o.tftpBlock, "tftp-blksize", sim.IPXEBlockSize, "TFTP block size asked for (iPXE: 1432; 512: no options)")
	fs.DurationVar(&o.tftpTimeout, "tftp-timeout", time.Second, "TFTP retransmission timeout")
	fs.IntVar(&o.tftpRetries, "tftp-retries", 5, "TFTP retransmissions before giving up")
	fs.DurationVar(&o.runTimeout, "timeout", 15*time.Minute, "give up on the whole run after this long")
	fs.BoolVar(&o.jsonOut, "json", false, "print the summary as JSON on stdout")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	fs.StringVar(&o.label, "label", "", "name of this run in the summary")
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("herd-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herd-sim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, err := o.config()
	if err != nil {
		fmt.Fprintln(stderr, "herd-sim:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.runTimeout)
	defer cancel()

	if o.register {
		c, err := o.apiClient(ctx, env)
		if err != nil {
			fmt.Fprintln(stderr, "herd-sim:", err)
			return 1
		}
		t := time.Now()
		reg, err := sim.Register(ctx, c, cfg.Rack, sim.Registration{Group: o.group, Image: o.image}, o.parallel)
		if err != nil {
			fmt.Fprintln(stderr, "herd-sim:", err)
			return 1
		}
		fmt.Fprintf(stderr, "registered %d nodes (%d new, %d already there) in %s\n",
			reg.Created+reg.Existed, reg.Created, reg.Existed, time.Since(t).Round(time.Millisecond))
	}

	dhcp, err := o.listen(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "herd-sim:", err)
		return 1
	}
	defer dhcp.Close()

	if o.register && o.settle > 0 {
		// Ask as the last node: the edge must have learned all of them.
		if err := sim.WaitReserved(ctx, dhcp, cfg, cfg.Rack.Nodes-1, o.settle, 500*time.Millisecond); err != nil {
			fmt.Fprintln(stderr, "herd-sim: the edge did not pick up the registered nodes:", err)
			return 1
		}
	}

	var progress func(sim.Progress)
	if !o.quiet {
		progress = func(p sim.Progress) { fmt.Fprintln(stderr, p) }
	}
	sum := sim.Run(ctx, cfg, dhcp, progress)
	sum.Label = o.label
	if o.jsonOut {
		if err := sum.JSON(stdout); err != nil {
			fmt.Fprintln(stderr, "herd-sim:", err)
			return 1
		}
	} else {
		sum.Write(stdout)
	}
	if stray := dhcp.Stray(); stray > 0 && !o.quiet {
		fmt.Fprintf(stderr, "%d DHCP answers came after their node had stopped waiting\n", stray)
	}
	if sum.Failures() > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

func (o *options) config() (sim.Config, error) {
	var cfg sim.Config
	prefix, err := sim.ParseMACPrefix(o.macPrefix)
	if err != nil {
		return cfg, err
	}
	cfg.Rack = sim.Rack{Nodes: o.nodes, MACPrefix: prefix, NamePrefix: o.namePrefix}
	if o.subnet != "" {
		subnet, err := netip.ParsePrefix(o.subnet)
		if err != nil || !subnet.Addr().Is4() {
			return cfg, fmt.Errorf("-subnet %q: want an IPv4 CIDR such as 10.77.0.0/16", o.subnet)
		}
		cfg.Rack.Subnet = subnet.Masked()
		first := o.firstAddr
		if first == "" {
			// x.y.1.0 in a /16 or larger, else the subnet's tenth address.
			b := cfg.Rack.Subnet.Addr().As4()
			if cfg.Rack.Subnet.Bits() <= 16 {
				b[2]++
			} else {
				b[3] += 10
			}
			first = netip.AddrFrom4(b).String()
		}
		if cfg.Rack.FirstAddr, err = netip.ParseAddr(first); err != nil {
			return cfg, fmt.Errorf("-first-addr %q: %w", first, err)
		}
	}
	if err := cfg.Rack.Check(); err != nil {
		return cfg, err
	}
	if cfg.Firmware, err = sim.FirmwareByName(o.firmware); err != nil {
		return cfg, err
	}
	cfg.Spread, cfg.Inflight = o.spread, o.inflight
	if cfg.Until, err = sim.ParseUntil(o.until); err != nil {
		return cfg, err
	}
	switch {
	case o.expect != "":
		if cfg.Expect, err = sim.ParseExpect(o.expect); err != nil {
			return cfg, err
		}
	case o.register:
		cfg.Expect = sim.ExpectKnown
	default:
		cfg.Expect = sim.ExpectAny
	}
	cfg.CheckAddr = cfg.Rack.FirstAddr.IsValid()
	switch a := sim.Artifacts(o.artifacts); a {
	case sim.ArtifactsNone, sim.ArtifactsHead, sim.ArtifactsGet:
		cfg.Artifacts = a
	default:
		return cfg, fmt.Errorf("-artifacts %q: want head, get or none", o.artifacts)
	}
	cfg.ArtifactBytes = o.artifactBytes
	if cfg.Events, err = sim.ParseEvents(o.events); err != nil {
		return cfg, err
	}
	if o.dhcpTries < 1 || o.dhcpTimeout <= 0 {
		return cfg, errors.New("-dhcp-tries and -dhcp-timeout must be positive")
	}
	for i, d := 0, o.dhcpTimeout; i < o.dhcpTries; i, d = i+1, d*2 {
		cfg.DHCPTimeouts = append(cfg.DHCPTimeouts, d)
	}
	if o.tftp != "" {
		if cfg.TFTP, err = netip.ParseAddrPort(o.tftp); err != nil {
			return cfg, fmt.Errorf("-tftp %q: want address:port", o.tftp)
		}
	}
	cfg.TFTPConfig = sim.TFTPConfig{BlockSize: o.tftpBlock, Timeout: o.tftpTimeout, Retries: o.tftpRetries}
	if cfg.Edge, err = url.Parse(o.edge); err != nil || (cfg.Edge.Scheme != "http" && cfg.Edge.Scheme != "https") {
		return cfg, fmt.Errorf("-edge %q: want an http(s) URL", o.edge)
	}
	cfg.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: o.inflight * 2, MaxIdleConnsPerHost: o.inflight * 2, IdleConnTimeout: 30 * time.Second,
	}}
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	cfg.Seed = binary.BigEndian.Uint32(seed[:])
	return cfg, nil
}

func (o *options) listen(ctx context.Context) (*sim.DHCPConn, error) {
	if o.broadcast != "" {
		return sim.ListenBroadcast(ctx, o.broadcast, 68, 67)
	}
	server, err := netip.ParseAddrPort(o.dhcp)
	if err != nil {
		return nil, fmt.Errorf("-dhcp %q: want address:port", o.dhcp)
	}
	relay, err := netip.ParseAddrPort(o.relay)
	if err != nil {
		return nil, fmt.Errorf("-relay %q: want address:port", o.relay)
	}
	return sim.ListenRelay(ctx, relay, server)
}

// apiClient logs in with what the flags and environment give.
func (o *options) apiClient(ctx context.Context, env func(string) (string, bool)) (*client.Client, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	token := o.token
	if token == "" {
		token, _ = env("HERD_TOKEN")
	}
	if token != "" {
		return client.New(o.edge, token, hc), nil
	}
	user, password := o.user, ""
	if o.adminFile != "" {
		b, err := os.ReadFile(o.adminFile)
		if err != nil {
			return nil, fmt.Errorf("read -admin-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		fields := strings.Fields(line)
		switch len(fields) {
		case 1:
			password = fields[0]
		case 2:
			user, password = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("-admin-file %s: want one line \"USER PASSWORD\"", o.adminFile)
		}
	}
	if p, ok := env("HERD_PASSWORD"); ok && o.adminFile == "" {
		password = p
	}
	if password == "" {
		return nil, errors.New("-register needs credentials: -token or $HERD_TOKEN, -admin-file, or -user with $HERD_PASSWORD")
	}
	c := client.New(o.edge, "", hc)
	reply, err := c.Login(ctx, user, password)
	if err != nil {
		return nil, fmt.Errorf("log in to %s as %s: %w", o.edge, user, err)
	}
	return c.WithToken(reply.Token), nil
}
