package sim

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Firmware is what a simulated node boots with: the client architecture it
// announces in DHCP and the values iPXE gives ${buildarch} and ${platform}
// once it runs.
type Firmware struct {
	Name      string    // bios or efi
	Arch      iana.Arch // DHCP option 93
	UNDI      string    // the UNDI version in the PXE vendor class
	BuildArch string    // iPXE's ${buildarch}
	Platform  string    // iPXE's ${platform}
}

// FirmwareByName returns the firmware "bios" (a PXE ROM that loads
// undionly.kpxe) or "efi" (UEFI x86-64, which loads snponly.efi).
func FirmwareByName(name string) (Firmware, error) {
	switch name {
	case "bios":
		return Firmware{Name: name, Arch: iana.INTEL_X86PC, UNDI: "002001", BuildArch: "i386", Platform: "pcbios"}, nil
	case "efi":
		return Firmware{Name: name, Arch: iana.EFI_X86_64, UNDI: "003016", BuildArch: "x86_64", Platform: "efi"}, nil
	}
	return Firmware{}, fmt.Errorf("firmware %q: want bios or efi", name)
}

// VendorClass is DHCP option 60 as PXE firmware sends it.
func (f Firmware) VendorClass() string {
	return fmt.Sprintf("PXEClient:Arch:%05d:UNDI:%s", uint16(f.Arch), f.UNDI)
}

// Stage is which program on the node is asking for an address: the
// firmware's PXE ROM, or iPXE after it was loaded over TFTP.
type Stage int

// Stages of a node's boot that speak DHCP.
const (
	StagePXE Stage = iota
	StageIPXE
)

func (s Stage) String() string {
	if s == StageIPXE {
		return "ipxe"
	}
	return "pxe"
}

// Asker describes one DHCP conversation of one node: who asks, through
// which relay (none: broadcast), and with which transaction id.
type Asker struct {
	MAC      net.HardwareAddr
	XID      dhcpv4.TransactionID
	Relay    netip.Addr // giaddr; invalid means the client broadcasts itself
	Stage    Stage
	Firmware Firmware
	// Since is how long the client has been trying (the secs field).
	Since time.Duration
}

// requestedOptions is what PXE firmware and iPXE ask for, roughly in the
// order they do.
func requestedOptions() []dhcpv4.OptionCode {
	return []dhcpv4.OptionCode{
		dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionHostName, dhcpv4.OptionDomainName, dhcpv4.OptionRootPath,
		dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier,
		dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName,
		dhcpv4.GenericOptionCode(128), dhcpv4.GenericOptionCode(129), dhcpv4.GenericOptionCode(130),
		dhcpv4.GenericOptionCode(131), dhcpv4.GenericOptionCode(132), dhcpv4.GenericOptionCode(133),
		dhcpv4.GenericOptionCode(134), dhcpv4.GenericOptionCode(135), dhcpv4.GenericOptionCode(175),
	}
}

// UUID is the SMBIOS system UUID a node reports (option 97): derived from
// its MAC so each node keeps its own across runs.
func UUID(mac net.HardwareAddr) [16]byte {
	var u [16]byte
	copy(u[:], "herd-sim")
	copy(u[10:], mac)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// base builds the fields and options every message of a stage carries.
func (a Asker) base(t dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		TransactionID: a.XID,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  a.MAC,
		Options:       dhcpv4.Options{},
	}
	secs := a.Since / time.Second
	d.NumSeconds = uint16(min(secs, 0xffff))
	if a.Relay.IsValid() {
		d.GatewayIPAddr = net.IP(a.Relay.AsSlice())
		d.HopCount = 1
	} else {
		// A client without an address cannot take a unicast reply to an
		// address the server has just given it on a simulated link: ask
		// for broadcast.
		d.SetBroadcast()
	}
	uuid := UUID(a.MAC)
	d.UpdateOption(dhcpv4.OptMessageType(t))
	d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionMaximumDHCPMessageSize, []byte{0x05, 0xc0})) // 1472
	d.UpdateOption(dhcpv4.OptClientArch(a.Firmware.Arch))
	d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}))
	d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, uuid[:]...)))
	d.UpdateOption(dhcpv4.OptClassIdentifier(a.Firmware.VendorClass()))
	d.UpdateOption(dhcpv4.OptParameterRequestList(requestedOptions()...))
	if a.Stage == StageIPXE {
		// iPXE says who it is with a plain user class (not RFC 3004's
		// length-prefixed list), a client identifier and its feature list
		// (option 175; 0x13: HTTP).
		d.UpdateOption(dhcpv4.OptUserClass("iPXE"))
		d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, append([]byte{byte(iana.HWTypeEthernet)}, a.MAC...)))
		d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{0x13, 1, 1}))
	}
	return d
}

