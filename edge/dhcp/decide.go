package dhcp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Mode is how the edge takes part in DHCP on its segment.
type Mode uint8

const (
	// ModeServer: the edge is the segment's DHCP server and hands out
	// addresses.
	ModeServer Mode = iota
	// ModeProxy: the site keeps its own DHCP server; the edge answers only
	// PXE clients, with boot options and no address (proxyDHCP).
	ModeProxy
)

func (m Mode) String() string {
	if m == ModeProxy {
		return "proxy"
	}
	return "server"
}

// Defaults for Policy fields left zero.
const (
	DefaultLease          = time.Hour
	DefaultDiscoveryLease = 2 * time.Minute
	DefaultBIOSFile       = "undionly.kpxe"
	DefaultUEFIFile       = "snponly.efi"
	DefaultARMFile        = "arm64-efi/snponly.efi"
)

// Policy is what the site configured about the answers: the network, the
// options known nodes get, lease times and boot files.
type Policy struct {
	Mode   Mode
	Subnet netip.Prefix // the segment; the pool and reservations must be in it (server mode)
	Router netip.Addr   // option 3 for known nodes; invalid: none
	DNS    []netip.Addr // option 6 for known nodes
	Domain string       // option 15 for known nodes

	Lease          time.Duration // known nodes
	DiscoveryLease time.Duration // unknown MACs, from the discovery pool

	// Boot files by client architecture, for firmware that is not iPXE yet.
	BIOSFile string // arch 0
	UEFIFile string // arch 7 and 9 (x86-64 UEFI)
	ARMFile  string // arch 10 and 11 (ARM UEFI)
}

// withDefaults fills zero fields with the package defaults.
func (p Policy) withDefaults() Policy {
	if p.Lease <= 0 {
		p.Lease = DefaultLease
	}
	if p.DiscoveryLease <= 0 {
		p.DiscoveryLease = DefaultDiscoveryLease
	}
	if p.BIOSFile == "" {
		p.BIOSFile = DefaultBIOSFile
	}
	if p.UEFIFile == "" {
		p.UEFIFile = DefaultUEFIFile
	}
	if p.ARMFile == "" {
		p.ARMFile = DefaultARMFile
	}
	return p
}

// Listener is what a decision needs to know about the socket a request
// came in on.
type Listener struct {
	// Server is the edge's address as clients on this segment reach it:
	// server identifier (54), next-server (siaddr) and option 66.
	Server netip.Addr
	// BootScriptURL is the boot file for clients that already run iPXE,
	// e.g. http://10.0.0.1:8080/boot/ipxe.
	BootScriptURL string
}

// Input is everything a decision depends on.
type Input struct {
	Req    *Request
	Table  *Table   // nil while no table has been loaded
	Pool   PoolView // the discovery pool; unused in proxy mode
	Policy *Policy
	Via    Listener
	Now    time.Time
}

// Reason says why a decision came out as it did, in a few words fit for a
// log line and a test.
type Reason string

const (
	ReasonOfferReserved   Reason = "offer: reserved address"
	ReasonOfferKnownPool  Reason = "offer: known node without address, discovery pool"
	ReasonOfferUnknown    Reason = "offer: unknown MAC, discovery pool"
	ReasonAckReserved     Reason = "ack: reserved address"
	ReasonAckKnownPool    Reason = "ack: known node without address, discovery pool"
	ReasonAckUnknown      Reason = "ack: unknown MAC, discovery pool"
	ReasonAckInform       Reason = "ack: inform"
	ReasonProxyOffer      Reason = "proxy offer: boot options only"
	ReasonProxyAck        Reason = "proxy ack: boot options only"
	ReasonNakWrongAddress Reason = "nak: not this client's address"
	ReasonNakOtherNetwork Reason = "nak: address outside this segment"

	ReasonNoTable         Reason = "no reply: no reservation table loaded yet"
	ReasonPoolExhausted   Reason = "no reply: discovery pool exhausted"
	ReasonOutsideSubnet   Reason = "no reply: reserved address outside this segment's subnet"
	ReasonOtherServer     Reason = "no reply: client chose another server"
	ReasonNoAddress       Reason = "no reply: request names no address"
	ReasonDeclined        Reason = "no reply: client declined the address"
	ReasonDeclineReserved Reason = "no reply: client declined its reserved address"
	ReasonDeclineIgnored  Reason = "no reply: decline of an address the client does not hold"
	ReasonReleased        Reason = "no reply: client released the address"
	ReasonNotForServer    Reason = "no reply: message type a server does not answer"
	ReasonNotPXE          Reason = "no reply: proxy mode answers PXE clients only"
	ReasonNoBootFile      Reason = "no reply: proxy mode has no boot file for this architecture"
	ReasonWrongPort       Reason = "no reply: the PXE boot-server port is served in proxy mode only"
)

