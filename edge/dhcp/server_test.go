package dhcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// loopbackConfig serves on 127.0.0.1 with a port the kernel picks, as the
// simulator and tests reach the edge: as a relay agent.
func loopbackConfig() Config {
	pol := testPolicy()
	return Config{
		Policy:     pol,
		PoolStart:  ip("10.0.1.10"),
		PoolEnd:    ip("10.0.1.200"),
		Listen:     "127.0.0.1:0",
		ServerAddr: ip("10.0.0.1"),
		BootPort:   8080,
	}
}

// startServer runs a server until the test ends.
func startServer(t testing.TB, cfg Config, src TableSource, log *slog.Logger) *Server {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg, src, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func dhcpAddr(t testing.TB, s *Server) netip.AddrPort {
	t.Helper()
	d, _ := s.Addrs()
	return d[0].(*net.UDPAddr).AddrPort()
}

// relayAgent is a UDP socket on loopback acting as a DHCP relay.
type relayAgent struct {
	t    testing.TB
	conn *net.UDPConn
	to   netip.AddrPort
}

func newRelayAgent(t testing.TB, to netip.AddrPort) *relayAgent {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &relayAgent{t: t, conn: c, to: to}
}

func (r *relayAgent) addr() netip.Addr { return ip("127.0.0.1") }

// exchange sends b and returns the reply, or nil when none comes within
// wait.
func (r *relayAgent) exchange(b []byte, wait time.Duration) *dhcpv4.DHCPv4 {
	r.t.Helper()
	if _, err := r.conn.WriteToUDPAddrPort(b, r.to); err != nil {
		r.t.Fatal(err)
	}
	return r.read(wait)
}

func (r *relayAgent) read(wait time.Duration) *dhcpv4.DHCPv4 {
	r.t.Helper()
	buf := make([]byte, 4096)
	r.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := r.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		r.t.Fatal(err)
	}
	p, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		r.t.Fatalf("reply does not parse: %v", err)
	}
	return p
}

// handPacket builds a BOOTREQUEST byte by byte (RFC 2131 figure 1), the
// way a relay agent forwards it: hops 1, giaddr set. opts are raw
// code-length-value options after the message type.
func handPacket(typ dhcpv4.MessageType, xid uint32, hw MAC, giaddr, ciaddr netip.Addr, opts ...[]byte) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2], b[3] = 1, 1, 6, 1 // BOOTREQUEST, Ethernet, hlen 6, hops 1
	binary.BigEndian.PutUint32(b[4:], xid)
	if ciaddr.IsValid() {
		copy(b[12:16], ciaddr.AsSlice())
	}
	if giaddr.IsValid() {
		copy(b[24:28], giaddr.AsSlice())
	}
	copy(b[28:34], hw[:])
	copy(b[236:240], []byte{99, 130, 83, 99})
	b = append(b, 53, 1, byte(typ))
	for _, o := range opts {
		b = append(b, o...)
	}
	return append(b, 255)
}

func opt(code byte, v []byte) []byte { return append([]byte{code, byte(len(v))}, v...) }

func optAddr(code byte, a netip.Addr) []byte { return opt(code, a.AsSlice()) }

