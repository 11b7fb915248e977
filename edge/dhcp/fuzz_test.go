package dhcp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzParseDecide feeds raw packet bytes through what the server does with
// them: parse, decide (server and proxy mode, both ports), apply to the
// pool, marshal the reply. It must never panic; a packet that parses gives
// a reply that parses back; an unknown MAC never learns the site's router,
// DNS or a host name.
func FuzzParseDecide(f *testing.F) {
	hw := MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	relayIP := netip.MustParseAddr("127.0.0.1")
	pxeOpts := [][]byte{opt(60, []byte("PXEClient:Arch:00007:UNDI:003016")), opt(93, []byte{0, 7}), opt(97, make([]byte, 17))}
	f.Add(handPacket(dhcpv4.MessageTypeDiscover, 1, hw, netip.Addr{}, netip.Addr{}, pxeOpts...))
	f.Add(handPacket(dhcpv4.MessageTypeDiscover, 2, MAC{1, 2, 3, 4, 5, 6}, relayIP, netip.Addr{}, opt(82, []byte{1, 2, 'x', 'y'})))
	f.Add(handPacket(dhcpv4.MessageTypeRequest, 3, hw, netip.Addr{}, netip.Addr{}, optAddr(50, netip.MustParseAddr("10.0.0.5")), optAddr(54, netip.MustParseAddr("10.0.0.1"))))
	f.Add(handPacket(dhcpv4.MessageTypeRequest, 4, MAC{1, 2, 3, 4, 5, 6}, netip.Addr{}, netip.MustParseAddr("10.0.1.10")))
	f.Add(handPacket(dhcpv4.MessageTypeDecline, 5, MAC{1, 2, 3, 4, 5, 6}, netip.Addr{}, netip.Addr{}, optAddr(50, netip.MustParseAddr("10.0.1.10"))))
	f.Add(handPacket(dhcpv4.MessageTypeRelease, 6, hw, netip.Addr{}, netip.MustParseAddr("10.0.0.5")))
	f.Add(handPacket(dhcpv4.MessageTypeInform, 7, hw, netip.Addr{}, netip.MustParseAddr("10.0.0.5"), opt(77, []byte("iPXE"))))
	f.Add(handPacket(dhcpv4.MessageTypeDiscover, 8, hw, netip.Addr{}, netip.Addr{}, opt(93, []byte{0}), opt(77, []byte{4, 'i', 'P', 'X', 'E'})))
	f.Add([]byte{})
	f.Add([]byte("\x01\x01\x06"))

	f.Fuzz(func(t *testing.T, b []byte) {
		pool := testPool(t)
		tbl := testTable(t)
		for _, mode := range []Mode{ModeServer, ModeProxy} {
			pol := testPolicy()
			pol.Mode = mode
			for _, pxePort := range []bool{false, true} {
				r, err := ParseRequest(b, netip.MustParseAddrPort("127.0.0.1:68"), pxePort)
				if err != nil {
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("error does not wrap ErrMalformed: %v", err)
					}
					return
				}
				d := Decide(Input{Req: r, Table: tbl, Pool: pool, Policy: &pol, Via: testVia(), Now: testNowT()})
				pool.Apply(d.Lease)
				if d.Reply == nil {
					continue
				}
				p, err := dhcpv4.FromBytes(d.Reply.Marshal(r))
				if err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if p.OpCode != dhcpv4.OpcodeBootReply || p.TransactionID != r.XID || p.MessageType() != d.Reply.Type {
					t.Fatalf("reply %s to %+v", p.Summary(), r)
				}
				if _, known := tbl.Lookup(r.MAC); !known && (p.Options.Has(dhcpv4.OptionRouter) ||
					p.Options.Has(dhcpv4.OptionDomainNameServer) || p.Options.Has(dhcpv4.OptionHostName)) {
					t.Fatalf("unknown MAC got site options: %s", p.Summary())
				}
				if d.Reply.Addr.IsValid() && !pol.Subnet.Contains(d.Reply.Addr) {
					t.Fatalf("address %s outside the subnet", d.Reply.Addr)
				}
			}
		}
	})
}
