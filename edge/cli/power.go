package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

func (a *app) powerCommand() *command {
	actions := []struct {
		action  model.PowerAction
		summary string
	}{
		{model.PowerOn, "power nodes on"},
		{model.PowerOff, "power nodes off, hard"},
		{model.PowerCycle, "power nodes off, wait, and on again"},
		{model.PowerReset, "hard-reset nodes without removing power"},
		{model.PowerSoft, "ask the nodes' operating systems to shut down (ACPI)"},
		{model.PowerStatus, "show whether nodes are on or off"},
	}
	cmd := &command{
		name: "power", summary: "power nodes on, off, cycle or reset, or read their power",
		help: `Switches nodes through their BMCs (IPMI or Redfish) or through the PDU
outlets that feed their power supplies. herd records the request as a job
and the edge carries it out; the command follows the job with a progress
bar, then prints one line per node and a summary, and exits with status 1
if any node failed.

Each node uses its own power method (set on it or its group, else ipmi)
unless --method names one for all. Through a PDU, a node is on when any
of its outlets is; off switches all of them; cycle is off, --cycle-wait,
then on. An off, cycle or reset through an outlet that also feeds nodes
outside the noderange is refused, naming them, unless --force is given.`,
	}
	for _, act := range actions {
		cmd.subs = append(cmd.subs, &command{
			name: string(act.action), args: "NODERANGE", minArgs: 1, maxArgs: 1, summary: act.summary,
			flags: func(fs *flag.FlagSet) action {
				f := powerFlags{}
				fs.StringVar(&f.method, "method", "", "switch every node through `METHOD`: ipmi, redfish or pdu (default each node's own)")
				fs.BoolVar(&f.force, "force", false, "switch PDU outlets that also feed nodes outside the noderange")
				fs.StringVar(&f.cycleWait, "cycle-wait", "", "how long a PDU cycle keeps outlets off, e.g. 10s (default 5s)")
				fs.BoolVar(&f.asJSON, "json", false, "print the job as JSON")
				fs.BoolVar(&f.noWait, "no-wait", false, "queue the job and print its id without following it")
				return func(ctx context.Context, args []string) error { return a.power(ctx, act.action, args[0], f) }
			},
		})
	}
	cmd.subs = append(cmd.subs,
		&command{
			name: "show", args: "JOB", minArgs: 1, maxArgs: 1, summary: "show a power job's results, following it until done",
			flags: func(fs *flag.FlagSet) action {
				asJSON := fs.Bool("json", false, "print the job as JSON")
				noWait := fs.Bool("no-wait", false, "show the job as it is now")
				return func(ctx context.Context, args []string) error {
					return a.powerShow(ctx, args[0], powerFlags{asJSON: *asJSON, noWait: *noWait})
				}
			},
		},
		&command{
			name: "jobs", aliases: []string{"list", "ls"}, maxArgs: 0, summary: "list recent power jobs, newest first",
			flags: func(fs *flag.FlagSet) action {
				limit := fs.Int("limit", 20, "show at most the `N` newest jobs")
				asJSON := fs.Bool("json", false, "print JSON")
				return func(ctx context.Context, _ []string) error { return a.powerJobs(ctx, *limit, *asJSON) }
			},
		})
	return cmd
}

// powerFlags are the flags of the power actions.
type powerFlags struct {
	method, cycleWait string
	force             bool
	asJSON, noWait    bool
}

