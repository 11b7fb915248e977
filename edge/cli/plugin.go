package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) pluginCommand() *command {
	return &command{
		name: "plugin", summary: "configure what bootenv sets up on every node",
		help: `Config plugins run on every node at each boot, after the image sync:
` + strings.Join(model.Plugins(), ", ") + `. Each has key=value settings and is
enabled or not, for the whole cluster. "sync" holds the image sync policy:
verify (unsure, never, always), preserve (comma-separated globs kept
though the image lacks them) and check_every_boot (true or false).`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list plugins and whether they run",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.pluginList(ctx, *asJSON) }
				},
			},
			{
				name: "show", aliases: []string{"get"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "show a plugin's settings",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.pluginShow(ctx, args[0], *asJSON) }
				},
			},
			{
				name: "set", args: "NAME [KEY=VALUE...]", minArgs: 1, maxArgs: -1,
				summary: "change a plugin's settings, or turn it on or off",
				help: `Sets the given keys (KEY= with nothing after sets an empty value),
removes those named by --unset, and turns the plugin on or off with
--enable or --disable. Other keys stay as they are.`,
				flags: func(fs *flag.FlagSet) action {
					enable := fs.Bool("enable", false, "run the plugin on every node")
					disable := fs.Bool("disable", false, "do not run the plugin")
					var unset listFlag
					fs.Var(&unset, "unset", "remove `KEY` (repeatable, or comma-separated)")
					return func(ctx context.Context, args []string) error {
						return a.pluginSet(ctx, args[0], args[1:], *enable, *disable, unset)
					}
				},
			},
		},
	}
}

func (a *app) pluginList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	all, err := cl.Plugins(ctx)
	if err != nil {
		return fail("list plugins", err)
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.PluginSettings]{Items: all, Total: len(all)})
	}
	t := newTable(a.stdout, "NAME", "ENABLED", "SETTINGS")
	for _, p := range all {
		enabled := "no"
		if p.Enabled {
			enabled = "yes"
		}
		if p.Name == model.PluginSync {
			enabled = "-"
		}
		t.row(p.Name, enabled, settingsLine(p.Settings))
	}
	return t.flush()
}

func settingsLine(s map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, k+"="+s[k])
	}
	return strings.Join(parts, " ")
}

func (a *app) pluginShow(ctx context.Context, name string, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	p, err := cl.Plugin(ctx, name)
	if err != nil {
		return notFoundOr(err, "plugin show", "plugin", name, "read plugin "+name)
	}
	if asJSON {
		return writeJSON(a.stdout, p)
	}
	d := newDetails(a.stdout)
	d.add("Name", p.Name)
	d.add("Enabled", fmt.Sprint(p.Enabled))
	for _, k := range slices.Sorted(maps.Keys(p.Settings)) {
		d.add(k, p.Settings[k])
	}
	d.add("Revision", fmt.Sprint(p.Revision))
	d.add("Updated", formatTime(p.Updated))
	return d.flush()
}

// EditPluginSettings applies KEY=VALUE pairs and removals to settings.
func EditPluginSettings(cur map[string]string, pairs, unset []string) (map[string]string, error) {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		out[k] = v
	}
	for _, k := range unset {
		delete(out, k)
	}
	return out, nil
}

func (a *app) pluginSet(ctx context.Context, name string, pairs []string, enable, disable bool, unset []string) error {
	const cmd = "plugin set"
	if enable && disable {
		return usagef(cmd, "--enable and --disable exclude each other")
	}
	if len(pairs) == 0 && len(unset) == 0 && !enable && !disable {
		return usagef(cmd, "nothing to change: give KEY=VALUE, --unset KEY, --enable or --disable")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	p, err := cl.Plugin(ctx, name)
	if err != nil {
		return notFoundOr(err, cmd, "plugin", name, "read plugin "+name)
	}
	p.Settings, err = EditPluginSettings(p.Settings, pairs, unset)
	if err != nil {
		return usagef(cmd, "%v", err)
	}
	if enable || disable {
		p.Enabled = enable
	}
	if _, err := cl.PutPlugin(ctx, p, p.Revision); err != nil {
		return fail("set plugin "+name, err)
	}
	fmt.Fprintf(a.stdout, "set plugin %s\n", name)
	return nil
}
