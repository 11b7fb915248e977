// Package sim plays a rack of network-booting nodes against a running herd
// edge, or any DHCP/TFTP server, through the real protocols: DHCP DORA as a
// relay agent (many MACs from one socket, no raw sockets) or by broadcast on
// an interface, TFTP of the iPXE binary at iPXE's block size, the iPXE
// DORA, the chain and boot scripts over HTTP, the artifacts the script
// names and a few boot events. It is herd-sim's engine and the load
// generator of the boot-storm benchmark.
//
// Decisions are pure and tested alone: packets are built and checked in
// dhcp.go, scripts parsed in script.go, figures summed in stats.go; the
// sockets live in transport.go and tftp.go, and one node's boot is the
// sequence in boot.go.
package sim

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Node is one simulated machine: its name when registered, its boot MAC
// and the address reserved for it.
type Node struct {
	Index int
	Name  string
	MAC   net.HardwareAddr
	Addr  netip.Addr // the reserved address; invalid when the rack has none
}

// Rack describes how the simulated nodes are numbered.
type Rack struct {
	// Nodes is how many nodes there are.
	Nodes int
	// MACPrefix is the first three bytes of every MAC; the last three
	// count the nodes from 1. The default 02:68:64 is a locally
	// administered prefix, so no real NIC has it.
	MACPrefix [3]byte
	// NamePrefix and NameDigits make node names: sim0001, sim0002, …
	NamePrefix string
	NameDigits int
	// FirstAddr is the address of the first node; the others follow. It
	// must leave room for Nodes addresses inside Subnet. Zero: no
	// addresses.
	FirstAddr netip.Addr
	Subnet    netip.Prefix
}

// DefaultMACPrefix is the MAC prefix nodes get unless told otherwise.
func DefaultMACPrefix() [3]byte { return [3]byte{0x02, 0x68, 0x64} }

// ParseMACPrefix reads a three-byte prefix such as "02:68:64".
func ParseMACPrefix(s string) ([3]byte, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":") + ":00:00:00")
	if err != nil || len(hw) != 6 {
		return [3]byte{}, fmt.Errorf("MAC prefix %q: want three hex pairs such as 02:68:64", s)
	}
	return [3]byte{hw[0], hw[1], hw[2]}, nil
}

// Check reports a rack that cannot be numbered.
func (r Rack) Check() error {
	switch {
	case r.Nodes < 1:
		return fmt.Errorf("rack of %d nodes: want at least one", r.Nodes)
	case r.Nodes > 1<<24-2:
		return fmt.Errorf("rack of %d nodes: a MAC prefix leaves room for %d", r.Nodes, 1<<24-2)
	case r.MACPrefix[0]&1 != 0:
		return fmt.Errorf("MAC prefix %02x:%02x:%02x is a multicast address", r.MACPrefix[0], r.MACPrefix[1], r.MACPrefix[2])
	}
	if !r.FirstAddr.IsValid() {
		return nil
	}
	if !r.FirstAddr.Is4() {
		return fmt.Errorf("first address %s: want IPv4", r.FirstAddr)
	}
	if !r.Subnet.IsValid() || !r.Subnet.Contains(r.FirstAddr) {
		return fmt.Errorf("first address %s is not inside subnet %s", r.FirstAddr, r.Subnet)
	}
	last := addrAdd(r.FirstAddr, r.Nodes-1)
	if !r.Subnet.Contains(last) || last == broadcastAddr(r.Subnet) {
		return fmt.Errorf("%d addresses from %s do not fit in subnet %s", r.Nodes, r.FirstAddr, r.Subnet)
	}
	return nil
}

// Node returns node i, counted from 0.
func (r Rack) Node(i int) Node {
	n := uint32(i + 1)
	mac := net.HardwareAddr{r.MACPrefix[0], r.MACPrefix[1], r.MACPrefix[2], byte(n >> 16), byte(n >> 8), byte(n)}
	digits := r.NameDigits
	if digits == 0 {
		digits = len(fmt.Sprint(r.Nodes))
	}
	node := Node{Index: i, Name: fmt.Sprintf("%s%0*d", r.NamePrefix, digits, i+1), MAC: mac}
	if r.FirstAddr.IsValid() {
		node.Addr = addrAdd(r.FirstAddr, i)
	}
	return node
}

// Index returns the node a MAC belongs to, if it is one of the rack's.
func (r Rack) Index(mac net.HardwareAddr) (int, bool) {
	if len(mac) != 6 || mac[0] != r.MACPrefix[0] || mac[1] != r.MACPrefix[1] || mac[2] != r.MACPrefix[2] {
		return 0, false
	}
	n := int(mac[3])<<16 | int(mac[4])<<8 | int(mac[5])
	if n < 1 || n > r.Nodes {
		return 0, false
	}
	return n - 1, true
}

// Model is the node as herd's API takes it: one boot interface with the
// MAC and, when the rack has addresses, the reserved address.
func (n Node) Model(reg Registration) model.Node {
	iface := model.Interface{Name: "eth0", MAC: model.MAC(n.MAC.String()), Boot: true}
	if n.Addr.IsValid() {
		iface.Address = n.Addr.String()
	}
	m := model.Node{Name: n.Name, Group: reg.Group, Interfaces: []model.Interface{iface}}
	m.Image = reg.Image
	return m
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(n)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func broadcastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
