package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) userCommand() *command {
	return &command{
		name: "user", summary: "manage the accounts that can log in",
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list accounts",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.userList(ctx, *asJSON) }
				},
			},
			{
				name: "add", args: "NAME", minArgs: 1, maxArgs: 1, summary: "add an account",
				help: `Adds an account. The password (at least 8 characters) is asked for on
the terminal, twice, unless --password-stdin reads it from stdin.`,
				flags: func(fs *flag.FlagSet) action {
					role := fs.String("role", string(model.RoleAdmin), "`ROLE`: admin (may change things) or readonly")
					pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
					return func(ctx context.Context, args []string) error { return a.userAdd(ctx, args[0], *role, *pwStdin) }
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "delete an account and its API tokens",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteUser(ctx, args[0]); err != nil {
							return notFoundOr(err, "user delete", "user", args[0], "delete user "+args[0])
						}
						fmt.Fprintf(a.stdout, "deleted user %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

func (a *app) userList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	users, err := cl.ListUsers(ctx)
	if err != nil {
		return fail("list users", err)
	}
	if users == nil {
		users = []model.User{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.User]{Items: users, Total: len(users)})
	}
	t := newTable(a.stdout, "NAME", "UID", "ROLE", "CREATED")
	for _, u := range users {
		t.row(u.Name, fmt.Sprint(u.UID), string(u.Role), formatTime(u.Created))
	}
	return t.flush()
}

func (a *app) userAdd(ctx context.Context, name, role string, pwStdin bool) error {
	const cmd = "user add"
	switch model.Role(role) {
	case model.RoleAdmin, model.RoleReadOnly:
	default:
		return usagef(cmd, "--role %q is not a role (want admin or readonly)", role)
	}
	var password string
	var err error
	switch {
	case pwStdin:
		if password, err = a.readLine(ctx); err != nil {
			return fail(cmd+": read password from stdin", err)
		}
	case isTerminal(a.stdin):
		if password, err = a.promptSecret(ctx, "Password for "+name+": "); err != nil {
			return fail(cmd+": read password", err)
		}
		again, err := a.promptSecret(ctx, "Again: ")
		if err != nil {
			return fail(cmd+": read password", err)
		}
		if again != password {
			return usagef(cmd, "the passwords differ")
		}
	default:
		return usagef(cmd, "stdin is not a terminal: pipe the password in with --password-stdin")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	u, err := cl.CreateUser(ctx, model.NewUser{Name: name, Role: model.Role(role), Password: password})
	if err != nil {
		return fail("add user "+name, err)
	}
	fmt.Fprintf(a.stdout, "added user %s (uid %d, %s)\n", u.Name, u.UID, u.Role)
	return nil
}
