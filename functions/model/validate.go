package model

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldProblem is one thing wrong with one field of a request.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists everything wrong with a value, so a user can fix it
// in one go instead of one error per round trip.
type ValidationError struct {
	Problems []FieldProblem `json:"problems"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return strings.Join(parts, "; ")
}

// problems collects field problems while checking a value.
type problems []FieldProblem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	ifaceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,31}$`)
	// Switch ports are often written with slashes: Gi1/0/1, Ethernet1/49.
	portRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,47}$`)
)

// CheckName reports whether s can name a node, group or device: 1–63
// letters, digits, '.', '_' or '-', starting with a letter or digit — the
// same characters noderange syntax accepts.
func CheckName(s string) error {
	if !nameRe.MatchString(s) {
		if s == "" {
			return fmt.Errorf("is required")
		}
		return fmt.Errorf("%q is not a valid name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return nil
}

// checkLabel accepts free text used as a label (image names may hold any
// characters) but refuses control characters and absurd lengths.
func checkLabel(p *problems, field, s string, max int) {
	if s == "" {
		return
	}
	if !utf8.ValidString(s) {
		p.add(field, "is not valid UTF-8")
		return
	}
	if len(s) > max {
		p.add(field, "is longer than %d bytes", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			p.add(field, "contains a control character")
			return
		}
	}
}

func checkTags(p *problems, field string, tags []string) {
	seen := map[string]bool{}
	for i, t := range tags {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case t == "":
			p.add(f, "is empty")
		case strings.ContainsAny(t, ", \t\n"):
			p.add(f, "%q contains a comma or white space", t)
		case len(t) > 64:
			p.add(f, "is longer than 64 bytes")
		case seen[t]:
			p.add(f, "%q is listed twice", t)
		}
		seen[t] = true
	}
}

// checkPowerSupplies checks the names of a node's or device's supplies.
func checkPowerSupplies(p *problems, names []string) {
	seen := map[string]bool{}
	for i, ps := range names {
		f := fmt.Sprintf("power_supplies[%d]", i)
		if !ifaceRe.MatchString(ps) {
			p.add(f, "%q is not a power supply name (e.g. psu1)", ps)
		} else if seen[ps] {
			p.add(f, "power supply %q is listed twice", ps)
		}
		seen[ps] = true
	}
}

// checkPowerMethod checks a default power method; empty means inherited.
func checkPowerMethod(p *problems, m PowerMethod) {
	switch m {
	case "", PowerIPMI, PowerRedfish, PowerPDU:
	default:
		p.add("power_method", "%q is not a power method (want ipmi, redfish or pdu)", m)
	}
}

// checkFingerprint checks a pinned certificate fingerprint: empty, or
// "sha256:" and 64 hex digits.
func checkFingerprint(p *problems, field, v string) {
	if v == "" {
		return
	}
	hexPart, ok := strings.CutPrefix(v, "sha256:")
	if _, err := hex.DecodeString(hexPart); !ok || err != nil || len(hexPart) != 64 {
		p.add(field, "%q is not a certificate fingerprint (want sha256: and 64 hex digits, as openssl x509 -fingerprint -sha256 prints without colons)", v)
	}
}

func checkSettings(p *problems, s Settings) {
	checkLabel(p, "image", s.Image, 256)
	checkLabel(p, "branch", s.Branch, 256)
	checkLabel(p, "disk_layout", s.DiskLayout, 256)
	checkLabel(p, "kernel", s.Kernel, 128)
	checkKernelArgs(p, s.KernelArgs)
	for name, kv := range s.Plugins {
		ps := PluginSettings{Name: name, Settings: kv}
		if v, ok := kv["enabled"]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				p.add("plugins."+name+".enabled", "%q is not true or false", v)
			}
			ps.Settings = maps.Clone(kv)
			delete(ps.Settings, "enabled")
		}
		if err := ps.Validate(); err != nil {
			p.add("plugins."+CleanText(name, 64), "%v", err)
		}
	}
	switch s.SyncVerify {
	case "", "unsure", "never", "always":
	default:
		p.add("sync_verify", "%q is not unsure, never or always", s.SyncVerify)
	}
	checkPowerMethod(p, s.PowerMethod)
}

// CheckAddress accepts an IP address, optionally with a /prefix length.
func CheckAddress(s string) error {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not an IP address with prefix length (e.g. 10.0.0.5/16)", s)
		}
		return nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	return nil
}

// checkHost accepts an IP address or a DNS host name, optionally with :port.
func checkHost(p *problems, field, s string) {
	if s == "" {
		return
	}
	host := s
	if h, port, ok := strings.Cut(s, ":"); ok && !strings.Contains(port, ":") {
		host = h
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return
	}
	for _, label := range strings.Split(host, ".") {
		if !nameRe.MatchString(label) || strings.Contains(label, "_") {
			p.add(field, "%q is not an IP address or host name", s)
			return
		}
	}
}

// Validate checks a node on its own. Whether its group exists and whether
// its MACs are free is for the store to check.
func (n *Node) Validate() error {
	var p problems
	if err := CheckName(n.Name); err != nil {
		p.add("name", "%s", err)
	}
	if n.Group != "" {
		if err := CheckName(n.Group); err != nil {
			p.add("group", "%s", err)
		}
	}
	names := map[string]bool{}
	macs := map[MAC]bool{}
	boot := 0
	for i, itf := range n.Interfaces {
		f := fmt.Sprintf("interfaces[%d]", i)
		if !ifaceRe.MatchString(itf.Name) {
			p.add(f+".name", "%q is not an interface name (1-32 letters, digits, '.', '_', ':', '@' or '-')", itf.Name)
		} else if names[itf.Name] {
			p.add(f+".name", "interface %q is listed twice", itf.Name)
		}
		names[itf.Name] = true
		if itf.MAC != "" {
			if _, err := ParseMAC(string(itf.MAC)); err != nil {
				p.add(f+".mac", "%s", err)
			} else if macs[itf.MAC] {
				p.add(f+".mac", "MAC %s is listed twice", itf.MAC)
			}
			macs[itf.MAC] = true
		}
		if itf.Address != "" {
			if err := CheckAddress(itf.Address); err != nil {
				p.add(f+".address", "%s", err)
			}
		}
		if itf.Boot {
			boot++
		}
	}
	if boot > 1 {
		p.add("interfaces", "only one interface can be the boot interface")
	}
	checkHost(&p, "bmc.address", n.BMC.Address)
	checkLabel(&p, "bmc.username", n.BMC.Username, 64)
	checkLabel(&p, "bmc.credential_ref", n.BMC.CredentialRef, 128)
	checkFingerprint(&p, "bmc.fingerprint", n.BMC.Fingerprint)
	checkPowerSupplies(&p, n.PowerSupplies)
	checkTags(&p, "tags", n.Tags)
	checkSettings(&p, n.Settings)
	switch n.State {
	case "", StateNew, StateProvisioning, StateUp, StateDown, StateError:
	default:
		p.add("state", "%q is not a node state", n.State)
	}
	return p.err()
}

// Validate checks a group on its own.
func (g *Group) Validate() error {
	var p problems
	if err := CheckName(g.Name); err != nil {
		p.add("name", "%s", err)
	}
	checkLabel(&p, "description", g.Description, 1024)
	checkTags(&p, "tags", g.Tags)
	checkSettings(&p, g.Settings)
	return p.err()
}

// Validate checks a device on its own.
func (d *Device) Validate() error {
	var p problems
	if err := CheckName(d.Name); err != nil {
		p.add("name", "%s", err)
	}
	switch d.Kind {
	case DeviceSwitch:
		if len(d.Outlets) > 0 {
			p.add("outlets", "a switch has no outlets")
		}
	case DevicePDU:
		if len(d.Ports) > 0 {
			p.add("ports", "a PDU has outlets, not ports")
		}
	case "":
		p.add("kind", "is required (switch or pdu)")
	default:
		p.add("kind", "%q is not a device kind (want switch or pdu)", d.Kind)
	}
	checkHost(&p, "address", d.Address)
	checkLabel(&p, "model", d.Model, 128)
	checkLabel(&p, "driver", d.Driver, 64)
	checkLabel(&p, "username", d.Username, 64)
	checkLabel(&p, "credential_ref", d.CredentialRef, 128)
	checkFingerprint(&p, "fingerprint", d.Fingerprint)
	for _, list := range []struct {
		field string
		names []string
	}{{"outlets", d.Outlets}, {"ports", d.Ports}} {
		seen := map[string]bool{}
		for i, o := range list.names {
			f := fmt.Sprintf("%s[%d]", list.field, i)
			if !portRe.MatchString(o) {
				p.add(f, "%q is not a valid name (1-48 letters, digits, '.', '_', ':', '@', '/' or '-')", o)
			} else if seen[o] {
				p.add(f, "%q is listed twice", o)
			}
			seen[o] = true
		}
	}
	checkDevicePower(&p, d)
	checkTags(&p, "tags", d.Tags)
	return p.err()
}

// Validate checks a connection on its own; the store checks that both ends
// exist.
func (c *Connection) Validate() error {
	var p problems
	switch c.Kind {
	case ConnNetwork, ConnPower:
	case "":
		p.add("kind", "is required (network or power)")
	default:
		p.add("kind", "%q is not a connection kind (want network or power)", c.Kind)
	}
	if err := CheckName(c.Node); err != nil {
		p.add("node", "%s", err)
	}
	if err := CheckName(c.Device); err != nil {
		p.add("device", "%s", err)
	}
	if !ifaceRe.MatchString(c.End) {
		p.add("end", "%q is not an interface or power supply name", c.End)
	}
	if !portRe.MatchString(c.Port) {
		p.add("port", "%q is not a port or outlet name", c.Port)
	}
	return p.err()
}

// MergePlugins returns over's plugin settings laid over base's, key by
// key; neither is changed.
func MergePlugins(base, over map[string]map[string]string) map[string]map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]map[string]string, len(base)+len(over))
	for _, m := range []map[string]map[string]string{base, over} {
		for name, kv := range m {
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			maps.Copy(out[name], kv)
		}
	}
	return out
}

// Resolve returns the node's settings after inheriting from its group:
// every setting the node leaves empty comes from the group.
func Resolve(n Settings, g *Group) Settings {
	if g == nil {
		return n
	}
	out := n
	if out.Image == "" {
		out.Image = g.Image
	}
	if out.Branch == "" {
		out.Branch = g.Branch
	}
	if out.DiskLayout == "" {
		out.DiskLayout = g.DiskLayout
	}
	if out.Kernel == "" {
		out.Kernel = g.Kernel
	}
	if out.KernelArgs == "" {
		out.KernelArgs = g.KernelArgs
	}
	if out.CheckEveryBoot == nil {
		out.CheckEveryBoot = g.CheckEveryBoot
	}
	if out.SyncVerify == "" {
		out.SyncVerify = g.SyncVerify
	}
	out.Plugins = MergePlugins(g.Plugins, n.Plugins)
	if out.Stateless == nil {
		out.Stateless = g.Stateless
	}
	if out.PowerMethod == "" {
		out.PowerMethod = g.PowerMethod
	}
	return out
}

// checkKernelArgs keeps kernel arguments to what both iPXE's command line
// and the kernel's take as given: printable ASCII without quotes or the
// characters iPXE expands or splits on, and none of the arguments herd
// sets itself, which a copy would silently override.
func checkKernelArgs(p *problems, s string) {
	const field = "kernel_args"
	if len(s) > 1024 {
		p.add(field, "is longer than 1024 bytes")
		return
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || strings.ContainsRune("\"'`$#|&;\\", r) {
			p.add(field, "contains %q: kernel arguments take printable ASCII without quotes, $, #, |, &, ; or \\", r)
			return
		}
	}
	for _, a := range strings.Fields(s) {
		key, _, _ := strings.Cut(a, "=")
		if strings.HasPrefix(key, "herd.") || key == "BOOTIF" || key == "initrd" {
			p.add(field, "%q is set by herd itself and cannot be given", a)
		}
	}
}
