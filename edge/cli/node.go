package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

func (a *app) nodeCommand() *command {
	return &command{
		name: "node", summary: "list, show, add, change and delete nodes; assign new machines",
		help: `Manages nodes. Commands that take a RANGE accept a single name, a node
range such as node[001-128] or rack[1-2]n[01-04], groups (@gpu) and
exclusions (node[01-10],-node05). New machines that boot from the network
before they are nodes are listed by 'herd node unassigned' and become
nodes with 'herd node assign'.`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, args: "[RANGE]", maxArgs: 1,
				summary: "list nodes",
				help: `Lists nodes, optionally those of a RANGE, as a table or as JSON
(a page: {"items": [...], "total": N}). IMAGE and BRANCH are the
effective values, inherited from the group where the node sets none.`,
				flags: a.nodeListFlags,
			},
			{
				name: "show", aliases: []string{"get"}, args: "RANGE", minArgs: 1, maxArgs: 1,
				summary: "show nodes in detail",
				help: `Shows every node of RANGE in detail, with its connections. With --json
a single name prints one node object and a range prints an array.`,
				flags: a.nodeShowFlags,
			},
			{
				name: "add", args: "NAME|RANGE", minArgs: 1, maxArgs: 1,
				summary: "add nodes",
				help: `Adds one node, or one per name of a RANGE. --ip is the address of the
first node and counts up in the last octet for the next ones; --mac can
only be given when adding a single node.`,
				flags: func(fs *flag.FlagSet) action {
					f := &nodeFlags{}
					f.declare(fs, false)
					return func(ctx context.Context, args []string) error {
						return a.nodeAdd(ctx, args[0], f, given(fs))
					}
				},
			},
			{
				name: "set", args: "RANGE", minArgs: 1, maxArgs: 1,
				summary: "change nodes",
				help: `Changes the given fields of every node of RANGE and leaves the others
alone. --tag and --untag add and remove tags; --unset FIELD removes a
field so the node inherits it from its group again. --mac and --ip change
the interface named by --iface (default the boot interface). --ip counts
up in the last octet along the range. Nodes of the range that fail, or do
not exist, are reported and the others are still changed.`,
				flags: func(fs *flag.FlagSet) action {
					f := &nodeFlags{}
					f.declare(fs, true)
					return func(ctx context.Context, args []string) error {
						return a.nodeSet(ctx, args[0], f, given(fs))
					}
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "RANGE", minArgs: 1, maxArgs: 1,
				summary: "delete nodes and their connections",
				help: `Deletes every node of RANGE with its connections. It asks first on a
terminal; elsewhere (scripts, pipes) it needs --yes.`,
				flags: func(fs *flag.FlagSet) action {
					yes := fs.Bool("yes", false, "do not ask for confirmation")
					return func(ctx context.Context, args []string) error {
						return a.nodeDelete(ctx, args[0], *yes)
					}
				},
			},
			a.nodeUnassignedCommand(), a.nodeAssignCommand(), a.nodeForgetCommand(),
		},
	}
}

// nodeFlags are the flags of node add and node set.
type nodeFlags struct {
	settingsFlags
	group, mac, ip, iface, bmc, bmcUser, bmcSecret, bmcPin, psu string
	tags, untags, unset                                         listFlag
}

func (f *nodeFlags) declare(fs *flag.FlagSet, set bool) {
	fs.StringVar(&f.group, "group", "", "`GROUP` the node belongs to")
	fs.StringVar(&f.mac, "mac", "", "`MAC` address of the interface (one node only)")
	fs.StringVar(&f.ip, "ip", "", "`ADDR`ess of the interface, optionally with /prefix; counts up along a range")
	if set {
		fs.StringVar(&f.iface, "iface", "", "`NAME` of the interface --mac and --ip change (default the boot interface)")
	} else {
		fs.StringVar(&f.iface, "iface", "eth0", "`NAME` of the interface")
	}
	fs.StringVar(&f.bmc, "bmc", "", "BMC `ADDR`ess (IP or host name)")
	fs.StringVar(&f.bmcUser, "bmc-user", "", "BMC `USER` name")
	fs.StringVar(&f.bmcPin, "bmc-fingerprint", "", "`SHA256` fingerprint (sha256:<hex>) of a Redfish BMC's self-signed certificate, to pin it")
	fs.StringVar(&f.bmcSecret, "bmc-secret", "", "`NAME` of the stored secret holding the BMC password (herd secret set NAME)")
	f.settingsFlags.declare(fs)
	fs.StringVar(&f.psu, "psu", "", "power supply `NAMES`, comma-separated (psu1,psu2)")
	fs.Var(&f.tags, "tag", "add `TAG` (repeatable, or comma-separated)")
	if set {
		fs.Var(&f.untags, "untag", "remove `TAG` (repeatable, or comma-separated)")
		fs.Var(&f.unset, "unset", "remove `FIELD` (repeatable): "+strings.Join(nodeUnsetNames(), ", "))
	}
}