func TestRelayedDORAOverLoopback(t *testing.T) {
	s := startServer(t, loopbackConfig(), StaticTable{testTable(t)}, nil)
	relay := newRelayAgent(t, dhcpAddr(t, s))
	agentInfo := opt(82, []byte{1, 4, 'p', 'o', 'r', 't'})

	for _, tt := range []struct {
		name, mac, host string
		want            netip.Addr
		router          bool
	}{
		{"known", macNode1, "node001", ip("10.0.0.5"), true},
		{"unknown", macUnknown, "", ip("10.0.1.10"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hw := mac(t, tt.mac)
			pxeOpts := [][]byte{opt(60, []byte("PXEClient:Arch:00000:UNDI:002001")), opt(93, []byte{0, 0}), agentInfo}
			offer := relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 0x1001, hw, relay.addr(), netip.Addr{}, pxeOpts...), 2*time.Second)
			if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
				t.Fatalf("offer = %v", offer)
			}
			if got := offer.YourIPAddr.String(); got != tt.want.String() {
				t.Errorf("offered %s, want %s", got, tt.want)
			}
			if offer.GatewayIPAddr.String() != "127.0.0.1" || !bytes.Equal(offer.Options.Get(dhcpv4.OptionRelayAgentInformation), agentInfo[2:]) ||
				binary.BigEndian.Uint32(offer.TransactionID[:]) != 0x1001 {
				t.Errorf("relay fields not echoed: %s", offer.Summary())
			}
			if offer.BootFileName != "undionly.kpxe" || offer.ClassIdentifier() != "PXEClient" || offer.ServerIPAddr.String() != "10.0.0.1" {
				t.Errorf("boot options: %s", offer.Summary())
			}
			reqOpts := append(pxeOpts, optAddr(50, tt.want), optAddr(54, ip("10.0.0.1")))
			ack := relay.exchange(handPacket(dhcpv4.MessageTypeRequest, 0x1002, hw, relay.addr(), netip.Addr{}, reqOpts...), 2*time.Second)
			if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
				t.Fatalf("ack = %v", ack)
			}
			if ack.HostName() != tt.host || (len(ack.Router()) > 0) != tt.router || (len(ack.DNS()) > 0) != tt.router {
				t.Errorf("ack options: %s", ack.Summary())
			}
			if m, ok := s.MACFor(net.IP(tt.want.AsSlice())); !ok || m != tt.mac {
				t.Errorf("MACFor(%s) = %q %v", tt.want, m, ok)
			}
		})
	}
	st := s.Stats()
	if st.Offers != 2 || st.Acks != 2 || st.Leases != 2 || st.Naks != 0 || st.Dropped != 0 || st.Received != 4 {
		t.Errorf("stats %+v", st)
	}
	if _, ok := s.MACFor(net.IPv4(10, 0, 1, 99)); ok {
		t.Error("MACFor of an address nobody has")
	}
}

func TestProxyDHCPOverLoopback(t *testing.T) {
	cfg := loopbackConfig()
	cfg.Policy.Mode = ModeProxy
	cfg.BootURL = "http://10.0.0.1:8080/"
	s := startServer(t, cfg, nil, nil)
	dhcpSocks, pxeSocks := s.Addrs()
	if len(dhcpSocks) != 1 || len(pxeSocks) != 1 {
		t.Fatalf("sockets %v %v", dhcpSocks, pxeSocks)
	}
	c := newRelayAgent(t, dhcpAddr(t, s))
	hw := mac(t, macUnknown)
	uuid := opt(97, append([]byte{0}, bytes.Repeat([]byte{7}, 16)...))
	pxeClass := opt(60, []byte("PXEClient:Arch:00007:UNDI:003016"))

	// The firmware's DISCOVER, seen by the site's server and by the edge:
	// the edge answers with boot options only.
	offer := c.exchange(handPacket(dhcpv4.MessageTypeDiscover, 1, hw, netip.Addr{}, netip.Addr{}, pxeClass, opt(93, []byte{0, 7}), uuid), 2*time.Second)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("offer = %v", offer)
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "snponly.efi" || offer.ClassIdentifier() != "PXEClient" ||
		!bytes.Equal(offer.Options.Get(dhcpv4.OptionVendorSpecificInformation), []byte{6, 1, 8, 255}) || !bytes.Equal(offer.Options.Get(dhcpv4.OptionClientMachineIdentifier), uuid[2:]) ||
		offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || offer.Options.Has(dhcpv4.OptionSubnetMask) {
		t.Errorf("proxy offer: %s", offer.Summary())
	}

	// Not a PXE client: the edge stays out of it.
	if r := c.exchange(handPacket(dhcpv4.MessageTypeDiscover, 2, hw, netip.Addr{}, netip.Addr{}, opt(60, []byte("udhcp 1.35.0"))), 300*time.Millisecond); r != nil {
		t.Errorf("non-PXE client answered: %s", r.Summary())
	}

	// With its address from the site's server, the firmware asks the
	// boot-server port.
	bootSrv := newRelayAgent(t, pxeSocks[0].(*net.UDPAddr).AddrPort())
	ack := bootSrv.exchange(handPacket(dhcpv4.MessageTypeRequest, 3, hw, netip.Addr{}, ip("127.0.0.1"), pxeClass, opt(93, []byte{0, 7}),
		opt(77, []byte("iPXE"))), 2*time.Second)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "http://10.0.0.1:8080/boot/ipxe" ||
		ack.ClientIPAddr.String() != "127.0.0.1" {
		t.Fatalf("boot-server ack = %v", ack)
	}
	if st := s.Stats(); st.Offers != 1 || st.Acks != 1 || st.Leases != 0 || st.Ignored != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestFunctionsUnreachable: once a table is loaded, an outage of functions
// changes nothing for known nodes, and is logged once.
func TestFunctionsUnreachable(t *testing.T) {
	f := newFakeFunctions(t, macNode1+" node001 10.0.0.5/16")
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	res, err := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: fakeSecret,
		Refresh: 50 * time.Millisecond, HTTPTimeout: 200 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	runReservations(t, res)
	waitFor(t, "first table", func() bool { return res.Table() != nil })
	s := startServer(t, loopbackConfig(), res, log)
	relay := newRelayAgent(t, dhcpAddr(t, s))

	f.srv.Close() // functions gone: connections refused from now on
	waitFor(t, "outage noticed", func() bool { return strings.Contains(logs.String(), "reservation table unavailable") })
	hw := mac(t, macNode1)
	for i := 0; i < 3; i++ {
		start := time.Now()
		offer := relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, uint32(i), hw, relay.addr(), netip.Addr{}), 2*time.Second)
		if offer == nil || offer.YourIPAddr.String() != "10.0.0.5" || offer.HostName() != "node001" {
			t.Fatalf("offer during the outage = %v", offer)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("answer took %v during the outage", took)
		}
		time.Sleep(100 * time.Millisecond) // a few failed refreshes
	}
	if n := strings.Count(logs.String(), "reservation table unavailable"); n != 1 {
		t.Errorf("outage logged %d times", n)
	}
}

