package dhcp

import (
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Packet builds the DHCP packet of rep, answering req.
func (rep *Reply) Packet(req *Request) *dhcpv4.DHCPv4 {
	p := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        iana.HWTypeEthernet,
		TransactionID: req.XID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  net.HardwareAddr(req.MAC[:]),
		Options:       make(dhcpv4.Options, 16),
	}
	if req.RelayAddr.IsValid() {
		p.GatewayIPAddr = net.IP(req.RelayAddr.AsSlice())
		if rep.Type == dhcpv4.MessageTypeNak {
			// RFC 2131 4.3.2: the relay broadcasts a NAK to the client.
			p.Flags |= 0x8000
		}
	}
	o := p.Options
	set := func(code dhcpv4.OptionCode, v []byte) { o[code.Code()] = v }
	set(dhcpv4.OptionDHCPMessageType, []byte{byte(rep.Type)})
	set(dhcpv4.OptionServerIdentifier, rep.Server.AsSlice())
	if len(req.ClientID) > 0 {
		set(dhcpv4.OptionClientIdentifier, req.ClientID)
	}
	if len(req.RelayInfo) > 0 {
		set(dhcpv4.OptionRelayAgentInformation, req.RelayInfo)
	}
	if rep.Type == dhcpv4.MessageTypeNak {
		if rep.Message != "" {
			set(dhcpv4.OptionMessage, []byte(rep.Message))
		}
		return p
	}
	if req.Type == dhcpv4.MessageTypeInform || req.ViaPXEPort {
		p.ClientIPAddr = net.IP(req.ClientAddr.AsSlice())
	}
	if rep.Addr.IsValid() {
		p.YourIPAddr = net.IP(rep.Addr.AsSlice())
	}
	if rep.Bits > 0 {
		set(dhcpv4.OptionSubnetMask, net.CIDRMask(rep.Bits, 32))
	}
	if rep.Router.IsValid() {
		set(dhcpv4.OptionRouter, rep.Router.AsSlice())
	}
	if len(rep.DNS) > 0 {
		dns := make([]byte, 0, 4*len(rep.DNS))
		for _, a := range rep.DNS {
			dns = append(dns, a.AsSlice()...)
		}
		set(dhcpv4.OptionDomainNameServer, dns)
	}
	if rep.Domain != "" {
		set(dhcpv4.OptionDomainName, []byte(rep.Domain))
	}
	if rep.Hostname != "" {
		set(dhcpv4.OptionHostName, []byte(rep.Hostname))
	}
	if rep.Lease > 0 {
		set(dhcpv4.OptionIPAddressLeaseTime, seconds(rep.Lease))
		set(dhcpv4.OptionRenewTimeValue, seconds(rep.Lease/2))
		set(dhcpv4.OptionRebindingTimeValue, seconds(rep.Lease*7/8))
	}
	if rep.NextServer.IsValid() {
		p.ServerIPAddr = net.IP(rep.NextServer.AsSlice())
		set(dhcpv4.OptionTFTPServerName, []byte(rep.NextServer.String()))
	}
	if rep.BootFile != "" {
		set(dhcpv4.OptionBootfileName, []byte(rep.BootFile))
		if len(rep.BootFile) < 128 {
			p.BootFileName = rep.BootFile
		}
	}
	if rep.PXE {
		set(dhcpv4.OptionClassIdentifier, []byte("PXEClient"))
		if len(req.UUID) > 0 {
			set(dhcpv4.OptionClientMachineIdentifier, req.UUID)
		}
	}
	if rep.DiscoveryControl {
		// PXE_DISCOVERY_CONTROL (sub-option 6) = 8: boot the file named in
		// this packet, with no boot-server discovery or menu (PXE 2.1).
		set(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 255})
	}
	return p
}

// Marshal is the packet of rep, answering req, as bytes for the wire.
func (rep *Reply) Marshal(req *Request) []byte { return rep.Packet(req).ToBytes() }

func seconds(d time.Duration) []byte {
	s := uint64(d / time.Second)
	if s > 0xffffffff {
		s = 0xffffffff
	}
	return []byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}