// Decision is the outcome of Decide.
type Decision struct {
	Reply  *Reply // nil: stay silent
	Reason Reason
	Lease  LeaseOp
	// Unknown is set when the MAC is not in the table: the table should be
	// refreshed soon, so a node just assigned is recognised next time.
	Unknown bool
	// Notice is worth a warning, logged once per MAC (an architecture
	// without boot file, a reservation outside the subnet, a conflict).
	Notice string
}

// Reply describes the answer; Marshal turns it into a packet.
type Reply struct {
	Type dhcpv4.MessageType
	To   netip.AddrPort

	Addr     netip.Addr // yiaddr; invalid for proxy answers, INFORM and NAK
	Bits     int        // subnet mask (option 1) as prefix length; 0: none
	Router   netip.Addr
	DNS      []netip.Addr
	Domain   string
	Hostname string
	Lease    time.Duration // options 51, 58 and 59; 0: none

	Server     netip.Addr // option 54
	NextServer netip.Addr // siaddr and option 66; invalid: none
	BootFile   string     // option 67 and the file field; "": none
	// PXE adds option 60 "PXEClient", without which OVMF does not fetch the
	// boot file; DiscoveryControl adds option 43 telling PXE firmware to
	// boot the file in this packet without boot-server discovery
	// (proxyDHCP).
	PXE              bool
	DiscoveryControl bool
	Message          string // option 56, for NAKs
}

// Decide chooses the answer to one request. It is a pure function of its
// input: it reads the table and the pool and returns the pool change for
// the caller to apply.
func Decide(in Input) Decision {
	if in.Policy.Mode == ModeProxy {
		return decideProxy(in)
	}
	r := in.Req
	if r.ViaPXEPort {
		return Decision{Reason: ReasonWrongPort}
	}
	if in.Table == nil {
		return Decision{Reason: ReasonNoTable}
	}
	res, known := in.Table.Lookup(r.MAC)
	c := client{in: in, res: res, known: known, reserved: known && res.Addr.IsValid()}
	if c.reserved && !in.Policy.Subnet.Contains(res.Addr) {
		return Decision{Reason: ReasonOutsideSubnet,
			Notice: fmt.Sprintf("node %q has reserved address %s outside this edge's subnet %s; not answering it", res.Node, res.Addr, in.Policy.Subnet)}
	}
	var d Decision
	switch r.Type {
	case dhcpv4.MessageTypeDiscover:
		d = c.discover()
	case dhcpv4.MessageTypeRequest:
		d = c.request()
	case dhcpv4.MessageTypeDecline:
		d = c.decline()
	case dhcpv4.MessageTypeRelease:
		d = c.release()
	case dhcpv4.MessageTypeInform:
		d = c.inform()
	default:
		d = Decision{Reason: ReasonNotForServer}
	}
	d.Unknown = !known
	return d
}

// client is one request in server mode with what the table says about it.
type client struct {
	in       Input
	res      Reservation
	known    bool
	reserved bool // known and with an address
}

func (c client) discover() Decision {
	in, r := c.in, c.in.Req
	if c.reserved {
		return c.reply(dhcpv4.MessageTypeOffer, c.res.Addr, ReasonOfferReserved)
	}
	addr, ok := c.poolAddr()
	if !ok {
		return Decision{Reason: ReasonPoolExhausted}
	}
	reason := ReasonOfferUnknown
	if c.known {
		reason = ReasonOfferKnownPool
	}
	d := c.reply(dhcpv4.MessageTypeOffer, addr, reason)
	d.Lease = LeaseOp{Kind: LeaseOffer, MAC: r.MAC, Addr: addr, Until: in.Now.Add(offerHold)}
	return d
}

