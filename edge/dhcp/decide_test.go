package dhcp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	_ PoolView    = (*Pool)(nil)
	_ TableSource = (*Reservations)(nil)
)

const (
	macNode1   = "52:54:00:12:34:56" // node001, reserved 10.0.0.5/16
	macNode2   = "52:54:00:00:00:02" // node002, known without address
	macNode3   = "52:54:00:00:00:03" // node003, reserved outside the subnet
	macNode4   = "52:54:00:00:00:04" // node004, reserved inside the pool range
	macUnknown = "52:54:00:aa:bb:cc"
	macOther   = "52:54:00:aa:bb:dd"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(t testing.TB, s string) MAC {
	t.Helper()
	m, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testPolicy() Policy {
	return Policy{
		Mode:           ModeServer,
		Subnet:         netip.MustParsePrefix("10.0.0.0/16"),
		Router:         ip("10.0.0.254"),
		DNS:            []netip.Addr{ip("10.0.0.53"), ip("10.0.0.54")},
		Domain:         "cluster.example",
		Lease:          time.Hour,
		DiscoveryLease: 2 * time.Minute,
	}.withDefaults()
}

func testTable(t testing.TB) *Table {
	t.Helper()
	tbl, errs := NewTable([]Reservation{
		{MAC: mac(t, macNode1), Node: "node001", Addr: ip("10.0.0.5"), Bits: 16},
		{MAC: mac(t, macNode2), Node: "node002"},
		{MAC: mac(t, macNode3), Node: "node003", Addr: ip("192.168.9.9"), Bits: 24},
		{MAC: mac(t, macNode4), Node: "node004", Addr: ip("10.0.1.12")},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return tbl
}

func testPool(t testing.TB) *Pool {
	t.Helper()
	p, err := NewPool(ip("10.0.1.10"), ip("10.0.1.20"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testVia() Listener {
	return Listener{Server: netip.MustParseAddr("10.0.0.1"), BootScriptURL: "http://10.0.0.1:8080/boot/ipxe"}
}

// testNowT() is the decisions' clock in table tests.
const testNowUnix = 1793613600

func testNowT() time.Time { return time.Unix(testNowUnix, 0).UTC() }

func broadcast68() netip.AddrPort { return netip.MustParseAddrPort("255.255.255.255:68") }

// req builds a request from a firmware on the client port, with no address
// yet, then applies edits.
func req(t testing.TB, typ dhcpv4.MessageType, m string, edits ...func(*Request)) *Request {
	r := &Request{Type: typ, MAC: mac(t, m), XID: dhcpv4.TransactionID{1, 2, 3, 4},
		Peer: netip.MustParseAddrPort("0.0.0.0:68")}
	for _, e := range edits {
		e(r)
	}
	return r
}

func arch(a Arch) func(*Request)        { return func(r *Request) { r.Arch, r.HasArch = a, true } }
func requested(a string) func(*Request) { return func(r *Request) { r.RequestedAddr = ip(a) } }
func serverID(a string) func(*Request)  { return func(r *Request) { r.ServerID = ip(a) } }
func ciaddr(a string) func(*Request)    { return func(r *Request) { r.ClientAddr = ip(a) } }
func pxe(r *Request)                    { r.VendorClass = "PXEClient:Arch:00007:UNDI:003016" }
func ipxe(r *Request)                   { r.IPXE = true }
func viaPXEPort(r *Request)             { r.ViaPXEPort = true }
func peer(ap string) func(*Request) {
	return func(r *Request) { r.Peer = netip.MustParseAddrPort(ap) }
}
func relay(a string) func(*Request) { return func(r *Request) { r.RelayAddr = ip(a) } }

// offered sets up the pool as if mac had been offered (or leased) addr.
func leased(t testing.TB, kind LeaseOpKind, m, a string, until time.Time) func(*Pool) {
	return func(p *Pool) { p.Apply(LeaseOp{Kind: kind, MAC: mac(t, m), Addr: ip(a), Until: until}) }
}

// wantKnownOptions checks what a known node gets beyond the address.
func wantKnownOptions(t *testing.T, rep *Reply, host string, lease time.Duration) {
	t.Helper()
	if rep.Router != ip("10.0.0.254") || !slices.Equal(rep.DNS, []netip.Addr{ip("10.0.0.53"), ip("10.0.0.54")}) ||
		rep.Domain != "cluster.example" || rep.Hostname != host || rep.Lease != lease {
		t.Errorf("known-node options: router %v dns %v domain %q host %q lease %v", rep.Router, rep.DNS, rep.Domain, rep.Hostname, rep.Lease)
	}
}

// wantDiscoveryOnly checks an unknown MAC gets nothing past what reaches
// discovery.
func wantDiscoveryOnly(t *testing.T, rep *Reply) {
	t.Helper()
	if rep.Router.IsValid() || len(rep.DNS) > 0 || rep.Domain != "" || rep.Hostname != "" {
		t.Errorf("unknown MAC got router %v dns %v domain %q host %q", rep.Router, rep.DNS, rep.Domain, rep.Hostname)
	}
	if rep.Lease != 2*time.Minute || rep.Bits != 16 || rep.NextServer != testVia().Server || rep.BootFile == "" {
		t.Errorf("unknown MAC: lease %v bits %d next-server %v file %q", rep.Lease, rep.Bits, rep.NextServer, rep.BootFile)
	}
}

func TestDecide(t *testing.T) {
	soon := testNowT().Add(time.Minute)
	tests := []struct {
		name     string
		req      *Request
		pool     func(*Pool)
		policy   func(*Policy)
		noTable  bool
		reason   Reason
		typ      dhcpv4.MessageType // MessageTypeNone: no reply
		addr     string             // yiaddr; "" none
		to       netip.AddrPort     // zero: broadcast:68 when there is a reply
		lease    LeaseOpKind
		unknown  bool
		notice   string // substring
		check    func(t *testing.T, d Decision)
		poolWant func(t *testing.T, p *Pool) // after applying d.Lease
	}{
		// Known node with a reservation.
		{
			name: "known MAC discover gets its reservation and every option", req: req(t, dhcpv4.MessageTypeDiscover, macNode1),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) {
				wantKnownOptions(t, d.Reply, "node001", time.Hour)
				if d.Reply.Bits != 16 || d.Reply.Server != testVia().Server || d.Reply.NextServer != testVia().Server ||
					d.Reply.BootFile != "undionly.kpxe" || d.Reply.PXE {
					t.Errorf("reply %+v", d.Reply)
				}
			},
		},
		{
			name: "reservation's own prefix gives the mask", req: req(t, dhcpv4.MessageTypeDiscover, macNode1),
			policy: func(p *Policy) { p.Subnet = netip.MustParsePrefix("10.0.0.0/8") },
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) {
				if d.Reply.Bits != 16 {
					t.Errorf("bits %d, want the reservation's 16", d.Reply.Bits)
				}
			},
		},
		{
			name: "bare reserved address takes the subnet's mask", req: req(t, dhcpv4.MessageTypeDiscover, macNode4),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.12",
			check: func(t *testing.T, d Decision) {
				if d.Reply.Bits != 16 {
					t.Errorf("bits %d", d.Reply.Bits)
				}
			},
		},
		{
			name: "known MAC request for its reservation is acked", req: req(t, dhcpv4.MessageTypeRequest, macNode1, requested("10.0.0.5"), serverID("10.0.0.1")),
			reason: ReasonAckReserved, typ: dhcpv4.MessageTypeAck, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) { wantKnownOptions(t, d.Reply, "node001", time.Hour) },
		},
		{
			name: "known MAC asking for another address is refused", req: req(t, dhcpv4.MessageTypeRequest, macNode1, requested("10.0.1.10")),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak,
			check: func(t *testing.T, d Decision) {
				if d.Reply.Message == "" || d.Reply.BootFile != "" || d.Reply.Lease != 0 {
					t.Errorf("nak carries %+v", d.Reply)
				}
			},
		},
		{
			name: "known MAC renewing from its address is answered there", req: req(t, dhcpv4.MessageTypeRequest, macNode1, ciaddr("10.0.0.5")),
			reason: ReasonAckReserved, typ: dhcpv4.MessageTypeAck, addr: "10.0.0.5", to: netip.MustParseAddrPort("10.0.0.5:68"),
		},
		{
			name: "renewal asking for broadcast gets broadcast", req: req(t, dhcpv4.MessageTypeRequest, macNode1, ciaddr("10.0.0.5"), func(r *Request) { r.Flags = 0x8000 }),
			reason: ReasonAckReserved, typ: dhcpv4.MessageTypeAck, addr: "10.0.0.5", to: broadcast68(),
		},
		{
			name: "reservation outside the subnet is not answered", req: req(t, dhcpv4.MessageTypeDiscover, macNode3),
			reason: ReasonOutsideSubnet, notice: "outside this edge's subnet",
		},
		{
			name: "client that chose another server is left alone", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.1.10"), serverID("10.0.0.99")),
			pool:   leased(t, LeaseOffer, macUnknown, "10.0.1.10", soon),
			reason: ReasonOtherServer, lease: LeaseWithdraw, unknown: true,
			poolWant: func(t *testing.T, p *Pool) {
				if !p.Available(mac(t, macOther), ip("10.0.1.10"), testNowT()) {
					t.Error("withdrawn offer still holds the address")
				}
			},
		},
		{
			name: "declining its reserved address is a conflict worth a warning", req: req(t, dhcpv4.MessageTypeDecline, macNode1, requested("10.0.0.5")),
			reason: ReasonDeclineReserved, notice: "in use by another machine",
		},

		// Boot files.
		{
			name: "x86-64 UEFI (arch 7) gets the UEFI file", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchEFIX64), pxe),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) {
				if d.Reply.BootFile != "snponly.efi" || !d.Reply.PXE {
					t.Errorf("file %q pxe %v", d.Reply.BootFile, d.Reply.PXE)
				}
			},
		},
		{
			name: "EFI BC (arch 9) gets the UEFI file", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchEFIBC)),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) { wantFile(t, d, "snponly.efi") },
		},
		{
			name: "BIOS (arch 0) gets undionly", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchBIOS)),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) { wantFile(t, d, "undionly.kpxe") },
		},
		{
			name: "ARM64 UEFI (arch 11) gets the ARM file", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchEFIARM64)),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) { wantFile(t, d, DefaultARMFile) },
		},
		{
			name: "ARM32 UEFI (arch 10) gets the configured ARM file", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchEFIARM32)),
			policy: func(p *Policy) { p.ARMFile = "arm/ipxe.efi"; p.UEFIFile = "ipxe.efi"; p.BIOSFile = "undionly.kkpxe" },
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) { wantFile(t, d, "arm/ipxe.efi") },
		},
		{
			name: "unknown architecture gets an address but no boot file", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(6)),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5", notice: "architecture 6",
			check: func(t *testing.T, d Decision) {
				if d.Reply.BootFile != "" || d.Reply.NextServer.IsValid() {
					t.Errorf("file %q next-server %v", d.Reply.BootFile, d.Reply.NextServer)
				}
			},
		},
		{
			name: "unreadable option 93 is an unknown architecture", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, arch(ArchMalformed)),
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.10", lease: LeaseOffer, unknown: true,
			notice: "architecture 65535",
		},
		{
			name: "iPXE gets the boot script URL", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, arch(ArchEFIX64), pxe, ipxe),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5",
			check: func(t *testing.T, d Decision) {
				wantFile(t, d, "http://10.0.0.1:8080/boot/ipxe")
				if !d.Reply.PXE {
					t.Error("iPXE saying PXEClient did not get option 60")
				}
			},
		},

		// Unknown MACs.
		{
			name: "unknown MAC gets a short pool lease and only what reaches discovery", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe),
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.10", lease: LeaseOffer, unknown: true,
			check: func(t *testing.T, d Decision) {
				wantDiscoveryOnly(t, d.Reply)
				if !d.Reply.PXE || d.Lease.Until != testNowT().Add(offerHold) || d.Lease.MAC != mac(t, macUnknown) {
					t.Errorf("pxe %v lease op %+v", d.Reply.PXE, d.Lease)
				}
			},
		},
		{
			name: "unknown MAC request for its offer binds the lease", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.1.10"), serverID("10.0.0.1")),
			pool:   leased(t, LeaseOffer, macUnknown, "10.0.1.10", soon),
			reason: ReasonAckUnknown, typ: dhcpv4.MessageTypeAck, addr: "10.0.1.10", lease: LeaseBind, unknown: true,
			check: func(t *testing.T, d Decision) {
				wantDiscoveryOnly(t, d.Reply)
				if d.Lease.Until != testNowT().Add(2*time.Minute) {
					t.Errorf("bound until %v", d.Lease.Until)
				}
			},
			poolWant: func(t *testing.T, p *Pool) {
				if m, ok := p.MACAt(ip("10.0.1.10"), testNowT()); !ok || m != mac(t, macUnknown) {
					t.Errorf("MACAt = %v %v", m, ok)
				}
			},
		},
		{
			name: "same MAC gets the same address back", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown),
			pool: func(p *Pool) {
				leased(t, LeaseBind, macOther, "10.0.1.10", soon)(p)
				leased(t, LeaseBind, macUnknown, "10.0.1.15", testNowT().Add(-time.Hour))(p) // expired long ago
			},
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.15", lease: LeaseOffer, unknown: true,
		},
		{
			name: "a requested free address is honoured", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, requested("10.0.1.17")),
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.17", lease: LeaseOffer, unknown: true,
		},
		{
			name: "a requested address someone holds is not", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, requested("10.0.1.17")),
			pool: leased(t, LeaseBind, macOther, "10.0.1.17", soon),
			// Free goes on round robin after the last address handed out.
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.18", lease: LeaseOffer, unknown: true,
		},
		{
			name: "the pool never hands out a reserved address", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown),
			pool: func(p *Pool) {
				leased(t, LeaseBind, "52:54:00:00:01:01", "10.0.1.10", soon)(p)
				leased(t, LeaseBind, "52:54:00:00:01:02", "10.0.1.11", soon)(p)
			},
			reason: ReasonOfferUnknown, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.13", lease: LeaseOffer, unknown: true,
		},
		{
			name: "a reserved address requested from the pool is refused", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.1.12")),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak, unknown: true,
		},
		{
			name: "exhausted pool: no answer", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown),
			pool: func(p *Pool) {
				for i := 10; i <= 20; i++ {
					leased(t, LeaseBind, fmt.Sprintf("52:54:00:00:02:%02d", i), fmt.Sprintf("10.0.1.%d", i), soon)(p)
				}
			},
			reason: ReasonPoolExhausted, unknown: true,
		},
		{
			name: "an address held by another MAC is refused", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.1.10"), serverID("10.0.0.1")),
			pool:   leased(t, LeaseBind, macOther, "10.0.1.10", soon),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak, unknown: true,
		},
		{
			name: "an address outside the segment is refused", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("192.168.1.7")),
			reason: ReasonNakOtherNetwork, typ: dhcpv4.MessageTypeNak, unknown: true,
		},
		{
			name: "an address in the segment but outside the pool is refused", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.0.77")),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak, unknown: true,
		},
		{
			name: "after an edge restart a client rebooting with a free pool address keeps it", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, requested("10.0.1.14")),
			reason: ReasonAckUnknown, typ: dhcpv4.MessageTypeAck, addr: "10.0.1.14", lease: LeaseBind, unknown: true,
		},
		{
			name: "a request naming no address is ignored", req: req(t, dhcpv4.MessageTypeRequest, macUnknown),
			reason: ReasonNoAddress, unknown: true,
		},
		{
			name: "decline takes the address out of the pool", req: req(t, dhcpv4.MessageTypeDecline, macUnknown, requested("10.0.1.10")),
			pool:   leased(t, LeaseOffer, macUnknown, "10.0.1.10", soon),
			reason: ReasonDeclined, lease: LeaseDecline, unknown: true,
			poolWant: func(t *testing.T, p *Pool) {
				if p.Available(mac(t, macUnknown), ip("10.0.1.10"), testNowT().Add(5*time.Minute)) {
					t.Error("declined address available again within the hold")
				}
				if !p.Available(mac(t, macOther), ip("10.0.1.10"), testNowT().Add(declineHold+time.Second)) {
					t.Error("declined address never comes back")
				}
				if _, ok := p.Held(mac(t, macUnknown)); ok {
					t.Error("the MAC still holds a declined address")
				}
			},
		},
		{
			name: "decline of an address not held is ignored", req: req(t, dhcpv4.MessageTypeDecline, macUnknown, requested("10.0.1.11")),
			pool:   leased(t, LeaseOffer, macUnknown, "10.0.1.10", soon),
			reason: ReasonDeclineIgnored, unknown: true,
		},
		{
			name: "release frees the address but remembers the MAC", req: req(t, dhcpv4.MessageTypeRelease, macUnknown, ciaddr("10.0.1.10")),
			pool:   leased(t, LeaseBind, macUnknown, "10.0.1.10", soon),
			reason: ReasonReleased, lease: LeaseRelease, unknown: true,
			poolWant: func(t *testing.T, p *Pool) {
				if _, ok := p.MACAt(ip("10.0.1.10"), testNowT()); ok {
					t.Error("released lease still bound")
				}
				if a, ok := p.Held(mac(t, macUnknown)); !ok || a != ip("10.0.1.10") {
					t.Errorf("Held after release = %v %v", a, ok)
				}
			},
		},

		// Known node without an address.
		{
			name: "known MAC without address gets a pool address with the full options", req: req(t, dhcpv4.MessageTypeDiscover, macNode2, arch(ArchEFIBC), pxe),
			reason: ReasonOfferKnownPool, typ: dhcpv4.MessageTypeOffer, addr: "10.0.1.10", lease: LeaseOffer,
			check: func(t *testing.T, d Decision) {
				wantKnownOptions(t, d.Reply, "node002", time.Hour)
				wantFile(t, d, "snponly.efi")
			},
		},
		{
			name: "known MAC without address binds for the full lease", req: req(t, dhcpv4.MessageTypeRequest, macNode2, requested("10.0.1.10"), serverID("10.0.0.1")),
			pool:   leased(t, LeaseOffer, macNode2, "10.0.1.10", soon),
			reason: ReasonAckKnownPool, typ: dhcpv4.MessageTypeAck, addr: "10.0.1.10", lease: LeaseBind,
			check: func(t *testing.T, d Decision) {
				if d.Lease.Until != testNowT().Add(time.Hour) {
					t.Errorf("until %v", d.Lease.Until)
				}
			},
		},

		// Other messages and states.
		{
			name: "inform gets options, no address and no lease", req: req(t, dhcpv4.MessageTypeInform, macNode1, ciaddr("10.0.0.5")),
			reason: ReasonAckInform, typ: dhcpv4.MessageTypeAck, to: netip.MustParseAddrPort("10.0.0.5:68"),
			check: func(t *testing.T, d Decision) {
				if d.Reply.Lease != 0 || d.Reply.Router != ip("10.0.0.254") {
					t.Errorf("inform reply %+v", d.Reply)
				}
			},
		},
		{
			name: "a client sending an OFFER is ignored", req: req(t, dhcpv4.MessageTypeOffer, macNode1),
			reason: ReasonNotForServer,
		},
		{
			name: "no table loaded yet: silence", req: req(t, dhcpv4.MessageTypeDiscover, macNode1), noTable: true,
			reason: ReasonNoTable,
		},
		{
			name: "the PXE port is not served in server mode", req: req(t, dhcpv4.MessageTypeRequest, macNode1, viaPXEPort, pxe),
			reason: ReasonWrongPort,
		},

		// Destinations.
		{
			name: "relayed request goes back to the relay's port", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, relay("192.168.50.1"), peer("192.168.50.1:67")),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5", to: netip.MustParseAddrPort("192.168.50.1:67"),
		},
		{
			name: "an unprivileged relay is answered on its own port", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, relay("127.0.0.1"), peer("127.0.0.1:40000")),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5", to: netip.MustParseAddrPort("127.0.0.1:40000"),
		},
		{
			name: "giaddr differing from the sender gets the answer on port 67", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, relay("192.168.50.1"), peer("192.168.60.1:67")),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5", to: netip.MustParseAddrPort("192.168.50.1:67"),
		},
		{
			name: "a NAK for a relayed client goes to the relay", req: req(t, dhcpv4.MessageTypeRequest, macNode1, requested("10.0.0.6"), relay("192.168.50.1"), peer("192.168.50.1:67")),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak, to: netip.MustParseAddrPort("192.168.50.1:67"),
		},
		{
			name: "a NAK to a renewing client is broadcast", req: req(t, dhcpv4.MessageTypeRequest, macNode1, ciaddr("10.0.0.6")),
			reason: ReasonNakWrongAddress, typ: dhcpv4.MessageTypeNak, to: broadcast68(),
		},
		{
			name: "a test tool off the client port is answered where it sent from", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, peer("127.0.0.1:5555")),
			reason: ReasonOfferReserved, typ: dhcpv4.MessageTypeOffer, addr: "10.0.0.5", to: netip.MustParseAddrPort("127.0.0.1:5555"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := testPolicy()
			if tt.policy != nil {
				tt.policy(&pol)
			}
			pool := testPool(t)
			if tt.pool != nil {
				tt.pool(pool)
			}
			in := Input{Req: tt.req, Pool: pool, Policy: &pol, Via: testVia(), Now: testNowT()}
			if !tt.noTable {
				in.Table = testTable(t)
			}
			d := Decide(in)
			if d.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", d.Reason, tt.reason)
			}
			checkDecision(t, d, tt.typ, tt.addr, tt.to, tt.lease, tt.notice)
			if d.Unknown != tt.unknown {
				t.Errorf("Unknown = %v, want %v", d.Unknown, tt.unknown)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
			pool.Apply(d.Lease)
			if tt.poolWant != nil {
				tt.poolWant(t, pool)
			}
		})
	}
}

