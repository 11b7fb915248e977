package plugins

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Interfaces configures the node's network interfaces (plan.Interfaces):
// a static address where herd has one, DHCP where it has none. An image
// with systemd-networkd gets one /etc/systemd/network/10-herd-<name>.network
// per interface (matched by MAC when herd knows it, so kernel naming does
// not matter) and the service enabled; other images get
// /etc/network/interfaces for ifupdown, which names interfaces as herd does.
//
// Settings: gateway (IPv4 or IPv6 address, on the boot interface), dns
// (comma-separated servers), domains (search domains), prefix (length for
// addresses written without one; default 24).
type Interfaces struct{}

// Name is "interfaces".
func (Interfaces) Name() string { return "interfaces" }

// NetConfig is one interface as the plugin writes it.
type NetConfig struct {
	Name    string
	MAC     string
	Address string // with /prefix; empty for DHCP
	Gateway string
	DNS     []string
	Domains []string
}

// NetConfigs decides each interface's configuration from the plan and
// settings.
func NetConfigs(ifs []model.Interface, settings map[string]string) ([]NetConfig, error) {
	prefix := 24
	if s := settings["prefix"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 128 {
			return nil, fmt.Errorf("interfaces: prefix %q is not a prefix length", s)
		}
		prefix = n
	}
	gw := strings.TrimSpace(settings["gateway"])
	if gw != "" {
		if _, err := netip.ParseAddr(gw); err != nil {
			return nil, fmt.Errorf("interfaces: gateway %q: %w", gw, err)
		}
	}
	dns := splitList(settings["dns"])
	for _, d := range dns {
		if _, err := netip.ParseAddr(d); err != nil {
			return nil, fmt.Errorf("interfaces: dns server %q: %w", d, err)
		}
	}
	domains := splitList(settings["domains"])
	bootSeen := false
	var out []NetConfig
	for _, i := range ifs {
		c := NetConfig{Name: i.Name, MAC: strings.ToLower(string(i.MAC)), DNS: dns, Domains: domains}
		if i.Address != "" {
			p, err := netip.ParsePrefix(i.Address)
			if err != nil {
				a, aerr := netip.ParseAddr(i.Address)
				if aerr != nil {
					return nil, fmt.Errorf("interfaces: address %q of %s: %w", i.Address, i.Name, aerr)
				}
				bits := prefix
				if a.Is4() && bits > 32 {
					bits = 32
				}
				p = netip.PrefixFrom(a, bits)
			}
			c.Address = p.String()
		}
		if i.Boot && !bootSeen && c.Address != "" {
			c.Gateway = gw
			bootSeen = true
		}
		out = append(out, c)
	}
	return out, nil
}

// NetworkdUnit renders a systemd-networkd .network file.
func NetworkdUnit(c NetConfig) string {
	var b strings.Builder
	b.WriteString("# Written by herd on every boot (plugin interfaces).\n[Match]\n")
	if c.MAC != "" {
		fmt.Fprintf(&b, "MACAddress=%s\n", c.MAC)
	} else {
		fmt.Fprintf(&b, "Name=%s\n", c.Name)
	}
	b.WriteString("\n[Network]\n")
	if c.Address == "" {
		b.WriteString("DHCP=yes\n")
	} else {
		fmt.Fprintf(&b, "Address=%s\n", c.Address)
		if c.Gateway != "" {
			fmt.Fprintf(&b, "Gateway=%s\n", c.Gateway)
		}
	}
	for _, d := range c.DNS {
		fmt.Fprintf(&b, "DNS=%s\n", d)
	}
	if len(c.Domains) > 0 {
		fmt.Fprintf(&b, "Domains=%s\n", strings.Join(c.Domains, " "))
	}
	return b.String()
}

// IfupdownFile renders /etc/network/interfaces for all interfaces.
func IfupdownFile(cs []NetConfig) string {
	var b strings.Builder
	b.WriteString("# Written by herd on every boot (plugin interfaces).\n")
	b.WriteString("source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "\nauto %s\n", c.Name)
		if c.Address == "" {
			fmt.Fprintf(&b, "iface %s inet dhcp\n", c.Name)
			continue
		}
		family := "inet"
		if p, err := netip.ParsePrefix(c.Address); err == nil && p.Addr().Is6() {
			family = "inet6"
		}
		fmt.Fprintf(&b, "iface %s %s static\n\taddress %s\n", c.Name, family, c.Address)
		if c.Gateway != "" {
			fmt.Fprintf(&b, "\tgateway %s\n", c.Gateway)
		}
		if len(c.DNS) > 0 {
			fmt.Fprintf(&b, "\tdns-nameservers %s\n", strings.Join(c.DNS, " "))
		}
		if len(c.Domains) > 0 {
			fmt.Fprintf(&b, "\tdns-search %s\n", strings.Join(c.Domains, " "))
		}
	}
	return b.String()
}

// Apply writes the interface configuration.
func (Interfaces) Apply(ctx context.Context, root string, plan model.NodePlan, settings map[string]string) ([]string, error) {
	cs, err := NetConfigs(plan.Interfaces, settings)
	if err != nil {
		return nil, err
	}
	r := NewRoot(root)
	networkd := false
	for _, p := range []string{"/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd"} {
		networkd = networkd || r.Exists(p)
	}
	if !networkd {
		if _, err := r.WriteFile("/etc/network/interfaces", []byte(IfupdownFile(cs)), 0o644); err != nil {
			return nil, err
		}
		return r.Changed(), nil
	}
	for _, c := range cs {
		if _, err := r.WriteFile("/etc/systemd/network/10-herd-"+c.Name+".network", []byte(NetworkdUnit(c)), 0o644); err != nil {
			return nil, err
		}
	}
	if err := enableUnits(r, []string{"systemd-networkd.service"}); err != nil {
		return nil, err
	}
	return r.Changed(), nil
}
