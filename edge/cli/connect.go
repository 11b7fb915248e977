package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) connectCommand() *command {
	c := &command{
		name: "connect", args: "NODE:END DEVICE:PORT", minArgs: 2, maxArgs: 2,
		summary: "record which switch port or PDU outlet a node is cabled to",
		help: `Records that a node's interface is plugged into a switch port:

    herd connect node001:eth0 sw1:12

or, with --power, that a node's power supply is plugged into a PDU outlet:

    herd connect node001:psu1 pdu1:A3 --power

Connecting the same ends again changes nothing. 'herd connect list' shows
connections; 'herd connect delete ID' removes one.`,
		flags: func(fs *flag.FlagSet) action {
			power := fs.Bool("power", false, "connect a power supply to a PDU outlet (default: a network interface to a switch port)")
			return func(ctx context.Context, args []string) error { return a.connect(ctx, args[0], args[1], *power) }
		},
	}
	c.subs = []*command{
		{
			name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list connections",
			flags: func(fs *flag.FlagSet) action {
				node := fs.String("node", "", "only connections of `NODE`")
				device := fs.String("device", "", "only connections to `DEVICE`")
				kind := fs.String("kind", "", "only connections of `KIND` (network or power)")
				asJSON := fs.Bool("json", false, "print JSON")
				return func(ctx context.Context, _ []string) error {
					return a.connectList(ctx, client.ConnectionQuery{Node: *node, Device: *device, Kind: *kind}, *asJSON)
				}
			},
		},
		{
			name: "delete", aliases: []string{"rm"}, args: "ID...", minArgs: 1, maxArgs: -1,
			summary: "delete connections by id (as 'herd connect list' shows)",
			flags: func(fs *flag.FlagSet) action {
				return func(ctx context.Context, ids []string) error {
					cl, err := a.client()
					if err != nil {
						return err
					}
					var failed int
					for _, id := range ids {
						if err := cl.Disconnect(ctx, id); err != nil {
							failed++
							a.report(notFoundOr(err, "connect delete", "connection", id, "delete connection "+id))
							continue
						}
						fmt.Fprintf(a.stdout, "deleted connection %s\n", id)
					}
					if failed > 0 {
						return fmt.Errorf("connect delete: %d of %s not deleted", failed, plural(len(ids), "connection"))
					}
					return nil
				}
			},
		},
	}
	return c
}

// splitEnd reads "name:end" at the first colon: names have no colons, port
// and interface names may.
func splitEnd(cmd, what, s string) (string, string, error) {
	name, end, ok := strings.Cut(s, ":")
	if !ok || name == "" || end == "" {
		return "", "", &usageError{msg: fmt.Sprintf("%s: %q is not %s", cmd, s, what), hint: "herd help connect"}
	}
	return name, end, nil
}

func (a *app) connect(ctx context.Context, nodeEnd, devicePort string, power bool) error {
	const cmd = "connect"
	kind, endWhat, portWhat := model.ConnNetwork, "NODE:INTERFACE (node001:eth0)", "SWITCH:PORT (sw1:12)"
	if power {
		kind, endWhat, portWhat = model.ConnPower, "NODE:PSU (node001:psu1)", "PDU:OUTLET (pdu1:A3)"
	}
	node, end, err := splitEnd(cmd, endWhat, nodeEnd)
	if err != nil {
		return err
	}
	device, port, err := splitEnd(cmd, portWhat, devicePort)
	if err != nil {
		return err
	}
	c := model.Connection{Kind: kind, Node: node, End: end, Device: device, Port: port}
	if err := c.Validate(); err != nil {
		return invalid("connect "+nodeEnd+" to "+devicePort, err)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	out, err := cl.Connect(ctx, c)
	if err != nil {
		return fail("connect "+nodeEnd+" to "+devicePort, err)
	}
	fmt.Fprintf(a.stdout, "connected %s:%s to %s:%s (%s)\n", out.Node, out.End, out.Device, out.Port, out.ID)
	return nil
}

func (a *app) connectList(ctx context.Context, q client.ConnectionQuery, asJSON bool) error {
	switch model.ConnectionKind(q.Kind) {
	case "", model.ConnNetwork, model.ConnPower:
	default:
		return usagef("connect list", "--kind %q is not a connection kind (want network or power)", q.Kind)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	conns, err := cl.AllConnections(ctx, q)
	if err != nil {
		return fail("list connections", err)
	}
	if conns == nil {
		conns = []model.Connection{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Connection]{Items: conns, Total: len(conns)})
	}
	if len(conns) == 0 {
		fmt.Fprintln(a.stderr, "No connections.")
		return nil
	}
	t := newTable(a.stdout, "ID", "KIND", "NODE", "END", "DEVICE", "PORT")
	for _, c := range conns {
		t.row(c.ID, string(c.Kind), c.Node, c.End, c.Device, c.Port)
	}
	return t.flush()
}