func checkDecision(t *testing.T, d Decision, typ dhcpv4.MessageType, addr string, to netip.AddrPort, lease LeaseOpKind, notice string) {
	t.Helper()
	if typ == dhcpv4.MessageTypeNone {
		if d.Reply != nil {
			t.Fatalf("reply %+v, want none", d.Reply)
		}
	} else {
		if d.Reply == nil {
			t.Fatalf("no reply, want %v", typ)
		}
		if d.Reply.Type != typ {
			t.Errorf("type %v, want %v", d.Reply.Type, typ)
		}
		var want netip.Addr
		if addr != "" {
			want = ip(addr)
		}
		if d.Reply.Addr != want {
			t.Errorf("addr %v, want %v", d.Reply.Addr, want)
		}
		if !to.IsValid() {
			to = broadcast68()
		}
		if d.Reply.To != to {
			t.Errorf("to %v, want %v", d.Reply.To, to)
		}
	}
	if d.Lease.Kind != lease {
		t.Errorf("lease op %v, want %v", d.Lease.Kind, lease)
	}
	if notice == "" && d.Notice != "" || !strings.Contains(d.Notice, notice) {
		t.Errorf("notice %q, want one containing %q", d.Notice, notice)
	}
}

func wantFile(t *testing.T, d Decision, file string) {
	t.Helper()
	if d.Reply.BootFile != file {
		t.Errorf("boot file %q, want %q", d.Reply.BootFile, file)
	}
}