// TestFreshlyAssignedNodeRecognised: an unknown MAC wakes a refresh, so
// once functions know it, its next DISCOVER gets the reservation — without
// waiting for the periodic refresh.
func TestFreshlyAssignedNodeRecognised(t *testing.T) {
	f := newFakeFunctions(t, macNode1+" node001 10.0.0.5/16")
	res, err := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: fakeSecret,
		Refresh: time.Hour, WakeGap: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runReservations(t, res)
	waitFor(t, "first table", func() bool { return res.Table() != nil })
	s := startServer(t, loopbackConfig(), res, nil)
	relay := newRelayAgent(t, dhcpAddr(t, s))
	hw := mac(t, macUnknown)

	offer := relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 1, hw, relay.addr(), netip.Addr{}), 2*time.Second)
	if offer == nil || offer.YourIPAddr.String() != "10.0.1.10" || len(offer.Router()) > 0 {
		t.Fatalf("unknown offer = %v", offer)
	}
	// The admin assigns the machine as node042.
	f.set(macNode1+" node001 10.0.0.5/16", macUnknown+" node042 10.0.0.42/16")
	before := f.requests.Load()
	relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 2, hw, relay.addr(), netip.Addr{}), 2*time.Second)
	waitFor(t, "woken refresh", func() bool {
		_, ok := res.Table().Lookup(hw)
		return ok && f.requests.Load() > before
	})
	offer = relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 3, hw, relay.addr(), netip.Addr{}), 2*time.Second)
	if offer == nil || offer.YourIPAddr.String() != "10.0.0.42" || offer.HostName() != "node042" {
		t.Fatalf("offer after assignment = %v", offer)
	}
}

