// Package netup brings up bootenv's network: it picks the boot NIC, asks
// DHCP for an address (insomniacslk/dhcp client4, raw sockets, so nothing
// needs an address first), configures the interface and the default route
// through the kernel's own interfaces (an ioctl to raise the link, rtnetlink
// for the address and route, through golang.org/x/sys/unix) and writes
// /etc/resolv.conf. No `ip` or `udhcpc` binary is needed in the initramfs.
//
// Deciding is pure (ChooseLink, BootMAC, ConfigFromLease, ResolvConf);
// Up carries the decision out.
package netup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Link is a network interface as found.
type Link struct {
	Name     string
	Index    int
	MAC      net.HardwareAddr
	Loopback bool
	Carrier  bool // the cable is in (after the link was raised)
}

// ErrNoLink is returned when no interface can be the boot NIC.
var ErrNoLink = errors.New("no network interface to boot from")

// BootMAC returns the boot NIC's MAC named on the kernel command line:
// herd.mac=aa:bb:… or pxelinux's BOOTIF=01-aa-bb-… (the 01 is the ARP
// hardware type, Ethernet). nil when neither is there.
func BootMAC(args map[string]string) (net.HardwareAddr, error) {
	if s := args["herd.mac"]; s != "" {
		mac, err := net.ParseMAC(s)
		if err != nil {
			return nil, fmt.Errorf("herd.mac=%s: %w", s, err)
		}
		return mac, nil
	}
	if s := args["BOOTIF"]; s != "" {
		hw, ok := strings.CutPrefix(strings.ToLower(s), "01-")
		mac, err := net.ParseMAC(strings.ReplaceAll(hw, "-", ":"))
		if !ok || err != nil {
			return nil, fmt.Errorf("BOOTIF=%s is not 01-xx-xx-xx-xx-xx-xx", s)
		}
		return mac, nil
	}
	return nil, nil
}

// ChooseLink picks the boot NIC: the one with MAC want when it is given,
// else the first Ethernet interface (by name) that has a carrier.
func ChooseLink(links []Link, want net.HardwareAddr) (Link, error) {
	if want != nil {
		for _, l := range links {
			if slices.Equal(l.MAC, want) {
				return l, nil
			}
		}
		return Link{}, fmt.Errorf("%w: none has MAC %s", ErrNoLink, want)
	}
	sorted := slices.Clone(links)
	slices.SortFunc(sorted, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range sorted {
		if !l.Loopback && len(l.MAC) == 6 && l.Carrier {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("%w: no Ethernet interface has a link", ErrNoLink)
}

// Config is the address configuration a lease gives.
type Config struct {
	Interface string
	Address   netip.Prefix
	Gateway   netip.Addr // invalid when the lease names no router
	DNS       []netip.Addr
	Domain    string
	Search    []string
	Hostname  string
	Server    netip.Addr // the DHCP server
	Lease     time.Duration
}

// ConfigFromLease reads the configuration out of a DHCP acknowledgement.
func ConfigFromLease(iface string, ack *dhcpv4.DHCPv4) (Config, error) {
	c := Config{Interface: iface, Hostname: ack.HostName(), Domain: ack.DomainName(), Lease: ack.IPAddressLeaseTime(0)}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return c, fmt.Errorf("DHCP answer for %s gives no address", iface)
	}
	bits := 24 // a server that sends no mask most likely means a /24
	if m := ack.SubnetMask(); m != nil {
		ones, size := m.Size()
		if size != 32 {
			return c, fmt.Errorf("DHCP answer for %s: subnet mask %s is not contiguous", iface, m)
		}
		bits = ones
	}
	c.Address = netip.PrefixFrom(ip, bits)
	for _, r := range ack.Router() {
		if a, ok := netip.AddrFromSlice(r.To4()); ok && !a.IsUnspecified() {
			c.Gateway = a
			break
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok && !a.IsUnspecified() {
			c.DNS = append(c.DNS, a)
		}
	}
	if l := ack.DomainSearch(); l != nil {
		c.Search = l.Labels
	}
	if s, ok := netip.AddrFromSlice(ack.ServerIdentifier().To4()); ok {
		c.Server = s
	}
	return c, nil
}

// ResolvConf renders /etc/resolv.conf for c.
func ResolvConf(c Config) string {
	var b strings.Builder
	b.WriteString("# bootenv: from the DHCP lease of " + c.Interface + "\n")
	search := c.Search
	if len(search) == 0 && c.Domain != "" {
		search = []string{c.Domain}
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, d := range c.DNS {
		b.WriteString("nameserver " + d.String() + "\n")
	}
	return b.String()
}

// String prints the configuration for the console.
func (c Config) String() string {
	s := fmt.Sprintf("%s %s", c.Interface, c.Address)
	if c.Gateway.IsValid() {
		s += " via " + c.Gateway.String()
	}
	if len(c.DNS) > 0 {
		var ds []string
		for _, d := range c.DNS {
			ds = append(ds, d.String())
		}
		s += " dns " + strings.Join(ds, ",")
	}
	if c.Server.IsValid() {
		s += fmt.Sprintf(" (lease %s from %s)", c.Lease, c.Server)
	}
	return s
}