func TestDecideProxy(t *testing.T) {
	tests := []struct {
		name    string
		req     *Request
		reason  Reason
		typ     dhcpv4.MessageType
		to      netip.AddrPort
		file    string
		notice  string
		noTable bool
	}{
		{name: "PXE discover gets boot options and no address", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe, arch(ArchEFIBC)),
			reason: ReasonProxyOffer, typ: dhcpv4.MessageTypeOffer, file: "snponly.efi"},
		{name: "works with no table at all", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, pxe), noTable: true,
			reason: ReasonProxyOffer, typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe"},
		{name: "a known node gets no address either", req: req(t, dhcpv4.MessageTypeDiscover, macNode1, pxe, arch(ArchBIOS)),
			reason: ReasonProxyOffer, typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe"},
		{name: "iPXE gets the boot script", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe, ipxe),
			reason: ReasonProxyOffer, typ: dhcpv4.MessageTypeOffer, file: "http://10.0.0.1:8080/boot/ipxe"},
		{name: "non-PXE clients are the site server's business", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown),
			reason: ReasonNotPXE},
		{name: "request naming the edge on 67 is acked", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, pxe, serverID("10.0.0.1")),
			reason: ReasonProxyAck, typ: dhcpv4.MessageTypeAck, file: "undionly.kpxe"},
		{name: "request for the site server on 67 is not ours", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, pxe, serverID("10.0.0.250"), requested("10.0.0.77")),
			reason: ReasonOtherServer},
		{name: "request on the boot-server port is acked to the sender", req: req(t, dhcpv4.MessageTypeRequest, macUnknown, pxe, arch(ArchEFIX64), viaPXEPort, ciaddr("10.0.0.77"), peer("10.0.0.77:4011")),
			reason: ReasonProxyAck, typ: dhcpv4.MessageTypeAck, to: netip.MustParseAddrPort("10.0.0.77:4011"), file: "snponly.efi"},
		{name: "discover on the boot-server port is not answered", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe, viaPXEPort, peer("10.0.0.77:4011")),
			reason: ReasonNotForServer},
		{name: "unknown architecture: nothing to offer", req: req(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe, arch(2)),
			reason: ReasonNoBootFile, notice: "architecture 2"},
		{name: "release is not answered", req: req(t, dhcpv4.MessageTypeRelease, macUnknown, pxe),
			reason: ReasonNotForServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := testPolicy()
			pol.Mode = ModeProxy
			in := Input{Req: tt.req, Policy: &pol, Via: testVia(), Now: testNowT()}
			if !tt.noTable {
				in.Table = testTable(t)
			}
			d := Decide(in)
			if d.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", d.Reason, tt.reason)
			}
			checkDecision(t, d, tt.typ, "", tt.to, LeaseNone, tt.notice)
			if d.Reply == nil {
				return
			}
			r := d.Reply
			if r.BootFile != tt.file || r.NextServer != testVia().Server || !r.PXE || !r.DiscoveryControl ||
				r.Lease != 0 || r.Bits != 0 || r.Router.IsValid() || len(r.DNS) > 0 || r.Hostname != "" {
				t.Errorf("proxy reply %+v", r)
			}
		})
	}
}