func (a *app) power(ctx context.Context, act model.PowerAction, rng string, f powerFlags) error {
	cmd := "power " + string(act)
	if _, err := noderange.Parse(rng); err != nil {
		return rangeError(cmd, err)
	}
	switch model.PowerMethod(f.method) {
	case "", model.PowerIPMI, model.PowerRedfish, model.PowerPDU:
	default:
		return usagef(cmd, "--method %q is not a power method (want ipmi, redfish or pdu)", f.method)
	}
	req := model.PowerRequest{Action: act, Nodes: model.NodeSelection{rng}, Method: model.PowerMethod(f.method), Force: f.force, CycleWait: f.cycleWait}
	if _, err := req.CycleWaitDuration(); err != nil {
		return usagef(cmd, "--cycle-wait: %v", err)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	job, err := cl.CreatePowerJob(ctx, req, idempotencyKey())
	if err != nil {
		return fail(cmd+" "+rng, err)
	}
	if f.noWait {
		if f.asJSON {
			return writeJSON(a.stdout, job)
		}
		fmt.Fprintf(a.stdout, "queued power job %s for %s; follow it with 'herd power show %s'\n", job.ID, plural(len(job.Nodes), "node"), job.ID)
		return nil
	}
	return a.followPower(ctx, cl, job, f.asJSON)
}

// idempotencyKey makes a job request safe to send again.
func idempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *app) powerShow(ctx context.Context, id string, f powerFlags) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	job, err := cl.PowerJob(ctx, id)
	if err != nil {
		return notFoundOr(err, "power show", "power job", id, "read power job "+id)
	}
	if f.noWait {
		return a.printPowerJob(job, f.asJSON)
	}
	return a.followPower(ctx, cl, job, f.asJSON)
}

// followPower shows a progress bar while the job runs, then its results.
func (a *app) followPower(ctx context.Context, cl *client.Client, job model.PowerJob, asJSON bool) error {
	bar := a.newProgress("power "+string(job.Action), job.Counts.Total)
	seen := map[string]bool{}
	step := func(j model.PowerJob) {
		for _, r := range j.Results {
			if r.Status.Final() && !seen[r.Node] {
				seen[r.Node] = true
				bar.step(r.Node)
			}
		}
	}
	step(job)
	done, err := cl.FollowPowerJob(ctx, job.ID, step)
	bar.clear()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following power job %s; it goes on: 'herd power show %s' shows it", job.ID, job.ID)
		}
		return fail("follow power job "+job.ID, err)
	}
	return a.printPowerJob(done, asJSON)
}

// printPowerJob prints one line per node and a summary, and fails when a
// node failed.
func (a *app) printPowerJob(job model.PowerJob, asJSON bool) error {
	if asJSON {
		if err := writeJSON(a.stdout, job); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "NODE", "STATE", "METHOD", "TIME", "ERROR")
		for _, r := range job.Results {
			state := string(r.Status)
			if r.Status.Final() {
				state = string(r.State)
				if state == "" {
					state = string(model.PowerStateUnknown)
				}
			}
			took := ""
			if r.TookMS > 0 {
				took = strconv.FormatFloat(float64(r.TookMS)/1000, 'f', 1, 64) + "s"
			}
			t.row(r.Node, state, string(r.Method), took, r.Error)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, powerSummary(job.Counts))
	}
	if job.Counts.Failed > 0 {
		return reported{errors.New(powerSummary(job.Counts))}
	}
	return nil
}

// powerSummary is "998 ok, 2 failed", with what is not done yet.
func powerSummary(c model.PowerCounts) string {
	s := fmt.Sprintf("%d ok, %d failed", c.OK, c.Failed)
	if n := c.Queued + c.Running; n > 0 {
		s += fmt.Sprintf(", %d not done yet", n)
	}
	return s
}

func (a *app) powerJobs(ctx context.Context, limit int, asJSON bool) error {
	if limit < 1 || limit > 1000 {
		return usagef("power jobs", "--limit must be from 1 to 1000")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	jobs, err := cl.PowerJobs(ctx, limit)
	if err != nil {
		return fail("list power jobs", err)
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.PowerJob]{Items: jobs, Total: len(jobs)})
	}
	t := newTable(a.stdout, "JOB", "CREATED", "USER", "ACTION", "NODES", "STATE", "OK", "FAILED")
	for _, j := range jobs {
		t.row(j.ID, j.Created.Local().Format(time.DateTime), j.User, string(j.Action), noderange.Fold(j.Nodes), string(j.State),
			strconv.Itoa(j.Counts.OK), strconv.Itoa(j.Counts.Failed))
	}
	return t.flush()
}