// nodeUnsetNames are the fields node set --unset knows.
func nodeUnsetNames() []string {
	return []string{"group", "image", "branch", "layout", "kernel", "kernel-args", "stateless", "check-every-boot", "sync-verify", "plugin", "power", "bmc", "bmc-user", "bmc-secret", "bmc-fingerprint", "psu", "tags", "mac", "ip", "interfaces"}
}

// check validates flag values before anything is sent, turning the MAC
// into its canonical form.
func (f *nodeFlags) check(cmd string) error {
	if err := f.settingsFlags.check(cmd); err != nil {
		return err
	}
	if f.mac != "" {
		m, err := model.ParseMAC(f.mac)
		if err != nil {
			return usagef(cmd, "--mac: %v", err)
		}
		f.mac = string(m)
	}
	if f.ip != "" {
		if _, err := addressSequence(f.ip, 1); err != nil {
			return usagef(cmd, "--ip: %v", err)
		}
	}
	return nil
}

func (f *nodeFlags) psus() []string {
	var l listFlag
	_ = l.Set(f.psu)
	return l
}

// node builds a new node from the flags.
func (f *nodeFlags) node(name, addr string) model.Node {
	n := model.Node{Name: name, Group: f.group, Tags: slices.Clone([]string(f.tags)), PowerSupplies: f.psus()}
	f.settingsFlags.apply(&n.Settings)
	n.BMC = model.BMC{Address: f.bmc, Username: f.bmcUser, CredentialRef: f.bmcSecret, Fingerprint: f.bmcPin}
	if f.mac != "" || addr != "" {
		n.Interfaces = []model.Interface{{Name: f.iface, MAC: model.MAC(f.mac), Address: addr, Boot: true}}
	}
	return n
}

// patch builds the JSON merge patch that applies the flags to cur, the
// node as last read. needsRev is true when the patch was computed from
// cur (tags, interfaces): it must then apply to that revision only.
func (f *nodeFlags) patch(cur model.Node, addr string, set, unset map[string]bool) (p map[string]any, needsRev bool) {
	p = map[string]any{}
	if set["group"] {
		p["group"] = orNil(f.group)
	}
	f.settingsFlags.patch(p, set)
	for flagName, field := range settingsFields() {
		if unset[flagName] {
			p[field] = nil
		}
	}
	if unset["group"] {
		p["group"] = nil
	}

	bmc := map[string]any{}
	if set["bmc"] {
		bmc["address"] = orNil(f.bmc)
	}
	if set["bmc-user"] {
		bmc["username"] = orNil(f.bmcUser)
	}
	if unset["bmc-user"] {
		bmc["username"] = nil
	}
	if set["bmc-secret"] {
		bmc["credential_ref"] = orNil(f.bmcSecret)
	}
	if unset["bmc-secret"] {
		bmc["credential_ref"] = nil
	}
	if set["bmc-fingerprint"] {
		bmc["fingerprint"] = orNil(f.bmcPin)
	}
	if unset["bmc-fingerprint"] {
		bmc["fingerprint"] = nil
	}
	switch {
	case unset["bmc"]:
		p["bmc"] = nil
	case len(bmc) > 0:
		p["bmc"] = bmc
	}

	if set["psu"] {
		p["power_supplies"] = tagsValue(f.psus())
	}
	if unset["psu"] {
		p["power_supplies"] = nil
	}

	if len(f.tags) > 0 || len(f.untags) > 0 {
		p["tags"] = tagsValue(editTags(cur.Tags, f.tags, f.untags))
		needsRev = true
	}
	if unset["tags"] {
		p["tags"] = nil
	}

	switch {
	case unset["interfaces"]:
		p["interfaces"] = nil
	case set["mac"] || set["ip"] || set["iface"] || unset["mac"] || unset["ip"]:
		ifs := slices.Clone(cur.Interfaces)
		i := targetInterface(ifs, f.iface)
		if i < 0 {
			name := f.iface
			if name == "" {
				name = "eth0"
			}
			boot := !slices.ContainsFunc(ifs, func(x model.Interface) bool { return x.Boot })
			ifs = append(ifs, model.Interface{Name: name, Boot: boot})
			i = len(ifs) - 1
		}
		if set["mac"] {
			ifs[i].MAC = model.MAC(f.mac)
		}
		if unset["mac"] {
			ifs[i].MAC = ""
		}
		if set["ip"] {
			ifs[i].Address = addr
		}
		if unset["ip"] {
			ifs[i].Address = ""
		}
		p["interfaces"] = ifs
		needsRev = true
	}
	return p, needsRev
}

