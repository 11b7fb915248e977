package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// MAC is an Ethernet hardware address, usable as a map key.
type MAC [6]byte

// ParseMAC reads an EUI-48 address in any spelling net.ParseMAC accepts.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("%q is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)", s)
	}
	return MAC(hw), nil
}

// String is the canonical form: lower-case hex pairs joined by colons.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Arch is a client system architecture from option 93 (RFC 4578).
type Arch uint16

// Architectures the edge has a boot file for.
const (
	ArchBIOS      Arch = Arch(iana.INTEL_X86PC)
	ArchEFIX64    Arch = Arch(iana.EFI_X86_64)
	ArchEFIBC     Arch = Arch(iana.EFI_BC) // what most x86-64 UEFI firmware sends
	ArchEFIARM32  Arch = Arch(iana.EFI_ARM32)
	ArchEFIARM64  Arch = Arch(iana.EFI_ARM64)
	ArchMalformed Arch = 0xffff // option 93 present but unreadable
)

// Ports of DHCP and of the PXE boot server (proxyDHCP's second port).
const (
	ServerPort = dhcpv4.ServerPort // 67
	ClientPort = dhcpv4.ClientPort // 68
	PXEPort    = 4011
)

// Request is what the decision needs from one client packet, and what a
// reply must echo. Addresses that are 0.0.0.0 on the wire are left invalid
// (the zero netip.Addr).
type Request struct {
	Type  dhcpv4.MessageType
	XID   dhcpv4.TransactionID
	Flags uint16
	MAC   MAC

	ClientAddr    netip.Addr // ciaddr
	RelayAddr     netip.Addr // giaddr: set when a relay agent forwarded the packet
	RequestedAddr netip.Addr // option 50
	ServerID      netip.Addr // option 54: the server the client chose

	Arch        Arch // option 93, first entry
	HasArch     bool
	VendorClass string // option 60, e.g. "PXEClient:Arch:00007:UNDI:003016"
	IPXE        bool   // option 77 (user class) says "iPXE"

	// Echoed in replies: client identifier (61, RFC 6842), relay agent
	// information (82, RFC 3046) and client machine UUID (97, PXE).
	ClientID  []byte
	RelayInfo []byte
	UUID      []byte

	// Peer is where the packet came from; ViaPXEPort is set when it
	// reached the proxyDHCP boot-server port (4011) rather than 67.
	Peer       netip.AddrPort
	ViaPXEPort bool
}

// PXE reports whether the client is PXE firmware (or iPXE, which says so
// too): option 60 starts with "PXEClient".
func (r *Request) PXE() bool { return strings.HasPrefix(r.VendorClass, "PXEClient") }

// Broadcast reports whether the client asked for broadcast replies.
func (r *Request) Broadcast() bool { return r.Flags&0x8000 != 0 }

// ErrMalformed is wrapped by every error ParseRequest returns: the packet is
// not a DHCP request the edge can answer.
var ErrMalformed = errors.New("malformed DHCP request")

// ParseRequest reads one packet received from peer. Anything that is not a
// well-formed DHCPv4 request from an Ethernet client is refused with an
// error wrapping ErrMalformed.
func ParseRequest(b []byte, peer netip.AddrPort, viaPXEPort bool) (*Request, error) {
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, fmt.Errorf("%w: op %d is not a BOOTREQUEST", ErrMalformed, p.OpCode)
	}
	if p.HWType != iana.HWTypeEthernet || len(p.ClientHWAddr) != 6 {
		return nil, fmt.Errorf("%w: hardware type %d with a %d-byte address is not Ethernet", ErrMalformed, p.HWType, len(p.ClientHWAddr))
	}
	r := &Request{
		Type:        p.MessageType(),
		XID:         p.TransactionID,
		Flags:       p.Flags,
		MAC:         MAC(p.ClientHWAddr),
		ClientAddr:  addr4(p.ClientIPAddr),
		RelayAddr:   addr4(p.GatewayIPAddr),
		VendorClass: string(p.Options.Get(dhcpv4.OptionClassIdentifier)),
		ClientID:    p.Options.Get(dhcpv4.OptionClientIdentifier),
		RelayInfo:   p.Options.Get(dhcpv4.OptionRelayAgentInformation),
		UUID:        p.Options.Get(dhcpv4.OptionClientMachineIdentifier),
		Peer:        peer,
		ViaPXEPort:  viaPXEPort,
	}
	if r.Type == dhcpv4.MessageTypeNone {
		return nil, fmt.Errorf("%w: no DHCP message type (plain BOOTP is not served)", ErrMalformed)
	}
	if v := p.Options.Get(dhcpv4.OptionRequestedIPAddress); len(v) == 4 {
		r.RequestedAddr = addr4(v)
	}
	if v := p.Options.Get(dhcpv4.OptionServerIdentifier); len(v) == 4 {
		r.ServerID = addr4(v)
	}
	if v := p.Options.Get(dhcpv4.OptionClientSystemArchitectureType); v != nil {
		r.HasArch = true
		if len(v) >= 2 && len(v)%2 == 0 {
			r.Arch = Arch(uint16(v[0])<<8 | uint16(v[1]))
		} else {
			r.Arch = ArchMalformed
		}
	}
	r.IPXE = isIPXE(p.Options.Get(dhcpv4.OptionUserClassInformation))
	return r, nil
}

// isIPXE reads option 77. iPXE sends the bare string "iPXE"; RFC 3004
// clients send length-prefixed class names, one of which may be "iPXE".
func isIPXE(v []byte) bool {
	if string(v) == "iPXE" {
		return true
	}
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 || 1+n > len(v) {
			return false
		}
		if string(v[1:1+n]) == "iPXE" {
			return true
		}
		v = v[1+n:]
	}
	return false
}

// addr4 turns a 4-byte (or 16-byte mapped) IP into a netip.Addr; 0.0.0.0
// and anything else unusable give the zero Addr.
func addr4(ip []byte) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