func runReservations(t testing.TB, r *Reservations) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestSilentUntilFirstTable(t *testing.T) {
	f := newFakeFunctions(t)
	f.setDown(true)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	res, _ := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: fakeSecret, Refresh: 50 * time.Millisecond}, log)
	runReservations(t, res)
	s := startServer(t, loopbackConfig(), res, log)
	relay := newRelayAgent(t, dhcpAddr(t, s))
	for i := 0; i < 2; i++ {
		if r := relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 1, mac(t, macNode1), relay.addr(), netip.Addr{}), 200*time.Millisecond); r != nil {
			t.Fatalf("answered without a table: %s", r.Summary())
		}
	}
	if n := strings.Count(logs.String(), "before any reservation table"); n != 1 {
		t.Errorf("no-table warning logged %d times:\n%s", n, logs)
	}
	f.setDown(false)
	waitFor(t, "table", func() bool { return res.Table() != nil })
	if r := relay.exchange(handPacket(dhcpv4.MessageTypeDiscover, 1, mac(t, macUnknown), relay.addr(), netip.Addr{}), 2*time.Second); r == nil {
		t.Fatal("no answer once the table is there")
	}
}

func TestMalformedPacketsDroppedAndCounted(t *testing.T) {
	logs := &syncBuffer{}
	s := startServer(t, loopbackConfig(), StaticTable{testTable(t)}, slog.New(slog.NewTextHandler(logs, nil)))
	c := newRelayAgent(t, dhcpAddr(t, s))
	good := handPacket(dhcpv4.MessageTypeDiscover, 1, mac(t, macNode1), c.addr(), netip.Addr{})
	noType := append(append([]byte{}, good[:240]...), 255)
	reply := append([]byte{}, good...)
	reply[0] = 2
	infiniband := append([]byte{}, good...)
	infiniband[1], infiniband[2] = 32, 0
	for _, b := range [][]byte{[]byte("garbage"), good[:100], noType, reply, infiniband, good[:len(good)-1]} {
		if r := c.exchange(b, 100*time.Millisecond); r != nil {
			t.Errorf("answered a malformed packet: %s", r.Summary())
		}
	}
	if r := c.exchange(good, 2*time.Second); r == nil {
		t.Fatal("a good packet after the bad ones went unanswered")
	}
	if st := s.Stats(); st.Dropped != 6 || st.Offers != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "malformed DHCP packet dropped"); n != 1 {
		t.Errorf("malformed packets from one source logged %d times:\n%s", n, logs)
	}
}

func TestNewRefuses(t *testing.T) {
	base := loopbackConfig()
	for _, tt := range []struct {
		name string
		edit func(*Config)
		src  TableSource
		want string
	}{
		{"nothing to listen on", func(c *Config) { c.Listen = "" }, StaticTable{}, "no interfaces"},
		{"both", func(c *Config) { c.Interfaces = []string{"eth0"} }, StaticTable{}, "not both"},
		{"pool outside subnet", func(c *Config) { c.PoolEnd = ip("10.1.0.1") }, StaticTable{}, "not inside subnet"},
		{"no source", func(c *Config) {}, nil, "reservation table source"},
		{"no boot URL", func(c *Config) { c.BootPort = 0 }, StaticTable{}, "no boot URL"},
		{"bad boot URL", func(c *Config) { c.BootURL = "tftp://x" }, StaticTable{}, "boot URL"},
	} {
		cfg := base
		tt.edit(&cfg)
		if _, err := New(cfg, tt.src, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want %q", tt.name, err, tt.want)
		}
	}
	cfg := base
	cfg.ServerAddr = netip.Addr{}
	cfg.Listen = "0.0.0.0:0"
	s, err := New(cfg, StaticTable{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err == nil || !strings.Contains(err.Error(), "server address") {
		t.Errorf("Listen on 0.0.0.0 without a server address = %v", err)
	}
	cfg = base
	cfg.Listen = ""
	cfg.Interfaces = []string{"herd-no-such0"}
	s, _ = New(cfg, StaticTable{}, slog.New(slog.DiscardHandler))
	cfg.ServerAddr = netip.Addr{}
	s2, _ := New(cfg, StaticTable{}, slog.New(slog.DiscardHandler))
	for _, srv := range []*Server{s, s2} {
		if err := srv.Listen(context.Background()); err == nil || !strings.Contains(err.Error(), "herd-no-such0") {
			t.Errorf("Listen on a missing interface = %v", err)
		}
	}
}

func isRoot() bool { return os.Geteuid() == 0 }
