package cli

import (
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

// listFlag collects a flag given several times; each value may also hold
// a comma-separated list (--tag a --tag b,c).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// optBool is a boolean flag that remembers whether it was given, so
// --stateless=false can be told apart from no flag at all.
type optBool struct{ v *bool }

func (b *optBool) String() string {
	if b == nil || b.v == nil {
		return ""
	}
	return strconv.FormatBool(*b.v)
}

func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	b.v = &v
	return nil
}

func (b *optBool) IsBoolFlag() bool { return true }

// given returns the names of the flags set on the command line.
func given(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// settingsFlags are the settings a node inherits from its group; node and
// group commands share them.
type settingsFlags struct {
	image, branch, layout, power, kernel, kernelArgs, verify string
	stateless, checkEveryBoot                                optBool
	plugins                                                  listFlag
}

func (s *settingsFlags) declare(fs *flag.FlagSet) {
	fs.StringVar(&s.image, "image", "", "image `NAME` to boot")
	fs.StringVar(&s.branch, "branch", "", "image `BRANCH` (default the image's live branch)")
	fs.StringVar(&s.layout, "layout", "", "disk `LAYOUT` name")
	fs.StringVar(&s.kernel, "kernel", "", "kernel `VERSION` of the image to boot (default its newest)")
	fs.StringVar(&s.kernelArgs, "kernel-args", "", "more kernel `ARGUMENTS` for the provisioner's boot and the disk's fallback entry, such as 'console=ttyS0,115200'")
	fs.Var(&s.checkEveryBoot, "check-every-boot", "compare the root with the image on every boot (--check-every-boot=false skips it while the root holds its version)")
	fs.StringVar(&s.verify, "sync-verify", "", "when bootenv hashes content: `POLICY` unsure, never or always")
	fs.Var(&s.plugins, "plugin", "plugin setting `NAME.KEY=VALUE` over the cluster's (repeatable; empty VALUE removes it; KEY enabled turns the plugin on or off)")
	fs.Var(&s.stateless, "stateless", "run from RAM instead of installing to disk (--stateless=false to install)")
	fs.StringVar(&s.power, "power", "", "power `METHOD`: ipmi, redfish or pdu")
}

// pluginSettings parses --plugin NAME.KEY=VALUE values; an empty VALUE is
// kept as "" (a removal in a patch).
func (s *settingsFlags) pluginSettings(cmd string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, v := range s.plugins {
		nk, val, ok := strings.Cut(v, "=")
		name, key, ok2 := strings.Cut(nk, ".")
		if !ok || !ok2 || name == "" || key == "" {
			return nil, usagef(cmd, "--plugin %q: want NAME.KEY=VALUE, such as limits.nofile=65536", v)
		}
		if out[name] == nil {
			out[name] = map[string]string{}
		}
		out[name][key] = val
	}
	return out, nil
}

// check validates the values given.
func (s *settingsFlags) check(cmd string) error {
	if _, err := s.pluginSettings(cmd); err != nil {
		return err
	}
	switch model.PowerMethod(s.power) {
	case "", model.PowerIPMI, model.PowerRedfish, model.PowerPDU:
		return nil
	}
	return usagef(cmd, "--power %q is not a power method (want ipmi, redfish or pdu)", s.power)
}

// apply sets the given settings on a new object.
func (s *settingsFlags) apply(to *model.Settings) {
	to.Image, to.Branch, to.DiskLayout, to.Kernel, to.KernelArgs = s.image, s.branch, s.layout, s.kernel, s.kernelArgs
	to.PowerMethod = model.PowerMethod(s.power)
	to.Stateless = s.stateless.v
	to.CheckEveryBoot, to.SyncVerify = s.checkEveryBoot.v, s.verify
	if ps, _ := s.pluginSettings(""); len(ps) > 0 {
		to.Plugins = ps
	}
}

// patch adds the given settings to a merge patch; an empty value deletes
// the setting, so the object inherits it again.
func (s *settingsFlags) patch(p map[string]any, set map[string]bool) {
	for flagName, field := range settingsFields() {
		if !set[flagName] {
			continue
		}
		switch flagName {
		case "image":
			p[field] = orNil(s.image)
		case "branch":
			p[field] = orNil(s.branch)
		case "layout":
			p[field] = orNil(s.layout)
		case "kernel":
			p[field] = orNil(s.kernel)
		case "kernel-args":
			p[field] = orNil(s.kernelArgs)
		case "power":
			p[field] = orNil(s.power)
		case "stateless":
			p[field] = *s.stateless.v
		case "check-every-boot":
			p[field] = *s.checkEveryBoot.v
		case "sync-verify":
			p[field] = orNil(s.verify)
		case "plugin":
			ps, _ := s.pluginSettings("")
			patch := map[string]any{}
			for name, kv := range ps {
				m := map[string]any{}
				for k, v := range kv {
					m[k] = orNil(v)
				}
				patch[name] = m
			}
			p[field] = patch
		}
	}
}

// settingsFields maps each settings flag to its JSON field.
func settingsFields() map[string]string {
	return map[string]string{"image": "image", "branch": "branch", "layout": "disk_layout", "stateless": "stateless", "power": "power_method", "kernel": "kernel",
		"kernel-args": "kernel_args", "check-every-boot": "check_every_boot", "sync-verify": "sync_verify", "plugin": "plugins"}
}

// orNil turns an empty string into a merge-patch deletion.
func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// unsetFields checks --unset names against those a command knows and
// returns them; a field both set and unset is an error.
func unsetFields(cmd string, unset []string, known map[string]string, set map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	for _, u := range unset {
		if _, ok := known[u]; !ok {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			slices.Sort(names)
			return nil, usagef(cmd, "--unset %s: unknown field (want one of %s)", u, strings.Join(names, ", "))
		}
		if set[u] {
			return nil, usagef(cmd, "--%s and --unset %s contradict each other", u, u)
		}
		out[u] = true
	}
	return out, nil
}

// editTags applies --tag and --untag to a list of tags, keeping its order.
func editTags(cur, add, remove []string) []string {
	out := slices.DeleteFunc(slices.Clone(cur), func(t string) bool { return slices.Contains(remove, t) })
	for _, t := range add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// tagsValue is a tag list for a merge patch: none deletes the field.
func tagsValue(tags []string) any {
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// addressSequence returns n addresses starting at first, counting up in the
// last octet (the last byte for IPv6), with first's /prefix if it has one.
// It refuses a sequence that would run past the octet or out of the prefix.
func addressSequence(first string, n int) ([]string, error) {
	var (
		addr   netip.Addr
		prefix netip.Prefix
		err    error
	)
	if strings.Contains(first, "/") {
		if prefix, err = netip.ParsePrefix(first); err != nil {
			return nil, fmt.Errorf("%q is not an IP address with prefix length (e.g. 10.0.0.5/16)", first)
		}
		addr = prefix.Addr()
	} else if addr, err = netip.ParseAddr(first); err != nil {
		return nil, fmt.Errorf("%q is not an IP address", first)
	}
	b := addr.AsSlice()
	last := int(b[len(b)-1])
	if end := last + n - 1; end > 255 {
		return nil, fmt.Errorf("%d addresses from %s run past the last octet (%d > 255); split the range", n, addr, end)
	}
	out := make([]string, n)
	for i := range n {
		b[len(b)-1] = byte(last + i)
		a, _ := netip.AddrFromSlice(b)
		a = a.WithZone(addr.Zone())
		if prefix.IsValid() {
			if !prefix.Masked().Contains(a) {
				return nil, fmt.Errorf("%d addresses from %s leave %s at %s", n, addr, prefix.Masked(), a)
			}
			out[i] = netip.PrefixFrom(a, prefix.Bits()).String()
		} else {
			out[i] = a.String()
		}
	}
	return out, nil
}

// expandNames reads a list of port or outlet names: a noderange such as
// A[1-24] or 1,2,3, or, for names noderanges cannot spell (ge-0:1), a plain
// comma-separated list.
func expandNames(v string) ([]string, error) {
	names, err := noderange.Expand(v, func(string) ([]string, error) {
		return nil, fmt.Errorf("@ names a node group, not a port")
	})
	if err == nil {
		return names, nil
	}
	if strings.ContainsAny(v, "[]") {
		return nil, err
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