// Discover is the DHCPDISCOVER that opens a conversation.
func (a Asker) Discover() *dhcpv4.DHCPv4 {
	return a.base(dhcpv4.MessageTypeDiscover)
}

// Request is the DHCPREQUEST that takes an offer.
func (a Asker) Request(offer *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	d := a.base(dhcpv4.MessageTypeRequest)
	d.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	d.UpdateOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier()))
	return d
}

// Lease is what a node learned from an acknowledgement.
type Lease struct {
	Addr       netip.Addr
	Mask       net.IPMask
	Server     netip.Addr // option 54
	NextServer netip.Addr // siaddr: where TFTP is
	BootFile   string     // file field, or option 67
	LeaseTime  time.Duration
}

// replyFor checks the fields every answer to a must have.
func (a Asker) replyFor(reply *dhcpv4.DHCPv4) error {
	switch {
	case reply.OpCode != dhcpv4.OpcodeBootReply:
		return fmt.Errorf("op %s is not a BOOTREPLY", reply.OpCode)
	case reply.TransactionID != a.XID:
		return fmt.Errorf("transaction id %s, want %s", reply.TransactionID, a.XID)
	case !strings.EqualFold(reply.ClientHWAddr.String(), a.MAC.String()):
		return fmt.Errorf("chaddr %s, want %s", reply.ClientHWAddr, a.MAC)
	}
	return nil
}

// CheckOffer accepts a DHCPOFFER that answers a's DISCOVER.
func (a Asker) CheckOffer(reply *dhcpv4.DHCPv4) error {
	if err := a.replyFor(reply); err != nil {
		return stepErr(KindDHCPReply, "offer: %w", err)
	}
	if t := reply.MessageType(); t != dhcpv4.MessageTypeOffer {
		return stepErr(KindDHCPReply, "answer to DISCOVER is a %s, want OFFER", t)
	}
	if ip := reply.YourIPAddr.To4(); ip == nil || ip.IsUnspecified() {
		return stepErr(KindDHCPReply, "offer has no address (yiaddr %s)", reply.YourIPAddr)
	}
	if sid := reply.ServerIdentifier(); sid == nil || sid.To4() == nil {
		return stepErr(KindDHCPReply, "offer has no server identifier (option 54)")
	}
	return nil
}

// CheckAck accepts the DHCPACK that answers a's REQUEST for the offer and
// returns the lease.
func (a Asker) CheckAck(offer, reply *dhcpv4.DHCPv4) (Lease, error) {
	if err := a.replyFor(reply); err != nil {
		return Lease{}, stepErr(KindDHCPReply, "ack: %w", err)
	}
	switch t := reply.MessageType(); t {
	case dhcpv4.MessageTypeAck:
	case dhcpv4.MessageTypeNak:
		return Lease{}, stepErr(KindDHCPNak, "REQUEST for %s refused: %q", offer.YourIPAddr, reply.Message())
	default:
		return Lease{}, stepErr(KindDHCPReply, "answer to REQUEST is a %s, want ACK", t)
	}
	if !reply.YourIPAddr.Equal(offer.YourIPAddr) {
		return Lease{}, stepErr(KindDHCPReply, "ack for %s, but %s was offered", reply.YourIPAddr, offer.YourIPAddr)
	}
	return leaseOf(reply), nil
}

func leaseOf(d *dhcpv4.DHCPv4) Lease {
	l := Lease{
		Mask:      d.SubnetMask(),
		BootFile:  d.BootFileName,
		LeaseTime: d.IPAddressLeaseTime(0),
	}
	l.Addr, _ = netip.AddrFromSlice(d.YourIPAddr.To4())
	l.Server, _ = netip.AddrFromSlice(d.ServerIdentifier().To4())
	if ip := d.ServerIPAddr.To4(); ip != nil && !ip.IsUnspecified() {
		l.NextServer, _ = netip.AddrFromSlice(ip)
	}
	if name := d.BootFileNameOption(); name != "" {
		// Option 67 wins: servers put long URLs there when the file field
		// is too short or overloaded.
		l.BootFile = name
	}
	return l
}

// NodeXID is the transaction id of conversation n (0, 1, …) of node i in
// a run with the given seed: unique for up to 256 conversations per node
// and 2^24 nodes.
func NodeXID(seed uint32, i, n int) dhcpv4.TransactionID {
	var t dhcpv4.TransactionID
	binary.BigEndian.PutUint32(t[:], seed&^0xff+uint32(i)<<8+uint32(n&0xff))
	return t
}
