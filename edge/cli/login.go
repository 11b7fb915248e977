package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/herd-hpc/herd/functions/client"
)

func (a *app) loginCommand() *command {
	return &command{
		name: "login", summary: "log in and keep the session for later commands",
		help: `Logs in to a herd server and stores the server and session token in
$HERD_CONFIG (default ~/.config/herd/credentials, readable by you only).

Without --password-stdin the password is asked for on the terminal.
Scripts should rather use an API token in HERD_TOKEN (see 'herd token').`,
		flags: func(fs *flag.FlagSet) action {
			server := fs.String("server", "", "herd API `URL` (default $HERD_SERVER, the server logged in to, or "+DefaultServer+")")
			user := fs.String("user", "", "account `NAME` (default the user logged in before)")
			pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
			return func(ctx context.Context, _ []string) error {
				return a.login(ctx, *server, *user, *pwStdin)
			}
		},
	}
}

func (a *app) login(ctx context.Context, serverFlag, user string, pwStdin bool) error {
	creds, path, err := a.loadCredentials()
	if err != nil {
		return err
	}
	server, err := a.serverURL(serverFlag, creds)
	if err != nil {
		return err
	}
	terminal := isTerminal(a.stdin)
	if user == "" && sameServer(creds.Server, server) {
		user = creds.User
	}
	if user == "" {
		if !terminal || pwStdin {
			return usagef("login", "--user is required when stdin is not a terminal")
		}
		if user, err = a.prompt(ctx, "User: "); err != nil {
			return fail("login", err)
		}
		if user == "" {
			return usagef("login", "no user name given")
		}
	}
	var password string
	switch {
	case pwStdin:
		if password, err = a.readLine(ctx); err != nil {
			return fail("login: read password from stdin", err)
		}
	case terminal:
		if password, err = a.promptSecret(ctx, fmt.Sprintf("Password for %s at %s: ", user, server)); err != nil {
			return fail("login: read password", err)
		}
	default:
		return usagef("login", "stdin is not a terminal: pipe the password in with --password-stdin")
	}
	if password == "" {
		return usagef("login", "empty password")
	}
	reply, err := client.New(server, "", nil).Login(ctx, user, password)
	if err != nil {
		return fail(fmt.Sprintf("log in to %s as %s", server, user), err)
	}
	creds = credentials{Server: server, User: reply.User.Name, Token: reply.Token, Expires: reply.Expires}
	if err := saveCredentials(path, creds); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Logged in to %s as %s (%s); the session lasts until %s.\n",
		server, reply.User.Name, reply.User.Role, reply.Expires.Local().Format(time.DateTime))
	return nil
}

func (a *app) logoutCommand() *command {
	return &command{
		name: "logout", summary: "end the stored session",
		help: "Ends the session stored by 'herd login' on the server and forgets its token.",
		flags: func(fs *flag.FlagSet) action {
			return func(ctx context.Context, _ []string) error {
				creds, path, err := a.loadCredentials()
				if err != nil {
					return err
				}
				if creds.Token == "" {
					fmt.Fprintln(a.stdout, "Not logged in.")
					return nil
				}
				err = client.New(creds.Server, creds.Token, nil).Logout(ctx)
				if err != nil && !client.IsStatus(err, 401) {
					return fail("log out of "+creds.Server, err)
				}
				creds.Token, creds.Expires = "", time.Time{}
				if err := saveCredentials(path, creds); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Logged out of %s.\n", creds.Server)
				return nil
			}
		},
	}
}

func (a *app) whoamiCommand() *command {
	return &command{
		name: "whoami", summary: "show who herd commands run as",
		flags: func(fs *flag.FlagSet) action {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, _ []string) error {
				s, err := a.session()
				if err != nil {
					return err
				}
				u, err := client.New(s.server, s.token, nil).Whoami(ctx)
				if err != nil {
					return fail("ask "+s.server+" who you are", err)
				}
				if *asJSON {
					return writeJSON(a.stdout, u)
				}
				d := newDetails(a.stdout)
				d.add("User", u.Name)
				d.add("UID", fmt.Sprint(u.UID))
				d.add("Role", string(u.Role))
				d.add("Server", s.server)
				switch {
				case s.fromEnv:
					d.add("Credential", "API token from HERD_TOKEN")
				case !s.creds.Expires.IsZero():
					d.add("Credential", "session until "+s.creds.Expires.Local().Format(time.DateTime))
				}
				return d.flush()
			}
		},
	}
}
