package netup

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// TestUpAgainstADHCPServer brings up a veth end in its own namespace with
// DHCP from a server in another, as a node's boot NIC: the address, the
// default route and resolv.conf must come out as the lease says.
func TestUpAgainstADHCPServer(t *testing.T) {
	seg := testenv.NewSegment(t, "netup", "10.0.0.1/16")
	srvNS, cliNS, srvIf, cliIf := seg.Server, seg.Client, seg.ServerIf, seg.ClientIf
	const mac = "52:54:00:aa:bb:01"
	seg.SetClientMAC(t, mac)
	// A node's NIC is down until bootenv raises it.
	testenv.IP(t, "-n", cliNS, "link", "set", cliIf, "down")

	handler := func(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		typ := dhcpv4.MessageTypeOffer
		if m.MessageType() == dhcpv4.MessageTypeRequest {
			typ = dhcpv4.MessageTypeAck
		}
		reply, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(net.IPv4(10, 0, 7, 9)),
			dhcpv4.WithNetmask(net.CIDRMask(16, 32)),
			dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1)),
			dhcpv4.WithDNS(net.IPv4(10, 0, 0, 1)),
			dhcpv4.WithServerIP(net.IPv4(10, 0, 0, 1)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))),
			dhcpv4.WithLeaseTime(600),
		)
		if err != nil {
			return
		}
		conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
	var srv *server4.Server
	if err := testenv.InNetns(srvNS, func() (err error) {
		srv, err = server4.NewServer(srvIf, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	hw, _ := net.ParseMAC(mac)
	var c Config
	err := testenv.InNetns(cliNS, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err = Up(ctx, Options{MAC: hw, ResolvConf: resolv, LinkWait: 10 * time.Second, DHCPTimeout: 30 * time.Second})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Interface != cliIf || c.Address != netip.MustParsePrefix("10.0.7.9/16") || c.Gateway != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("config %s", c)
	}
	if addr := testenv.IP(t, "-n", cliNS, "-4", "addr", "show", "dev", cliIf); !strings.Contains(addr, "inet 10.0.7.9/16 brd 10.0.255.255") {
		t.Errorf("address not configured:\n%s", addr)
	}
	if route := testenv.IP(t, "-n", cliNS, "-4", "route", "show", "default"); !strings.Contains(route, fmt.Sprintf("default via 10.0.0.1 dev %s", cliIf)) {
		t.Errorf("no default route:\n%s", route)
	}
	if b, _ := os.ReadFile(resolv); !strings.Contains(string(b), "nameserver 10.0.0.1\n") {
		t.Errorf("resolv.conf:\n%s", b)
	}
	// The node can reach the server over the configured address.
	if out, err := exec.Command("ip", "netns", "exec", cliNS, "ping", "-c1", "-W2", "10.0.0.1").CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("ping"); lerr == nil {
			t.Errorf("ping the server: %v\n%s", err, out)
		}
	}
}