// poolAddr picks the pool address to offer: the one the MAC had, else the
// one it asks for, else the next free one; never a reserved address.
func (c client) poolAddr() (netip.Addr, bool) {
	in, r := c.in, c.in.Req
	usable := func(a netip.Addr) bool {
		return a.IsValid() && in.Pool.Available(r.MAC, a, in.Now) && !in.Table.Reserved(a)
	}
	if a, ok := in.Pool.Held(r.MAC); ok && usable(a) {
		return a, true
	}
	if usable(r.RequestedAddr) {
		return r.RequestedAddr, true
	}
	return in.Pool.Free(in.Now, in.Table.Reserved)
}

func (c client) request() Decision {
	in, r := c.in, c.in.Req
	if r.ServerID.IsValid() && r.ServerID != in.Via.Server {
		return Decision{Reason: ReasonOtherServer, Lease: LeaseOp{Kind: LeaseWithdraw, MAC: r.MAC}}
	}
	addr := r.RequestedAddr
	if !addr.IsValid() {
		addr = r.ClientAddr
	}
	if !addr.IsValid() {
		return Decision{Reason: ReasonNoAddress}
	}
	if c.reserved {
		if addr != c.res.Addr {
			return c.nak(ReasonNakWrongAddress)
		}
		return c.reply(dhcpv4.MessageTypeAck, addr, ReasonAckReserved)
	}
	if !in.Policy.Subnet.Contains(addr) {
		return c.nak(ReasonNakOtherNetwork)
	}
	if !in.Pool.Available(r.MAC, addr, in.Now) || in.Table.Reserved(addr) {
		return c.nak(ReasonNakWrongAddress)
	}
	reason, lease := ReasonAckUnknown, in.Policy.DiscoveryLease
	if c.known {
		reason, lease = ReasonAckKnownPool, in.Policy.Lease
	}
	d := c.reply(dhcpv4.MessageTypeAck, addr, reason)
	d.Lease = LeaseOp{Kind: LeaseBind, MAC: r.MAC, Addr: addr, Until: in.Now.Add(lease)}
	return d
}

func (c client) decline() Decision {
	in, r := c.in, c.in.Req
	a := r.RequestedAddr
	if c.reserved && a == c.res.Addr {
		return Decision{Reason: ReasonDeclineReserved,
			Notice: fmt.Sprintf("node %q found its reserved address %s in use by another machine", c.res.Node, a)}
	}
	if held, ok := in.Pool.Held(r.MAC); !ok || held != a {
		return Decision{Reason: ReasonDeclineIgnored}
	}
	return Decision{Reason: ReasonDeclined, Lease: LeaseOp{Kind: LeaseDecline, MAC: r.MAC, Addr: a, Until: in.Now.Add(declineHold)}}
}

func (c client) release() Decision {
	r := c.in.Req
	return Decision{Reason: ReasonReleased, Lease: LeaseOp{Kind: LeaseRelease, MAC: r.MAC, Addr: r.ClientAddr}}
}

// inform answers a client that has an address and wants options only.
func (c client) inform() Decision {
	d := c.reply(dhcpv4.MessageTypeAck, netip.Addr{}, ReasonAckInform)
	d.Reply.Lease = 0
	return d
}

// reply builds an OFFER or ACK of addr with what this client may have:
// known nodes everything configured, unknown MACs only what reaches
// discovery (address, mask, next-server, boot file).
func (c client) reply(typ dhcpv4.MessageType, addr netip.Addr, reason Reason) Decision {
	in, p := c.in, c.in.Policy
	rep := &Reply{
		Type:   typ,
		Addr:   addr,
		Bits:   p.Subnet.Bits(),
		Server: in.Via.Server,
		Lease:  p.DiscoveryLease,
	}
	if c.known {
		rep.Router, rep.DNS, rep.Domain, rep.Hostname = p.Router, p.DNS, p.Domain, hostname(c.res.Node)
		rep.Lease = p.Lease
	}
	if c.reserved && c.res.Bits > 0 {
		rep.Bits = c.res.Bits
	}
	notice := bootOptions(in, rep)
	rep.To = destination(in.Req, typ)
	return Decision{Reply: rep, Reason: reason, Notice: notice}
}

