// Package cli is the herd admin command line: a thin client of the REST API
// through functions/client. Each noun has its own file (node.go, group.go,
// device.go, connect.go, boot.go, audit.go, login.go, user.go, token.go;
// discovered.go holds the node verbs about unassigned machines); this file
// holds the command tree and the dispatcher, output.go the tables, errors
// and progress shared by all of them.
//
// Everything the commands touch comes in through Main — arguments, standard
// streams and environment lookups — so tests run them hermetically.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// DefaultServer is the herd API used when nothing else names one.
const DefaultServer = "http://127.0.0.1:8080"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// app is one run of the command line.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	in     *bufio.Reader // stdin, buffered once for every prompt
	server string        // the global --server flag
}

// Main runs the herd command line with args (without the program name) and
// returns the process exit code: 0 on success, 1 when something failed, 2
// when the command was used wrongly.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	err := a.run(ctx, args)
	if err == nil {
		return exitOK
	}
	a.report(err)
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}

// command is one node of the command tree: a noun holding verbs, a verb,
// or both (connect is an action and holds list and delete).
type command struct {
	name    string
	aliases []string
	args    string // positional arguments for the usage line, e.g. "RANGE"
	minArgs int
	maxArgs int    // -1: any number
	summary string // one line, for command lists
	help    string // what -h prints after the usage line
	// flags declares the command's flags on fs and returns the action to
	// run once they are parsed; nil for a noun that only holds verbs.
	flags func(fs *flag.FlagSet) action
	subs  []*command
}

// action runs a command with its positional arguments.
type action func(ctx context.Context, args []string) error

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name || slices.Contains(s.aliases, name) {
			return s
		}
	}
	return nil
}

func (c *command) subNames() []string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return names
}

// root builds the command tree.
func (a *app) root() *command {
	return &command{
		name:    "herd",
		summary: "manage the nodes of an HPC cluster",
		subs: []*command{
			a.loginCommand(), a.logoutCommand(), a.whoamiCommand(),
			a.nodeCommand(), a.groupCommand(), a.deviceCommand(), a.connectCommand(),
			a.bootCommandWithConsole(), a.auditCommand(), a.userCommand(), a.tokenCommand(),
			a.layoutCommand(),
			a.pluginCommand(),
			a.pkiCommand(),
			a.powerCommand(), a.secretCommand(), a.imageCommand(), a.bootenvCommand(),
			a.helpCommand(),
		},
	}
}

func (a *app) run(ctx context.Context, args []string) error {
	root := a.root()
	fs := flag.NewFlagSet("herd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.server, "server", "", "herd API `URL` (default $HERD_SERVER, the server logged in to, or "+DefaultServer+")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.printHelp(a.stdout, root, nil)
			return nil
		}
		return &usageError{msg: flagProblem(err, fs), hint: "herd help"}
	}
	args = fs.Args()
	if len(args) == 0 {
		a.printHelp(a.stderr, root, nil)
		return &usageError{msg: "no command given", hint: "herd help"}
	}
	return a.dispatch(ctx, root, nil, args)
}

// dispatch walks args down the command tree and runs the command found.
func (a *app) dispatch(ctx context.Context, cmd *command, path, args []string) error {
	if len(args) > 0 {
		if sub := cmd.sub(args[0]); sub != nil {
			return a.dispatch(ctx, sub, append(path, sub.name), args[1:])
		}
	}
	name := strings.Join(path, " ")
	if cmd.flags == nil {
		switch {
		case len(args) == 0:
			a.printHelp(a.stderr, cmd, path)
			return &usageError{msg: fmt.Sprintf("%s: missing command (one of %s)", name, strings.Join(cmd.subNames(), ", "))}
		case isHelpFlag(args[0]):
			a.printHelp(a.stdout, cmd, path)
			return nil
		}
		return unknownCommand(path, args[0], cmd.subNames())
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	act := cmd.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		a.printHelp(a.stdout, cmd, path)
		return nil
	}
	hint := "herd help " + name
	if err != nil {
		return &usageError{msg: name + ": " + flagProblem(err, fs), hint: hint}
	}
	if len(pos) < cmd.minArgs {
		if len(pos) > 0 && len(cmd.subs) > 0 && closest(pos[0], cmd.subNames()) != "" {
			return unknownCommand(path, pos[0], cmd.subNames())
		}
		if len(pos) == 0 && len(cmd.subs) > 0 {
			return &usageError{msg: fmt.Sprintf("%s: missing arguments %s or a command (%s)", name, cmd.args, strings.Join(cmd.subNames(), ", ")), hint: hint}
		}
		return &usageError{msg: fmt.Sprintf("%s: missing arguments: want %s", name, cmd.args), hint: hint}
	}
	if cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs {
		if cmd.maxArgs == 0 {
			return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", name, pos[0]), hint: hint}
		}
		return &usageError{msg: fmt.Sprintf("%s: too many arguments: want %s, got %s", name, cmd.args, strings.Join(pos, " ")), hint: hint}
	}
	return act(ctx, pos)
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "--help" || s == "-help"
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, as admins type them (herd node list node[1-4] --json); a "--"
// ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagProblem rewrites the flag package's errors in the CLI's words and
// suggests the closest flag for a misspelt one.
func flagProblem(err error, fs *flag.FlagSet) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		var known []string
		fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
		msg = "unknown flag " + flagName(name)
		if s := closest(name, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", flagName(s))
		}
		return msg
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return flagName(name) + " needs a value"
	}
	// invalid value "x" for flag -f: reason
	if strings.HasPrefix(msg, "invalid ") {
		if i := strings.Index(msg, " for flag -"); i >= 0 {
			rest := msg[i+len(" for flag -"):]
			name, reason, _ := strings.Cut(rest, ": ")
			return flagName(name) + ": " + reason
		}
	}
	return msg
}

// flagName spells a flag the way the help shows it.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// unknownCommand is the error for a command word that is not in the tree.
func unknownCommand(path []string, word string, known []string) error {
	where := "herd"
	if len(path) > 0 {
		where = "herd " + strings.Join(path, " ")
	}
	msg := fmt.Sprintf("unknown command %q", word)
	if len(path) > 0 {
		msg = strings.Join(path, " ") + ": " + msg
	}
	if s := closest(word, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &usageError{msg: msg, hint: strings.Replace(where, "herd", "herd help", 1)}
}

// closest returns the known word a user most likely meant by word, or ""
// when none is close: a word it starts, or one within a small edit
// distance.
func closest(word string, known []string) string {
	best, bestDist := "", 0
	limit := max(1, min(len(word)/3+1, 3))
	for _, k := range known {
		d := editDistance(strings.ToLower(word), k)
		if len(word) >= 2 && strings.HasPrefix(k, word) {
			d = 0
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
