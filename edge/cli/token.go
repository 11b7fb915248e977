package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) tokenCommand() *command {
	return &command{
		name: "token", summary: "manage your API tokens for scripts",
		help: `Manages your API tokens. A script uses one by setting HERD_TOKEN; it acts
with your account's role.`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list your API tokens",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.tokenList(ctx, *asJSON) }
				},
			},
			{
				name: "create", args: "NAME", minArgs: 1, maxArgs: 1, summary: "create an API token",
				help: `Creates an API token named for what it is for and prints its secret on
stdout. The secret is shown this once: herd keeps only a hash of it.`,
				flags: func(fs *flag.FlagSet) action {
					ttl := fs.Duration("ttl", 0, "the token expires after `DURATION` such as 720h (default never)")
					asJSON := fs.Bool("json", false, "print JSON, secret included")
					return func(ctx context.Context, args []string) error { return a.tokenCreate(ctx, args[0], *ttl, *asJSON) }
				},
			},
			{
				name: "delete", aliases: []string{"rm", "revoke"}, args: "ID", minArgs: 1, maxArgs: 1,
				summary: "revoke an API token",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteToken(ctx, args[0]); err != nil {
							return notFoundOr(err, "token delete", "token", args[0], "revoke token "+args[0])
						}
						fmt.Fprintf(a.stdout, "revoked token %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

func (a *app) tokenList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	tokens, err := cl.ListTokens(ctx)
	if err != nil {
		return fail("list tokens", err)
	}
	if tokens == nil {
		tokens = []model.Token{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Token]{Items: tokens, Total: len(tokens)})
	}
	if len(tokens) == 0 {
		fmt.Fprintln(a.stderr, "No API tokens.")
		return nil
	}
	t := newTable(a.stdout, "ID", "NAME", "USER", "CREATED", "EXPIRES")
	for _, tk := range tokens {
		expires := formatTime(tk.Expires)
		if expires == "" {
			expires = "never"
		}
		t.row(tk.ID, tk.Name, tk.User, formatTime(tk.Created), expires)
	}
	return t.flush()
}

func (a *app) tokenCreate(ctx context.Context, name string, ttl time.Duration, asJSON bool) error {
	if ttl < 0 {
		return usagef("token create", "--ttl must be positive")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	req := model.NewToken{Name: name}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	tk, err := cl.CreateToken(ctx, req)
	if err != nil {
		return fail("create token "+name, err)
	}
	if asJSON {
		return writeJSON(a.stdout, tk)
	}
	expires := "never expires"
	if !tk.Expires.IsZero() {
		expires = "expires " + formatTime(tk.Expires)
	}
	fmt.Fprintf(a.stderr, "Created token %s (%s), which %s. Copy the secret now: it is not shown again.\n", tk.ID, tk.Name, expires)
	fmt.Fprintln(a.stdout, tk.Secret)
	return nil
}
