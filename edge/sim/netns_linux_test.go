package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/dhcp"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// broadcastRack is ten nodes with addresses on the link's subnet.
func broadcastRack() Rack {
	return Rack{Nodes: 10, MACPrefix: DefaultMACPrefix(), NamePrefix: "bc",
		Subnet: netip.MustParsePrefix("10.79.0.0/16"), FirstAddr: netip.MustParseAddr("10.79.1.0")}
}

// stormBroadcast boots the rack's DHCP from the client namespace by
// broadcast on the veth, as real clients without an address do.
func stormBroadcast(t *testing.T, l *testenv.Segment) Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var conn *DHCPConn
	if err := testenv.InNetns(l.Client, func() error {
		var err error
		conn, err = ListenBroadcast(ctx, l.ClientIf, 68, 67)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bios, _ := FirmwareByName("bios")
	cfg := Config{Rack: broadcastRack(), Firmware: bios, Inflight: 4, Until: UntilDHCP, Expect: ExpectAny, CheckAddr: true,
		Seed: 0xabcd00, DHCPTimeouts: []time.Duration{time.Second, 2 * time.Second}}
	return Run(ctx, cfg, conn, nil)
}

// TestBroadcastToHerd runs the broadcast mode against the edge's DHCP
// server on the other end of a veth pair.
func TestBroadcastToHerd(t *testing.T) {
	l := testenv.NewSegment(t, "sim", "10.79.0.1/16")
	var rs []dhcp.Reservation
	rack := broadcastRack()
	for i := range rack.Nodes {
		n := rack.Node(i)
		rs = append(rs, dhcp.Reservation{MAC: dhcp.MAC(n.MAC), Node: n.Name, Addr: n.Addr, Bits: 16})
	}
	table, errs := dhcp.NewTable(rs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv, err := dhcp.New(dhcp.Config{
		Policy:     dhcp.Policy{Subnet: netip.MustParsePrefix("10.79.0.0/16")},
		PoolStart:  netip.MustParseAddr("10.79.200.1"),
		PoolEnd:    netip.MustParseAddr("10.79.200.100"),
		Interfaces: []string{l.ServerIf},
		BootURL:    "http://10.79.0.1:8080",
	}, dhcp.StaticTable{T: table}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := testenv.InNetns(l.Server, func() error { return srv.Listen(ctx) }); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	sum := stormBroadcast(t, l)
	if sum.Failures() > 0 || sum.Leases != 10 {
		var b strings.Builder
		sum.Write(&b)
		t.Fatalf("broadcast storm against herd:\n%s", b.String())
	}
}

// TestBroadcastToDnsmasq runs the broadcast mode against Debian's dnsmasq
// with the same reservations, in the server namespace.
func TestBroadcastToDnsmasq(t *testing.T) {
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Skip("dnsmasq not installed (make bench-boot installs dnsmasq-base)")
	}
	l := testenv.NewSegment(t, "sim", "10.79.0.1/16")
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, "port=0\ninterface=%s\nbind-interfaces\nno-ping\ndhcp-range=10.79.0.0,static,255.255.0.0\n", l.ServerIf)
	fmt.Fprintf(&conf, "dhcp-leasefile=%s/leases\ndhcp-boot=undionly.kpxe\nuser=root\npid-file=%s/pid\nlog-facility=%s/log\n", dir, dir, dir)
	rack := broadcastRack()
	for i := range rack.Nodes {
		fmt.Fprintf(&conf, "dhcp-host=%s,%s\n", rack.Node(i).MAC, rack.Node(i).Addr)
	}
	if err := os.WriteFile(filepath.Join(dir, "dnsmasq.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.Server, bin, "--keep-in-foreground", "--conf-file="+filepath.Join(dir, "dnsmasq.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// dnsmasq answers once it runs; the first DISCOVER is retried a
	// second later if it was too early.
	time.Sleep(200 * time.Millisecond)
	sum := stormBroadcast(t, l)
	if sum.Failures() > 0 || sum.Leases != 10 {
		var b strings.Builder
		sum.Write(&b)
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("broadcast storm against dnsmasq:\n%s\ndnsmasq log:\n%s", b.String(), log)
	}
}
