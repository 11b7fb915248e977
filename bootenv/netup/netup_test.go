package netup

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
	"golang.org/x/sys/unix"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestBootMAC(t *testing.T) {
	cases := []struct {
		args    map[string]string
		want    string
		wantErr bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"BOOTIF": "01-52-54-00-AB-CD-EF"}, "52:54:00:ab:cd:ef", false},
		{map[string]string{"herd.mac": "52:54:00:00:00:01", "BOOTIF": "01-52-54-00-ab-cd-ef"}, "52:54:00:00:00:01", false},
		{map[string]string{"BOOTIF": "52-54-00-ab-cd-ef"}, "", true},
		{map[string]string{"herd.mac": "nope"}, "", true},
	}
	for _, c := range cases {
		got, err := BootMAC(c.args)
		if (err != nil) != c.wantErr {
			t.Errorf("BootMAC(%v) error %v", c.args, err)
			continue
		}
		if got.String() != c.want {
			t.Errorf("BootMAC(%v) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestChooseLink(t *testing.T) {
	links := []Link{
		{Name: "lo", Loopback: true, Carrier: true},
		{Name: "eth1", MAC: mustMAC("52:54:00:00:00:02"), Carrier: true},
		{Name: "eth0", MAC: mustMAC("52:54:00:00:00:01")},
		{Name: "ib0", MAC: make(net.HardwareAddr, 20), Carrier: true},
	}
	if l, err := ChooseLink(links, nil); err != nil || l.Name != "eth1" {
		t.Errorf("without MAC: %v %v, want eth1 (the first with a link)", l.Name, err)
	}
	if l, err := ChooseLink(links, mustMAC("52:54:00:00:00:01")); err != nil || l.Name != "eth0" {
		t.Errorf("by MAC: %v %v, want eth0", l.Name, err)
	}
	if _, err := ChooseLink(links, mustMAC("52:54:00:00:00:09")); !errors.Is(err, ErrNoLink) {
		t.Errorf("unknown MAC: %v", err)
	}
	if _, err := ChooseLink(links[:1], nil); !errors.Is(err, ErrNoLink) {
		t.Errorf("only loopback: %v", err)
	}
}

func TestConfigFromLease(t *testing.T) {
	ack, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 7, 9)),
		dhcpv4.WithNetmask(net.CIDRMask(16, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 0, 2), net.IPv4(10, 0, 0, 3)),
		dhcpv4.WithServerIP(net.IPv4(10, 0, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptDomainName("cluster")),
		dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"cluster", "example.org"}})),
		dhcpv4.WithLeaseTime(3600),
	)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromLease("eth0", ack)
	if err != nil {
		t.Fatal(err)
	}
	if c.Address != netip.MustParsePrefix("10.0.7.9/16") || c.Gateway != netip.MustParseAddr("10.0.0.1") ||
		len(c.DNS) != 2 || c.Lease != time.Hour || c.Server != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("config %+v", c)
	}
	want := "# bootenv: from the DHCP lease of eth0\nsearch cluster example.org\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
	if got := ResolvConf(c); got != want {
		t.Errorf("resolv.conf\n%s\nwant\n%s", got, want)
	}
	empty, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
	if _, err := ConfigFromLease("eth0", empty); err == nil {
		t.Error("a lease without an address was taken")
	}
	noMask, _ := dhcpv4.New(dhcpv4.WithYourIP(net.IPv4(192, 168, 1, 5)))
	if c, err := ConfigFromLease("eth0", noMask); err != nil || c.Address.Bits() != 24 || c.Gateway.IsValid() {
		t.Errorf("no mask: %+v %v", c, err)
	}
}

func TestAddrMessage(t *testing.T) {
	m := AddrMessage(3, netip.MustParsePrefix("10.0.7.9/16"))
	if int(binary.NativeEndian.Uint32(m)) != len(m) || binary.NativeEndian.Uint16(m[4:]) != unix.RTM_NEWADDR {
		t.Fatalf("header %x", m[:16])
	}
	body := m[unix.SizeofNlMsghdr:]
	if body[0] != unix.AF_INET || body[1] != 16 || binary.NativeEndian.Uint32(body[4:]) != 3 {
		t.Errorf("ifaddrmsg %x", body[:8])
	}
	// The broadcast attribute is last: 10.0.255.255.
	if !strings.HasSuffix(string(m), string([]byte{10, 0, 255, 255})) {
		t.Errorf("broadcast missing: %x", m)
	}
	r := RouteMessage(3, netip.MustParseAddr("10.0.0.1"))
	if int(binary.NativeEndian.Uint32(r)) != len(r) || binary.NativeEndian.Uint16(r[4:]) != unix.RTM_NEWROUTE {
		t.Fatalf("route header %x", r[:16])
	}
}