// targetInterface finds the interface --mac and --ip change: the one named,
// else the boot interface, else the first; -1 when there is none.
func targetInterface(ifs []model.Interface, name string) int {
	if name != "" {
		return slices.IndexFunc(ifs, func(x model.Interface) bool { return x.Name == name })
	}
	if i := slices.IndexFunc(ifs, func(x model.Interface) bool { return x.Boot }); i >= 0 {
		return i
	}
	if len(ifs) > 0 {
		return 0
	}
	return -1
}

// bootInterface is the interface a node list shows.
func bootInterface(n model.Node) model.Interface {
	if i := targetInterface(n.Interfaces, ""); i >= 0 {
		return n.Interfaces[i]
	}
	return model.Interface{}
}

func (a *app) nodeListFlags(fs *flag.FlagSet) action {
	group := fs.String("group", "", "only nodes of `GROUP`")
	tag := fs.String("tag", "", "only nodes tagged `TAG`")
	state := fs.String("state", "", "only nodes in `STATE` (new, provisioning, up, down, error)")
	search := fs.String("search", "", "only nodes whose name, MAC, address or tags contain `TEXT`")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, args []string) error {
		q := client.NodeQuery{Group: *group, Tag: *tag, State: *state, Text: *search}
		if len(args) == 1 {
			if _, err := noderange.Parse(args[0]); err != nil {
				return rangeError("node list", err)
			}
			q.Range = args[0]
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		nodes, err := cl.AllNodes(ctx, q)
		if err != nil {
			return fail("list nodes", err)
		}
		if nodes == nil {
			nodes = []model.Node{}
		}
		if *asJSON {
			return writeJSON(a.stdout, model.Page[model.Node]{Items: nodes, Total: len(nodes)})
		}
		if len(nodes) == 0 {
			fmt.Fprintln(a.stderr, "No nodes match.")
			return nil
		}
		t := newTable(a.stdout, "NAME", "GROUP", "STATE", "IMAGE", "BRANCH", "MAC", "ADDRESS", "TAGS")
		for _, n := range nodes {
			eff := effective(n)
			itf := bootInterface(n)
			t.row(n.Name, n.Group, string(n.State), eff.Image, eff.Branch, string(itf.MAC), itf.Address, strings.Join(n.Tags, ","))
		}
		return t.flush()
	}
}

func effective(n model.Node) model.Settings {
	if n.Effective != nil {
		return *n.Effective
	}
	return n.Settings
}

// selection is the nodes a range names, as the API knows them.
type selection struct {
	names   []string // every name of the range, in range order
	nodes   map[string]model.Node
	missing []string // names of the range that are not nodes
	plain   bool     // the range is a single name
}

// existing returns the names of the range that are nodes, in range order.
func (s selection) existing() []string {
	return slices.DeleteFunc(slices.Clone(s.names), func(n string) bool { _, ok := s.nodes[n]; return !ok })
}

// missingError says which names of the range are not nodes.
func (s selection) missingError(cmd string) error {
	if len(s.missing) == 1 {
		return fmt.Errorf("%s: node %s does not exist", cmd, s.missing[0])
	}
	return fmt.Errorf("%s: %d nodes do not exist: %s", cmd, len(s.missing), noderange.Fold(s.missing))
}