// TestMarshal checks the packet a reply becomes, read back by the library.
func TestMarshal(t *testing.T) {
	pol := testPolicy()
	r := req(t, dhcpv4.MessageTypeDiscover, macNode1, pxe, arch(ArchEFIBC), relay("192.168.50.1"), peer("192.168.50.1:67"), func(r *Request) {
		r.ClientID = []byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
		r.RelayInfo = []byte{1, 3, 'e', 't', '0'}
		r.UUID = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	})
	d := Decide(Input{Req: r, Table: testTable(t), Pool: testPool(t), Policy: &pol, Via: testVia(), Now: testNowT()})
	p, err := dhcpv4.FromBytes(d.Reply.Marshal(r))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want string
	}{
		{"op", p.OpCode.String(), dhcpv4.OpcodeBootReply.String()},
		{"type", p.MessageType().String(), "OFFER"},
		{"xid", p.TransactionID.String(), r.XID.String()},
		{"chaddr", p.ClientHWAddr.String(), macNode1},
		{"yiaddr", p.YourIPAddr.String(), "10.0.0.5"},
		{"siaddr", p.ServerIPAddr.String(), "10.0.0.1"},
		{"giaddr", p.GatewayIPAddr.String(), "192.168.50.1"},
		{"file", p.BootFileName, "snponly.efi"},
		{"option 67", p.BootFileNameOption(), "snponly.efi"},
		{"option 66", p.TFTPServerName(), "10.0.0.1"},
		{"option 54", p.ServerIdentifier().String(), "10.0.0.1"},
		{"option 1", p.SubnetMask().String(), "ffff0000"},
		{"option 3", p.Router()[0].String(), "10.0.0.254"},
		{"option 6", p.DNS()[1].String(), "10.0.0.54"},
		{"option 12", p.HostName(), "node001"},
		{"option 15", p.DomainName(), "cluster.example"},
		{"option 51", p.IPAddressLeaseTime(0).String(), "1h0m0s"},
		{"option 58", p.IPAddressRenewalTime(0).String(), "30m0s"},
		{"option 59", p.IPAddressRebindingTime(0).String(), "52m30s"},
		{"option 60", p.ClassIdentifier(), "PXEClient"},
		{"option 61", string(p.Options.Get(dhcpv4.OptionClientIdentifier)), string(r.ClientID)},
		{"option 82", string(p.Options.Get(dhcpv4.OptionRelayAgentInformation)), string(r.RelayInfo)},
		{"option 97", string(p.Options.Get(dhcpv4.OptionClientMachineIdentifier)), string(r.UUID)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if p.Options.Has(dhcpv4.OptionVendorSpecificInformation) {
		t.Error("server-mode offer carries option 43")
	}

	// A proxy answer: option 43, no address, no lease.
	pol.Mode = ModeProxy
	d = Decide(Input{Req: r, Policy: &pol, Via: testVia(), Now: testNowT()})
	p, err = dhcpv4.FromBytes(d.Reply.Marshal(r))
	if err != nil {
		t.Fatal(err)
	}
	if !p.YourIPAddr.IsUnspecified() || p.Options.Has(dhcpv4.OptionIPAddressLeaseTime) ||
		string(p.Options.Get(dhcpv4.OptionVendorSpecificInformation)) != "\x06\x01\x08\xff" {
		t.Errorf("proxy packet %s", p.Summary())
	}

	// A NAK through a relay asks the relay to broadcast and carries only
	// the message.
	pol.Mode = ModeServer
	r = req(t, dhcpv4.MessageTypeRequest, macNode1, requested("10.0.0.9"), relay("192.168.50.1"), peer("192.168.50.1:67"))
	d = Decide(Input{Req: r, Table: testTable(t), Pool: testPool(t), Policy: &pol, Via: testVia(), Now: testNowT()})
	p, err = dhcpv4.FromBytes(d.Reply.Marshal(r))
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageType() != dhcpv4.MessageTypeNak || !p.IsBroadcast() || p.BootFileName != "" ||
		p.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || p.Message() == "" {
		t.Errorf("nak packet %s", p.Summary())
	}
}

func TestLongBootURLStaysOutOfTheFileField(t *testing.T) {
	pol := testPolicy()
	via := testVia()
	via.BootScriptURL = "http://edge.example:8080/" + strings.Repeat("x", 150) + "/boot/ipxe"
	r := req(t, dhcpv4.MessageTypeDiscover, macNode1, ipxe)
	d := Decide(Input{Req: r, Table: testTable(t), Pool: testPool(t), Policy: &pol, Via: via, Now: testNowT()})
	p, err := dhcpv4.FromBytes(d.Reply.Marshal(r))
	if err != nil {
		t.Fatal(err)
	}
	if p.BootFileName != "" || p.BootFileNameOption() != via.BootScriptURL {
		t.Errorf("file %q option 67 %q", p.BootFileName, p.BootFileNameOption())
	}
}
