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

func (a *app) groupCommand() *command {
	return &command{
		name: "group", summary: "manage groups, whose settings their nodes inherit",
		help: `Manages groups. A node takes every setting it does not set itself (image,
branch, disk layout, stateless, power method) from its group.`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list groups",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.groupList(ctx, *asJSON) }
				},
			},
			{
				name: "show", aliases: []string{"get"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "show a group and its members",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.groupShow(ctx, args[0], *asJSON) }
				},
			},
			{
				name: "add", args: "NAME", minArgs: 1, maxArgs: 1, summary: "add a group",
				flags: func(fs *flag.FlagSet) action {
					f := &groupFlags{}
					f.declare(fs, false)
					return func(ctx context.Context, args []string) error { return a.groupAdd(ctx, args[0], f) }
				},
			},
			{
				name: "set", args: "NAME", minArgs: 1, maxArgs: 1, summary: "change a group",
				help: `Changes the given fields of a group. --unset FIELD removes a setting;
its nodes then have none unless they set it themselves.`,
				flags: func(fs *flag.FlagSet) action {
					f := &groupFlags{}
					f.declare(fs, true)
					return func(ctx context.Context, args []string) error { return a.groupSet(ctx, args[0], f, given(fs)) }
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "delete a group that has no nodes",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteGroup(ctx, args[0], 0); err != nil {
							return notFoundOr(err, "group delete", "group", args[0], "delete group "+args[0])
						}
						fmt.Fprintf(a.stdout, "deleted group %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

// groupFlags are the flags of group add and group set.
type groupFlags struct {
	settingsFlags
	description         string
	tags, untags, unset listFlag
}

func (f *groupFlags) declare(fs *flag.FlagSet, set bool) {
	fs.StringVar(&f.description, "description", "", "what the group is for, as `TEXT`")
	f.settingsFlags.declare(fs)
	fs.Var(&f.tags, "tag", "add `TAG` (repeatable, or comma-separated)")
	if set {
		fs.Var(&f.untags, "untag", "remove `TAG` (repeatable, or comma-separated)")
		fs.Var(&f.unset, "unset", "remove `FIELD` (repeatable): "+strings.Join(groupUnsetNames(), ", "))
	}
}

func groupUnsetNames() []string {
	return []string{"description", "image", "branch", "layout", "kernel", "kernel-args", "stateless", "check-every-boot", "sync-verify", "plugin", "power", "tags"}
}

// notFoundOr says plainly that an object does not exist, or wraps any
// other failure with op.
func notFoundOr(err error, cmd, kind, name, op string) error {
	if client.IsStatus(err, 404) {
		return fmt.Errorf("%s: %s %s does not exist", cmd, kind, name)
	}
	return fail(op, err)
}

func (a *app) groupList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	groups, err := cl.AllGroups(ctx)
	if err != nil {
		return fail("list groups", err)
	}
	if groups == nil {
		groups = []model.Group{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Group]{Items: groups, Total: len(groups)})
	}
	if len(groups) == 0 {
		fmt.Fprintln(a.stderr, "No groups.")
		return nil
	}
	t := newTable(a.stdout, "NAME", "IMAGE", "BRANCH", "LAYOUT", "STATELESS", "POWER", "TAGS", "DESCRIPTION")
	for _, g := range groups {
		t.row(g.Name, g.Image, g.Branch, g.DiskLayout, yesNo(g.Stateless), string(g.PowerMethod), strings.Join(g.Tags, ","), g.Description)
	}
	return t.flush()
}

func (a *app) groupShow(ctx context.Context, name string, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	g, err := cl.GetGroup(ctx, name)
	if err != nil {
		return notFoundOr(err, "group show", "group", name, "read group "+name)
	}
	if asJSON {
		return writeJSON(a.stdout, g)
	}
	members, err := cl.AllNodes(ctx, client.NodeQuery{Group: name})
	if err != nil {
		return fail("list nodes of group "+name, err)
	}
	names := make([]string, len(members))
	for i, n := range members {
		names[i] = n.Name
	}
	d := newDetails(a.stdout)
	d.add("Name", g.Name)
	d.add("Description", g.Description)
	d.add("Image", g.Image)
	d.add("Branch", g.Branch)
	d.add("Disk layout", g.DiskLayout)
	if g.Kernel != "" {
		d.add("Kernel", g.Kernel)
	}
	if g.KernelArgs != "" {
		d.add("Kernel arguments", g.KernelArgs)
	}
	d.add("Stateless", yesNo(g.Stateless))
	d.add("Power method", string(g.PowerMethod))
	d.add("Tags", strings.Join(g.Tags, ", "))
	nodes := "none"
	if len(names) > 0 {
		nodes = fmt.Sprintf("%s  (%d)", noderange.Fold(names), len(names))
	}
	d.add("Nodes", nodes)
	d.add("Revision", fmt.Sprint(g.Revision))
	d.add("Created", formatTime(g.Created))
	d.add("Updated", formatTime(g.Updated))
	return d.flush()
}

func (a *app) groupAdd(ctx context.Context, name string, f *groupFlags) error {
	const cmd = "group add"
	if err := f.check(cmd); err != nil {
		return err
	}
	g := model.Group{Name: name, Description: f.description, Tags: slices.Clone([]string(f.tags))}
	f.settingsFlags.apply(&g.Settings)
	if err := g.Validate(); err != nil {
		return invalid("add group "+name, err)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if _, err := cl.CreateGroup(ctx, g); err != nil {
		return fail("add group "+name, err)
	}
	fmt.Fprintf(a.stdout, "added group %s\n", name)
	return nil
}

func (a *app) groupSet(ctx context.Context, name string, f *groupFlags, set map[string]bool) error {
	const cmd = "group set"
	if err := f.check(cmd); err != nil {
		return err
	}
	unset, err := unsetFields(cmd, f.unset, stringSet(groupUnsetNames()), set)
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
		if set["description"] {
			p["description"] = orNil(f.description)
		}
		if unset["description"] {
			p["description"] = nil
		}
		f.settingsFlags.patch(p, set)
		for flagName, field := range settingsFields() {
			if unset[flagName] {
				p[field] = nil
			}
		}
		if len(f.tags) > 0 || len(f.untags) > 0 {
			cur, err := cl.GetGroup(ctx, name)
			if err != nil {
				return notFoundOr(err, cmd, "group", name, "read group "+name)
			}
			p["tags"] = tagsValue(editTags(cur.Tags, f.tags, f.untags))
			rev = cur.Revision
		}
		if unset["tags"] {
			p["tags"] = nil
		}
		if len(p) == 0 {
			return usagef(cmd, "nothing to change: give a flag such as --image, --tag or --unset (see 'herd help group set')")
		}
		_, err := cl.PatchGroup(ctx, name, p, rev)
		if rev != 0 && client.IsStatus(err, 412) && attempt < 3 {
			continue
		}
		if err != nil {
			return notFoundOr(err, cmd, "group", name, "change group "+name)
		}
		fmt.Fprintf(a.stdout, "updated group %s: %s\n", name, strings.Join(sortedKeys(p), ", "))
		return nil
	}
}