// selectNodes expands a range the way the API does — groups through the
// API — and reads its nodes, so the names that are not nodes can be told.
func (a *app) selectNodes(ctx context.Context, cl *client.Client, cmd, rng string) (selection, error) {
	r, err := noderange.Parse(rng)
	if err != nil {
		return selection{}, rangeError(cmd, err)
	}
	names, err := r.Expand(func(group string) ([]string, error) {
		members, err := cl.AllNodes(ctx, client.NodeQuery{Range: "@" + group})
		if err != nil {
			return nil, err
		}
		out := make([]string, len(members))
		for i, m := range members {
			out[i] = m.Name
		}
		return out, nil
	})
	if err != nil {
		// Errors from the API or the network, met while resolving a group,
		// are failures; anything else is wrong with the range itself.
		var p *client.Error
		var ue *url.Error
		if errors.As(err, &p) || errors.As(err, &ue) || ctx.Err() != nil {
			return selection{}, fail(cmd+" "+rng, err)
		}
		return selection{}, rangeError(cmd, err)
	}
	if len(names) == 0 {
		return selection{}, usagef(cmd, "%s names no nodes", rng)
	}
	nodes, err := cl.AllNodes(ctx, client.NodeQuery{Range: rng})
	if err != nil {
		return selection{}, fail(cmd+" "+rng, err)
	}
	sel := selection{names: names, nodes: make(map[string]model.Node, len(nodes)), plain: !noderange.IsPattern(rng)}
	for _, n := range nodes {
		sel.nodes[n.Name] = n
	}
	for _, n := range names {
		if _, ok := sel.nodes[n]; !ok {
			sel.missing = append(sel.missing, n)
		}
	}
	return sel, nil
}

func (a *app) nodeShowFlags(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print JSON (an object for a single name, an array for a range)")
	return func(ctx context.Context, args []string) error {
		const cmd = "node show"
		rng := args[0]
		cl, err := a.client()
		if err != nil {
			return err
		}
		var nodes []model.Node
		var conns []model.Connection
		var missing error
		if !noderange.IsPattern(rng) {
			if err := model.CheckName(rng); err != nil {
				return usagef(cmd, "%v", err)
			}
			n, err := cl.GetNode(ctx, rng)
			if client.IsStatus(err, 404) {
				return fmt.Errorf("%s: node %s does not exist", cmd, rng)
			}
			if err != nil {
				return fail("read node "+rng, err)
			}
			if *asJSON {
				return writeJSON(a.stdout, n)
			}
			nodes = []model.Node{n}
			if conns, err = cl.AllConnections(ctx, client.ConnectionQuery{Node: rng}); err != nil {
				return fail("read connections of "+rng, err)
			}
		} else {
			sel, err := a.selectNodes(ctx, cl, cmd, rng)
			if err != nil {
				return err
			}
			for _, name := range sel.existing() {
				nodes = append(nodes, sel.nodes[name])
			}
			if len(sel.missing) > 0 {
				missing = sel.missingError(cmd)
			}
			if *asJSON {
				if nodes == nil {
					nodes = []model.Node{}
				}
				if err := writeJSON(a.stdout, nodes); err != nil {
					return err
				}
				return missing
			}
			if len(nodes) > 0 {
				if conns, err = cl.AllConnections(ctx, client.ConnectionQuery{}); err != nil {
					return fail("read connections", err)
				}
			}
		}
		byNode := map[string][]model.Connection{}
		for _, c := range conns {
			byNode[c.Node] = append(byNode[c.Node], c)
		}
		for i, n := range nodes {
			if i > 0 {
				fmt.Fprintln(a.stdout)
			}
			if err := writeNode(a, n, byNode[n.Name]); err != nil {
				return err
			}
		}
		return missing
	}
}