func (c client) nak(reason Reason) Decision {
	rep := &Reply{Type: dhcpv4.MessageTypeNak, Server: c.in.Via.Server, Message: string(reason)}
	rep.To = destination(c.in.Req, dhcpv4.MessageTypeNak)
	return Decision{Reply: rep, Reason: reason}
}

// decideProxy answers PXE clients with boot options and no address, on
// port 67 (OFFER to a DISCOVER, ACK to a REQUEST naming the edge) and on
// the boot-server port 4011 (ACK to a REQUEST).
func decideProxy(in Input) Decision {
	r := in.Req
	if !r.PXE() {
		return Decision{Reason: ReasonNotPXE}
	}
	var typ dhcpv4.MessageType
	reason := ReasonProxyAck
	switch {
	case r.ViaPXEPort && (r.Type == dhcpv4.MessageTypeRequest || r.Type == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	case r.ViaPXEPort:
		return Decision{Reason: ReasonNotForServer}
	case r.Type == dhcpv4.MessageTypeDiscover:
		typ, reason = dhcpv4.MessageTypeOffer, ReasonProxyOffer
	case r.Type == dhcpv4.MessageTypeRequest && r.ServerID == in.Via.Server:
		typ = dhcpv4.MessageTypeAck
	case r.Type == dhcpv4.MessageTypeRequest:
		return Decision{Reason: ReasonOtherServer}
	default:
		return Decision{Reason: ReasonNotForServer}
	}
	rep := &Reply{Type: typ, Server: in.Via.Server, DiscoveryControl: true}
	if notice := bootOptions(in, rep); notice != "" {
		return Decision{Reason: ReasonNoBootFile, Notice: notice}
	}
	rep.To = destination(r, typ)
	return Decision{Reply: rep, Reason: reason}
}

// bootOptions sets next-server and the boot file for the client's
// architecture, or the boot script URL when it runs iPXE already. It
// returns a notice when the architecture has no boot file.
func bootOptions(in Input, rep *Reply) (notice string) {
	r, p := in.Req, in.Policy
	rep.PXE = r.PXE()
	if r.IPXE {
		rep.NextServer, rep.BootFile = in.Via.Server, in.Via.BootScriptURL
		return ""
	}
	arch := ArchBIOS // no option 93: legacy BIOS PXE (RFC 4578)
	if r.HasArch {
		arch = r.Arch
	}
	switch arch {
	case ArchBIOS:
		rep.BootFile = p.BIOSFile
	case ArchEFIX64, ArchEFIBC:
		rep.BootFile = p.UEFIFile
	case ArchEFIARM32, ArchEFIARM64:
		rep.BootFile = p.ARMFile
	default:
		return fmt.Sprintf("client architecture %d (option 93) has no boot file; answering without one", arch)
	}
	rep.NextServer = in.Via.Server
	return ""
}

// destination is where a reply goes (RFC 2131 4.1): to the relay agent
// when there is one, to a client that has an address at that address, else
// broadcast — except that a sender not on the client port (a simulator or
// test tool, never PXE firmware) is answered where it sent from.
func destination(r *Request, typ dhcpv4.MessageType) netip.AddrPort {
	peer := r.Peer
	switch {
	case r.RelayAddr.IsValid():
		// A relay agent sends from port 67; answering the port it used
		// keeps the same rule working for an unprivileged simulator.
		if peer.Addr().Unmap() == r.RelayAddr {
			return peer
		}
		return netip.AddrPortFrom(r.RelayAddr, ServerPort)
	case r.ViaPXEPort:
		return peer
	case peer.Port() != ClientPort && peer.Addr().IsValid() && !peer.Addr().IsUnspecified():
		return peer
	case typ != dhcpv4.MessageTypeNak && r.ClientAddr.IsValid() && !r.Broadcast():
		return netip.AddrPortFrom(r.ClientAddr, ClientPort)
	default:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), ClientPort)
	}
}
