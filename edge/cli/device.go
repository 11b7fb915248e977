package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

func (a *app) deviceCommand() *command {
	return &command{
		name: "device", summary: "manage switches and PDUs",
		help: `Manages the switches and PDUs nodes are cabled to. A PDU lists its
outlets; a switch may list its ports (none listed accepts any port name).
--outlets and --ports take a list (A1,A2) or a range (A[1-24]).`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list devices",
				flags: func(fs *flag.FlagSet) action {
					kind := fs.String("kind", "", "only devices of `KIND` (switch or pdu)")
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.deviceList(ctx, *kind, *asJSON) }
				},
			},
			{
				name: "show", aliases: []string{"get"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "show a device and what is connected to it",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.deviceShow(ctx, args[0], *asJSON) }
				},
			},
			{
				name: "add", args: "NAME", minArgs: 1, maxArgs: 1, summary: "add a switch or PDU",
				flags: func(fs *flag.FlagSet) action {
					f := &deviceFlags{}
					f.declare(fs, false)
					return func(ctx context.Context, args []string) error { return a.deviceAdd(ctx, args[0], f) }
				},
			},
			{
				name: "set", args: "NAME", minArgs: 1, maxArgs: 1, summary: "change a device",
				flags: func(fs *flag.FlagSet) action {
					f := &deviceFlags{}
					f.declare(fs, true)
					return func(ctx context.Context, args []string) error { return a.deviceSet(ctx, args[0], f, given(fs)) }
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "delete a device nothing is connected to",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteDevice(ctx, args[0], 0); err != nil {
							return notFoundOr(err, "device delete", "device", args[0], "delete device "+args[0])
						}
						fmt.Fprintf(a.stdout, "deleted device %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

// deviceFlags are the flags of device add and device set.
type deviceFlags struct {
	kind, address, model, driver, username, secret, pin, outlets, ports, psu, power string
	tags, untags, unset                                                             listFlag
}

func (f *deviceFlags) declare(fs *flag.FlagSet, set bool) {
	if !set {
		fs.StringVar(&f.kind, "kind", "", "`KIND` of device: switch or pdu (required)")
	}
	fs.StringVar(&f.address, "address", "", "management `ADDR`ess (IP or host name, optionally :port)")
	fs.StringVar(&f.model, "model", "", "hardware `MODEL`")
	fs.StringVar(&f.driver, "driver", "", "PDU `DRIVER`, e.g. eaton-g4")
	fs.StringVar(&f.username, "username", "", "`USER` name to log in to the device")
	fs.StringVar(&f.pin, "fingerprint", "", "`SHA256` fingerprint (sha256:<hex>) of the device's self-signed HTTPS certificate, to pin it")
	fs.StringVar(&f.secret, "secret", "", "`NAME` of the stored secret holding the device's password (herd secret set NAME)")
	fs.StringVar(&f.outlets, "outlets", "", "PDU outlet `NAMES`: A1,A2 or A[1-24]")
	fs.StringVar(&f.ports, "ports", "", "switch port `NAMES`: 1,2 or swp[1-48]")
	fs.StringVar(&f.psu, "psu", "", "the device's own power supply `NAMES`, comma-separated (psu1,psu2)")
	fs.StringVar(&f.power, "power", "", "power `METHOD` of the device: ipmi, redfish or pdu")
	fs.Var(&f.tags, "tag", "add `TAG` (repeatable, or comma-separated)")
	if set {
		fs.Var(&f.untags, "untag", "remove `TAG` (repeatable, or comma-separated)")
		fs.Var(&f.unset, "unset", "remove `FIELD` (repeatable): "+strings.Join(deviceUnsetNames(), ", "))
	}
}

func deviceUnsetNames() []string {
	return []string{"address", "model", "driver", "username", "secret", "fingerprint", "outlets", "ports", "psu", "power", "tags"}
}

// deviceField is the JSON field a device flag sets.
func deviceField(flagName string) string {
	switch flagName {
	case "secret":
		return "credential_ref"
	case "psu":
		return "power_supplies"
	case "power":
		return "power_method"
	}
	return flagName
}

func (f *deviceFlags) psus() []string {
	var l listFlag
	_ = l.Set(f.psu)
	return l
}

// names expands --outlets and --ports.
func (f *deviceFlags) names(cmd string) (outlets, ports []string, err error) {
	if f.outlets != "" {
		if outlets, err = expandNames(f.outlets); err != nil {
			return nil, nil, rangeError(cmd+": --outlets", err)
		}
	}
	if f.ports != "" {
		if ports, err = expandNames(f.ports); err != nil {
			return nil, nil, rangeError(cmd+": --ports", err)
		}
	}
	return outlets, ports, nil
}

func (a *app) deviceList(ctx context.Context, kind string, asJSON bool) error {
	if err := checkKind("device list", kind, true); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	devices, err := cl.AllDevices(ctx, model.DeviceKind(kind))
	if err != nil {
		return fail("list devices", err)
	}
	if devices == nil {
		devices = []model.Device{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Device]{Items: devices, Total: len(devices)})
	}
	if len(devices) == 0 {
		fmt.Fprintln(a.stderr, "No devices.")
		return nil
	}
	t := newTable(a.stdout, "NAME", "KIND", "ADDRESS", "MODEL", "DRIVER", "PORTS", "TAGS")
	for _, d := range devices {
		t.row(d.Name, string(d.Kind), d.Address, d.Model, d.Driver, noderange.Fold(append(slices.Clone(d.Outlets), d.Ports...)), strings.Join(d.Tags, ","))
	}
	return t.flush()
}

func checkKind(cmd, kind string, optional bool) error {
	switch model.DeviceKind(kind) {
	case model.DeviceSwitch, model.DevicePDU:
		return nil
	case "":
		if optional {
			return nil
		}
		return usagef(cmd, "--kind is required: switch or pdu")
	}
	return usagef(cmd, "--kind %q is not a device kind (want switch or pdu)", kind)
}

func (a *app) deviceShow(ctx context.Context, name string, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	d, err := cl.GetDevice(ctx, name)
	if err != nil {
		return notFoundOr(err, "device show", "device", name, "read device "+name)
	}
	if asJSON {
		return writeJSON(a.stdout, d)
	}
	conns, err := cl.AllConnections(ctx, client.ConnectionQuery{Device: name})
	if err != nil {
		return fail("read connections of "+name, err)
	}
	w := newDetails(a.stdout)
	w.add("Name", d.Name)
	w.add("Kind", string(d.Kind))
	w.add("Address", d.Address)
	w.add("Model", d.Model)
	w.add("Driver", d.Driver)
	w.add("Username", d.Username)
	if d.Kind == model.DevicePDU {
		w.add("Outlets", foldCount(d.Outlets))
	} else {
		w.add("Ports", foldCount(d.Ports))
	}
	w.add("Tags", strings.Join(d.Tags, ", "))
	var cs []string
	for _, c := range conns {
		cs = append(cs, fmt.Sprintf("%s -> %s %s", c.Port, c.Node, c.End))
	}
	w.add("Connections", cs...)
	w.add("Revision", fmt.Sprint(d.Revision))
	w.add("Created", formatTime(d.Created))
	w.add("Updated", formatTime(d.Updated))
	return w.flush()
}

func foldCount(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s  (%d)", noderange.Fold(names), len(names))
}

func (a *app) deviceAdd(ctx context.Context, name string, f *deviceFlags) error {
	const cmd = "device add"
	if err := checkKind(cmd, f.kind, false); err != nil {
		return err
	}
	outlets, ports, err := f.names(cmd)
	if err != nil {
		return err
	}
	d := model.Device{
		Name: name, Kind: model.DeviceKind(f.kind), Address: f.address, Model: f.model, Driver: f.driver,
		Username: f.username, CredentialRef: f.secret, Fingerprint: f.pin, Outlets: outlets, PowerSupplies: f.psus(), PowerMethod: model.PowerMethod(f.power), Ports: ports, Tags: slices.Clone([]string(f.tags)),
	}
	if err := d.Validate(); err != nil {
		return invalid("add device "+name, err)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if _, err := cl.CreateDevice(ctx, d); err != nil {
		return fail("add device "+name, err)
	}
	fmt.Fprintf(a.stdout, "added %s %s\n", d.Kind, name)
	return nil
}

func (a *app) deviceSet(ctx context.Context, name string, f *deviceFlags, set map[string]bool) error {
	const cmd = "device set"
	unset, err := unsetFields(cmd, f.unset, stringSet(deviceUnsetNames()), set)
	if err != nil {
		return err
	}
	outlets, ports, err := f.names(cmd)
	if err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		p := map[string]any{}
		var rev int64
		for flagName, v := range map[string]string{"address": f.address, "model": f.model, "driver": f.driver, "username": f.username, "secret": f.secret, "fingerprint": f.pin, "power": f.power} {
			if set[flagName] {
				p[deviceField(flagName)] = orNil(v)
			}
		}
		if set["outlets"] {
			p["outlets"] = tagsValue(outlets)
		}
		if set["psu"] {
			p["power_supplies"] = tagsValue(f.psus())
		}
		if set["ports"] {
			p["ports"] = tagsValue(ports)
		}
		for _, u := range deviceUnsetNames() {
			if unset[u] {
				p[deviceField(u)] = nil
			}
		}
		if len(f.tags) > 0 || len(f.untags) > 0 {
			cur, err := cl.GetDevice(ctx, name)
			if err != nil {
				return notFoundOr(err, cmd, "device", name, "read device "+name)
			}
			p["tags"] = tagsValue(editTags(cur.Tags, f.tags, f.untags))
			rev = cur.Revision
		}
		if len(p) == 0 {
			return usagef(cmd, "nothing to change: give a flag such as --address, --outlets or --unset (see 'herd help device set')")
		}
		_, err := cl.PatchDevice(ctx, name, p, rev)
		if rev != 0 && client.IsStatus(err, 412) && attempt < 3 {
			continue
		}
		if err != nil {
			return notFoundOr(err, cmd, "device", name, "change device "+name)
		}
		fmt.Fprintf(a.stdout, "updated device %s: %s\n", name, strings.Join(sortedKeys(p), ", "))
		return nil
	}
}