// writeNode prints one node in detail.
func writeNode(a *app, n model.Node, conns []model.Connection) error {
	eff := effective(n)
	inherited := func(own, eff string) string {
		if own == "" && eff != "" {
			return eff + "  (from group " + n.Group + ")"
		}
		return eff
	}
	d := newDetails(a.stdout)
	d.add("Name", n.Name)
	d.add("Group", n.Group)
	d.add("State", string(n.State))
	d.add("Image", inherited(n.Image, eff.Image))
	d.add("Branch", inherited(n.Branch, eff.Branch))
	d.add("Disk layout", inherited(n.DiskLayout, eff.DiskLayout))
	if eff.Kernel != "" {
		d.add("Kernel", inherited(n.Kernel, eff.Kernel))
	}
	if eff.KernelArgs != "" {
		d.add("Kernel arguments", inherited(n.KernelArgs, eff.KernelArgs))
	}
	stateless := yesNo(eff.Stateless)
	if n.Stateless == nil && eff.Stateless != nil {
		stateless += "  (from group " + n.Group + ")"
	}
	d.add("Stateless", stateless)
	d.add("Power method", inherited(string(n.PowerMethod), string(eff.PowerMethod)))
	var ifs []string
	for _, i := range n.Interfaces {
		line := fmt.Sprintf("%-8s %-17s %s", i.Name, orDash(string(i.MAC)), orDash(i.Address))
		if i.Boot {
			line += "  boot"
		}
		ifs = append(ifs, line)
	}
	d.add("Interfaces", ifs...)
	bmc := n.BMC.Address
	if n.BMC.Username != "" {
		bmc += "  user " + n.BMC.Username
	}
	if n.BMC.CredentialRef != "" {
		bmc += "  credential " + n.BMC.CredentialRef
	}
	d.add("BMC", strings.TrimSpace(bmc))
	d.add("Power supplies", strings.Join(n.PowerSupplies, ", "))
	d.add("Tags", strings.Join(n.Tags, ", "))
	var cs []string
	for _, c := range conns {
		cs = append(cs, connectionLine(c))
	}
	d.add("Connections", cs...)
	d.add("Revision", fmt.Sprint(n.Revision))
	d.add("Created", formatTime(n.Created))
	d.add("Updated", formatTime(n.Updated))
	return d.flush()
}

// connectionLine shows a connection from the node's side.
func connectionLine(c model.Connection) string {
	where := "port"
	if c.Kind == model.ConnPower {
		where = "outlet"
	}
	return fmt.Sprintf("%s -> %s %s %s", c.End, c.Device, where, c.Port)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateTime)
}

func (a *app) nodeAdd(ctx context.Context, rng string, f *nodeFlags, set map[string]bool) error {
	const cmd = "node add"
	if err := f.check(cmd); err != nil {
		return err
	}
	r, err := noderange.Parse(rng)
	if err != nil {
		return rangeError(cmd, err)
	}
	names, err := r.Expand(func(group string) ([]string, error) {
		return nil, fmt.Errorf("node add makes new nodes, and @%s names existing ones", group)
	})
	if err != nil {
		return rangeError(cmd, err)
	}
	if len(names) == 0 {
		return usagef(cmd, "%s names no nodes", rng)
	}
	if f.mac != "" && len(names) > 1 {
		return usagef(cmd, "--mac is one node's address, but %s names %d nodes: add them without --mac, then 'herd node set NAME --mac MAC' each", rng, len(names))
	}
	addrs := make([]string, len(names))
	if f.ip != "" {
		if addrs, err = addressSequence(f.ip, len(names)); err != nil {
			return usagef(cmd, "--ip: %v", err)
		}
	}
	nodes := make([]model.Node, len(names))
	for i, name := range names {
		nodes[i] = f.node(name, addrs[i])
		if err := nodes[i].Validate(); err != nil {
			return invalid("add node "+name, err)
		}
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	failed := a.each(ctx, "add", names, func(ctx context.Context, i int, name string) (string, error) {
		n, err := cl.CreateNode(ctx, nodes[i])
		if err != nil {
			return "", fail("add node "+name, err)
		}
		line := "added " + n.Name
		if itf := bootInterface(n); itf.Address != "" || itf.MAC != "" {
			line += fmt.Sprintf("  %s %s", itf.Name, strings.TrimSpace(string(itf.MAC)+" "+itf.Address))
		}
		return line, nil
	})
	return a.summarize(ctx, cmd, "added", names, failed, nil)
}

// invalid turns a local validation failure into the problem the API would
// have answered, so it prints the same way: one line and a line per field.
func invalid(op string, err error) error {
	var ve *model.ValidationError
	if errors.As(err, &ve) {
		return fail(op, &client.Error{Title: "Invalid input", Status: 422, Detail: ve.Error(), Errors: ve.Problems})
	}
	return fail(op, err)
}

// summarize ends a batch: on success a line naming what was done (when it
// was more than one), else the error that makes the exit status 1.
func (a *app) summarize(ctx context.Context, cmd, past string, names, failed, missing []string) error {
	done := len(names) - len(failed)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: interrupted: %s %d of %s", cmd, past, done, plural(len(names)+len(missing), "node"))
	}
	if len(failed) == 0 && len(missing) == 0 {
		if len(names) > 1 {
			fmt.Fprintf(a.stdout, "%s%s %s: %s.\n", strings.ToUpper(past[:1]), past[1:], plural(len(names), "node"), noderange.Fold(names))
		}
		return nil
	}
	msg := fmt.Sprintf("%s: %s %d of %s", cmd, past, done, plural(len(names)+len(missing), "node"))
	if len(names)+len(missing) == 1 {
		return reported{errors.New(msg)} // the one error printed says it all
	}
	if len(failed) > 0 {
		msg += "; failed: " + noderange.Fold(failed)
	}
	if len(missing) > 0 {
		msg += "; not found: " + noderange.Fold(missing)
	}
	return errors.New(msg)
}

