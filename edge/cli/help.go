package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

func (a *app) helpCommand() *command {
	return &command{
		name: "help", args: "[COMMAND...]", maxArgs: -1,
		summary: "show help for herd or one of its commands",
		help:    "Shows what a command does and its flags. Every command also takes -h.",
		flags: func(fs *flag.FlagSet) action {
			return func(ctx context.Context, args []string) error {
				root := a.root()
				cmd, path := root, []string(nil)
				for _, word := range args {
					sub := cmd.sub(word)
					if sub == nil {
						return unknownCommand(path, word, cmd.subNames())
					}
					cmd, path = sub, append(path, sub.name)
				}
				a.printHelp(a.stdout, cmd, path)
				return nil
			}
		},
	}
}

// printHelp writes the usage of cmd, reached by path, to w.
func (a *app) printHelp(w io.Writer, cmd *command, path []string) {
	if len(path) == 0 {
		a.printRootHelp(w, cmd)
		return
	}
	name := "herd " + strings.Join(path, " ")
	var usage []string
	if cmd.flags != nil {
		line := name
		if cmd.args != "" {
			line += " " + cmd.args
		}
		usage = append(usage, line+" [flags]")
	}
	if len(cmd.subs) > 0 {
		usage = append(usage, name+" <command> [arguments]")
	}
	fmt.Fprintf(w, "Usage: %s\n", strings.Join(usage, "\n       "))
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	} else if cmd.summary != "" {
		fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(cmd.summary[:1]), cmd.summary[1:])
	}
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, s := range cmd.subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'herd help %s <command>' for the flags of a command.\n", strings.Join(path, " "))
	}
	if cmd.flags != nil {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		cmd.flags(fs)
		printFlags(w, fs)
	}
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		// The placeholder names the value in the left column; in the
		// sentence it reads as an ordinary word ("BMC address").
		if !slices.Contains([]string{"URL", "MAC", "ID", "N"}, placeholder) {
			usage = strings.Replace(usage, placeholder, strings.ToLower(placeholder), 1)
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			placeholder = ""
		}
		left := flagName(f.Name)
		if placeholder != "" {
			left += " " + placeholder
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, usage)
	})
	tw.Flush()
}

func (a *app) printRootHelp(w io.Writer, root *command) {
	fmt.Fprintf(w, `herd manages the nodes of an HPC cluster through the herd API.

Usage: herd [--server URL] <command> [arguments]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, s := range root.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, `
Node ranges name many nodes at once: node[001-128], rack[1-2]n[01-04],
@gpu (a group), node[01-10],-node05 (exclusions apply left to right).

New machines: one that boots from the network with a MAC no node has is
listed by 'herd node unassigned'; 'herd node assign MAC NODE' makes it
that node (--create to add the node too), and 'herd boot watch NODE'
follows its boot.

Environment:
  HERD_SERVER   herd API URL (the --server flag wins; default: the server
                logged in to, else %s)
  HERD_TOKEN    API token to use instead of the stored login session
  HERD_CONFIG   credentials file (default ~/.config/herd/credentials)

Run 'herd help <command>' or 'herd <command> -h' for more.
`, DefaultServer)
}
