package cli

// The node verbs about machines that network-booted with a MAC no node
// has (discovery entries): node unassigned, node assign and node forget.

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) nodeUnassignedCommand() *command {
	return &command{
		name: "unassigned", aliases: []string{"discovered"}, maxArgs: 0,
		summary: "list machines that booted with a MAC no node has",
		help: `Lists the machines that network-booted with a MAC no node has, most
recently seen first, with what they told about themselves. Each keeps
asking for its boot script; 'herd node assign' gives its MAC to a node,
and its next request boots it as that node. COUNT is how many times it
asked. --json prints {"items": [...], "total": N, "evicted": N}; evicted
counts machines dropped, least recently seen first, to keep the list
under its cap.`,
		flags: func(fs *flag.FlagSet) action {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, _ []string) error { return a.nodeUnassigned(ctx, *asJSON) }
		},
	}
}

func (a *app) nodeUnassigned(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	all := model.DiscoveredPage{Items: []model.Discovered{}}
	o := client.ListOptions{Limit: 1000}
	for {
		page, err := cl.ListDiscovered(ctx, o)
		if err != nil {
			return fail("list unassigned machines", err)
		}
		all.Items = append(all.Items, page.Items...)
		all.Evicted = page.Evicted
		if page.Next == "" {
			break
		}
		o.Cursor = page.Next
	}
	all.Total = len(all.Items)
	if asJSON {
		return writeJSON(a.stdout, all)
	}
	if len(all.Items) == 0 {
		fmt.Fprintln(a.stderr, "No machines are waiting to be assigned.")
	} else {
		t := newTable(a.stdout, "MAC", "FIRST-SEEN", "LAST-SEEN", "COUNT", "ARCH", "PLATFORM", "CLIENT", "MANUFACTURER", "PRODUCT", "SERIAL")
		for _, d := range all.Items {
			t.row(string(d.MAC), formatTime(d.FirstSeen), formatTime(d.LastSeen), strconv.FormatInt(d.Count, 10),
				d.Arch, d.Platform, d.ClientAddr, d.Manufacturer, d.Product, d.Serial)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if all.Evicted > 0 {
		fmt.Fprintf(a.stderr, "(%s dropped so far to keep the list under its cap; each reappears when it boots again)\n",
			plural(int(all.Evicted), "machine"))
	}
	return nil
}

func (a *app) nodeAssignCommand() *command {
	return &command{
		name: "assign", args: "MAC NODE", minArgs: 2, maxArgs: 2,
		summary: "give an unassigned machine's MAC to a node, or create the node",
		help: `Gives the MAC of a machine 'herd node unassigned' lists to NODE: to its
boot interface when that has no MAC yet, else to a new interface. With
--create it makes NODE, with the MAC on eth0, instead. The machine boots
as NODE the next time it asks for its boot script. MAC may be written
52:54:00:12:34:56, 52-54-00-12-34-56, 5254.0012.3456 or 525400123456.`,
		flags: func(fs *flag.FlagSet) action {
			create := fs.Bool("create", false, "create NODE instead of adding the MAC to an existing node")
			group := fs.String("group", "", "`GROUP` of the node --create makes")
			return func(ctx context.Context, args []string) error {
				return a.nodeAssign(ctx, args[0], args[1], *create, *group)
			}
		},
	}
}

func (a *app) nodeAssign(ctx context.Context, macArg, node string, create bool, group string) error {
	const cmd = "node assign"
	mac, err := parseMAC(cmd, macArg)
	if err != nil {
		return err
	}
	if err := model.CheckName(node); err != nil {
		return usagef(cmd, "%v", err)
	}
	if group != "" && !create {
		return usagef(cmd, "--group needs --create: to move an existing node, use 'herd node set %s --group %s'", node, group)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	n, err := cl.AssignDiscovered(ctx, mac, model.AssignRequest{Node: node, Create: create, Group: group})
	if err != nil {
		return fail(fmt.Sprintf("assign %s to %s", mac, node), err)
	}
	iface := "a new interface"
	for _, i := range n.Interfaces {
		if i.MAC == mac {
			iface = i.Name
		}
	}
	if create {
		in := ""
		if n.Group != "" {
			in = " in group " + n.Group
		}
		fmt.Fprintf(a.stdout, "created node %s%s with %s on %s; it boots as %s the next time it asks\n", n.Name, in, mac, iface, n.Name)
		return nil
	}
	fmt.Fprintf(a.stdout, "assigned %s to %s as %s; it boots as %s the next time it asks\n", mac, n.Name, iface, n.Name)
	return nil
}

func (a *app) nodeForgetCommand() *command {
	return &command{
		name: "forget", args: "MAC", minArgs: 1, maxArgs: 1,
		summary: "drop a machine from the unassigned list",
		help: `Drops a machine from the list 'herd node unassigned' shows, for a MAC
that is not to become a node. The machine is listed again if it boots
from the network again.`,
		flags: func(fs *flag.FlagSet) action {
			return func(ctx context.Context, args []string) error {
				const cmd = "node forget"
				mac, err := parseMAC(cmd, args[0])
				if err != nil {
					return err
				}
				cl, err := a.client()
				if err != nil {
					return err
				}
				if err := cl.ForgetDiscovered(ctx, mac); err != nil {
					return fail("forget "+string(mac), err)
				}
				fmt.Fprintf(a.stdout, "forgot %s; it is listed again if it boots from the network again\n", mac)
				return nil
			}
		},
	}
}

// parseMAC reads a MAC in any spelling model.ParseMAC accepts, or as 12
// bare hex digits, as BMCs and asset lists often print it.
func parseMAC(cmd, s string) (model.MAC, error) {
	t := strings.TrimSpace(s)
	if len(t) == 12 && isHex(t) {
		var b strings.Builder
		for i := 0; i < 12; i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(t[i : i+2])
		}
		t = b.String()
	}
	m, err := model.ParseMAC(t)
	if err != nil {
		return "", usagef(cmd, "%q is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)", s)
	}
	return m, nil
}
