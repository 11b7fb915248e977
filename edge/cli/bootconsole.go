package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// consoleWait is how long one console read waits for output while
// following.
const consoleWait = 25 * time.Second

// bootCommandWithConsole is the boot noun with its console verb.
func (a *app) bootCommandWithConsole() *command {
	c := a.bootCommand()
	c.subs = append(c.subs, &command{
		name: "console", args: "SESSION|NODE", minArgs: 1, maxArgs: 1,
		summary: "print what a node printed while it booted",
		help: `Prints the console output of a boot session: given a node, of its newest
session. -f keeps following the output as it comes until the session is
done or failed (Ctrl-C stops). Once a session ended its console is
archived and stays readable after the session expired.`,
		flags: func(fs *flag.FlagSet) action {
			follow := fs.Bool("f", false, "follow the output until the session ends")
			return func(ctx context.Context, args []string) error { return a.bootConsole(ctx, args[0], *follow) }
		},
	})
	return c
}

// consoleSession finds the session a console command means: a whole id,
// a node's newest session, or the recent session an id prefix names.
func consoleSession(ctx context.Context, cl *client.Client, cmd, arg string) (string, error) {
	if model.ValidBootSessionID(arg) {
		return arg, nil
	}
	if model.CheckName(arg) == nil {
		recent, err := cl.BootSessions(ctx, arg, 1)
		if err != nil {
			return "", fail("list boot sessions of "+arg, err)
		}
		if len(recent) == 1 {
			return recent[0].ID, nil
		}
		if !isHex(arg) || len(arg) < 4 {
			return "", fmt.Errorf("%s: node %s has no recent boot session", cmd, arg)
		}
	}
	return resolveSession(ctx, cl, cmd, arg)
}

func (a *app) bootConsole(ctx context.Context, arg string, follow bool) error {
	const cmd = "boot console"
	cl, err := a.client()
	if err != nil {
		return err
	}
	id, err := consoleSession(ctx, cl, cmd, arg)
	if err != nil {
		return err
	}
	next := ""
	for {
		wait := time.Duration(0)
		if follow {
			wait = consoleWait
		}
		c, err := cl.Console(ctx, id, next, wait)
		if client.IsStatus(err, 404) {
			return fmt.Errorf("%s: boot session %s does not exist and left no console", cmd, id)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fail("read console of boot session "+id, err)
		}
		if _, err := a.stdout.Write(c.Data); err != nil {
			return err
		}
		next = c.Next
		if c.Ended || (!follow && len(c.Data) == 0) {
			return nil
		}
	}
}
