package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/edge/dhcp"
)

// link is a segment made for one test: a server namespace and a client
// namespace joined by a veth pair, the server end holding 10.79.0.1/16 and
// the client end no address, as a node's NIC before DHCP. Both namespaces
// go when the test ends, failed or not.
type link struct {
	server, client     string
	serverIf, clientIf string
}

func newLink(t *testing.T) link {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2)")
	}
	id := strings.ToLower(rand.Text()[:8])
	l := link{server: "herd-sim-s-" + id, client: "herd-sim-c-" + id, serverIf: "hss" + id, clientIf: "hsc" + id}
	for _, ns := range []string{l.server, l.client} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("remove namespace %s: %v: %s", ns, err, out)
			}
		})
	}
	ip(t, "link", "add", l.serverIf, "netns", l.server, "type", "veth", "peer", "name", l.clientIf, "netns", l.client)
	ip(t, "-n", l.server, "addr", "add", "10.79.0.1/16", "dev", l.serverIf)
	for _, c := range [][]string{{l.server, l.serverIf}, {l.server, "lo"}, {l.client, l.clientIf}, {l.client, "lo"}} {
		ip(t, "-n", c[0], "link", "set", c[1], "up")
	}
	return l
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on an OS thread moved into namespace ns; the thread is
// never unlocked, so the runtime retires it afterwards. Sockets f opens
// stay in ns wherever they are used later.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// broadcastRack is ten nodes with addresses on the link's subnet.
func broadcastRack() Rack {
	return Rack{Nodes: 10, MACPrefix: DefaultMACPrefix(), NamePrefix: "bc",
		Subnet: netip.MustParsePrefix("10.79.0.0/16"), FirstAddr: netip.MustParseAddr("10.79.1.0")}
}

// stormBroadcast boots the rack's DHCP from the client namespace by
// broadcast on the veth, as real clients without an address do.
func stormBroadcast(t *testing.T, l link) Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var conn *DHCPConn
	if err := inNetns(l.client, func() error {
		var err error
		conn, err = ListenBroadcast(ctx, l.clientIf, 68, 67)
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
	l := newLink(t)
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
		Interfaces: []string{l.serverIf},
		BootURL:    "http://10.79.0.1:8080",
	}, dhcp.StaticTable{T: table}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := inNetns(l.server, func() error { return srv.Listen(ctx) }); err != nil {
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
	l := newLink(t)
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, "port=0\ninterface=%s\nbind-interfaces\nno-ping\ndhcp-range=10.79.0.0,static,255.255.0.0\n", l.serverIf)
	fmt.Fprintf(&conf, "dhcp-leasefile=%s/leases\ndhcp-boot=undionly.kpxe\nuser=root\npid-file=%s/pid\nlog-facility=%s/log\n", dir, dir, dir)
	rack := broadcastRack()
	for i := range rack.Nodes {
		fmt.Fprintf(&conf, "dhcp-host=%s,%s\n", rack.Node(i).MAC, rack.Node(i).Addr)
	}
	if err := os.WriteFile(filepath.Join(dir, "dnsmasq.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.server, bin, "--keep-in-foreground", "--conf-file="+filepath.Join(dir, "dnsmasq.conf"))
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