func (a *app) nodeSet(ctx context.Context, rng string, f *nodeFlags, set map[string]bool) error {
	const cmd = "node set"
	if err := f.check(cmd); err != nil {
		return err
	}
	unset, err := unsetFields(cmd, f.unset, stringSet(nodeUnsetNames()), set)
	if err != nil {
		return err
	}
	changes := len(unset) + len(f.tags) + len(f.untags)
	for name := range set {
		if name != "tag" && name != "untag" && name != "unset" {
			changes++
		}
	}
	if changes == 0 {
		return usagef(cmd, "nothing to change: give a flag such as --image, --tag or --unset (see 'herd help node set')")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	sel, err := a.selectNodes(ctx, cl, cmd, rng)
	if err != nil {
		return err
	}
	if sel.plain && len(sel.missing) > 0 {
		return sel.missingError(cmd)
	}
	if f.mac != "" && len(sel.names) > 1 {
		return usagef(cmd, "--mac is one node's address, but %s names %d nodes", rng, len(sel.names))
	}
	addrOf := map[string]string{}
	if set["ip"] && f.ip != "" {
		addrs, err := addressSequence(f.ip, len(sel.names))
		if err != nil {
			return usagef(cmd, "--ip: %v", err)
		}
		for i, n := range sel.names {
			addrOf[n] = addrs[i]
		}
	}
	if len(sel.missing) > 0 {
		a.report(sel.missingError(cmd))
	}
	names := sel.existing()
	if len(names) == 0 {
		return fmt.Errorf("%s: no node of %s exists", cmd, rng)
	}
	failed := a.each(ctx, "set", names, func(ctx context.Context, _ int, name string) (string, error) {
		cur := sel.nodes[name]
		for attempt := 0; ; attempt++ {
			p, needsRev := f.patch(cur, addrOf[name], set, unset)
			rev := int64(0)
			if needsRev {
				rev = cur.Revision
			}
			_, err := cl.PatchNode(ctx, name, p, rev)
			if needsRev && client.IsStatus(err, 412) && attempt < 3 {
				// Changed since we read it: compute the change again.
				if cur, err = cl.GetNode(ctx, name); err != nil {
					return "", fail("read node "+name, err)
				}
				continue
			}
			if err != nil {
				return "", fail("change node "+name, err)
			}
			return "updated " + name + ": " + strings.Join(sortedKeys(p), ", "), nil
		}
	})
	return a.summarize(ctx, cmd, "updated", names, failed, sel.missing)
}

func (a *app) nodeDelete(ctx context.Context, rng string, yes bool) error {
	const cmd = "node delete"
	if !yes && !isTerminal(a.stdin) {
		return usagef(cmd, "refusing to delete without --yes: stdin is not a terminal to ask for confirmation on")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	sel, err := a.selectNodes(ctx, cl, cmd, rng)
	if err != nil {
		return err
	}
	if sel.plain && len(sel.missing) > 0 {
		return sel.missingError(cmd)
	}
	if len(sel.missing) > 0 {
		a.report(sel.missingError(cmd))
	}
	names := sel.existing()
	if len(names) == 0 {
		return fmt.Errorf("%s: no node of %s exists", cmd, rng)
	}
	if !yes {
		ok, err := a.confirm(ctx, fmt.Sprintf("Delete %s (%s) and their connections?", plural(len(names), "node"), noderange.Fold(names)))
		if err != nil {
			return fail(cmd, err)
		}
		if !ok {
			return fmt.Errorf("%s: not confirmed, nothing deleted", cmd)
		}
	}
	failed := a.each(ctx, "delete", names, func(ctx context.Context, _ int, name string) (string, error) {
		if err := cl.DeleteNode(ctx, name, 0); err != nil {
			return "", fail("delete node "+name, err)
		}
		return "deleted " + name, nil
	})
	return a.summarize(ctx, cmd, "deleted", names, failed, sel.missing)
}

func stringSet(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
