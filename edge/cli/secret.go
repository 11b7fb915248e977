package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) secretCommand() *command {
	return &command{
		name: "secret", summary: "set, list and delete the passwords of BMCs and PDUs",
		help: `Secrets are the passwords herd logs into BMCs and PDUs with. A node's
BMC credential_ref or a device's credential_ref names one. herd never
shows a secret's value again: not in the API, the pages, logs or audit.`,
		subs: []*command{
			{
				name: "set", args: "NAME", minArgs: 1, maxArgs: 1, summary: "set a secret's value",
				help: `Asks for the value on the terminal without echoing it, twice; when
stdin is not a terminal, reads the value from it (one trailing newline
is dropped).`,
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error { return a.secretSet(ctx, args[0]) }
				},
			},
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list secrets (names only)",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.secretList(ctx, *asJSON) }
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "NAME", minArgs: 1, maxArgs: 1, summary: "delete a secret",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteSecret(ctx, args[0]); err != nil {
							return notFoundOr(err, "secret delete", "secret", args[0], "delete secret "+args[0])
						}
						fmt.Fprintf(a.stdout, "deleted secret %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

func (a *app) secretSet(ctx context.Context, name string) error {
	const cmd = "secret set"
	if err := model.CheckSecretName(name); err != nil {
		return usagef(cmd, "%v", err)
	}
	var value string
	if isTerminal(a.stdin) {
		v, err := a.promptSecret(ctx, "Value of secret "+name+": ")
		if err != nil {
			return fail(cmd, err)
		}
		again, err := a.promptSecret(ctx, "Again: ")
		if err != nil {
			return fail(cmd, err)
		}
		if v != again {
			return usagef(cmd, "the two values differ; nothing was set")
		}
		value = v
	} else {
		b, err := io.ReadAll(io.LimitReader(a.input(), model.MaxSecretLen+2))
		if err != nil {
			return fail(cmd+": read stdin", err)
		}
		value = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if value == "" {
		return usagef(cmd, "empty value; nothing was set")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if _, err := cl.SetSecret(ctx, name, value); err != nil {
		return fail("set secret "+name, err)
	}
	fmt.Fprintf(a.stdout, "secret %s set\n", name)
	return nil
}

func (a *app) secretList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	list, err := cl.Secrets(ctx)
	if err != nil {
		return fail("list secrets", err)
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.SecretInfo]{Items: list, Total: len(list)})
	}
	t := newTable(a.stdout, "NAME", "UPDATED", "BY")
	for _, s := range list {
		t.row(s.Name, s.Updated.Local().Format(time.DateTime), s.User)
	}
	return t.flush()
}
