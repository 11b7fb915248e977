package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// auditWait is how long one follow request waits for new events; the API
// allows up to 60s and the client times out at 90s.
const auditWait = 25 * time.Second

func (a *app) auditCommand() *command {
	return &command{
		name: "audit", maxArgs: 0, summary: "show who changed what, or follow changes as they happen",
		help: `Shows audit events, oldest first: every change to the inventory and
accounts, and every login. --since and --until take an RFC 3339 time
(2026-01-02T15:04:05Z) or a duration ago (90m, 24h). With -f the command
keeps running and prints new events as they are recorded, until
interrupted. --json prints a page ({"items": [...]}), or with -f one
event per line.`,
		flags: func(fs *flag.FlagSet) action {
			var o auditOptions
			fs.StringVar(&o.q.Since, "since", "24h", "events at or after `TIME`")
			fs.StringVar(&o.q.Until, "until", "", "events at or before `TIME`")
			fs.StringVar(&o.q.User, "user", "", "only events by `USER`")
			fs.StringVar(&o.q.Kind, "kind", "", "only events about `KIND` (node, group, device, connection, user, token, session)")
			fs.StringVar(&o.q.Method, "method", "", "only events of `METHOD` (create, update, delete, login)")
			fs.StringVar(&o.q.Ref, "ref", "", "only events referring to `REF` (node/node001 or node001)")
			fs.IntVar(&o.limit, "limit", 100, "show at most the `N` newest events")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			fs.BoolVar(&o.follow, "f", false, "follow: keep printing new events until interrupted")
			fs.BoolVar(&o.follow, "follow", false, "same as -f")
			return func(ctx context.Context, _ []string) error { return a.audit(ctx, o) }
		},
	}
}

type auditOptions struct {
	q      client.AuditQuery
	limit  int
	json   bool
	follow bool
}

func (a *app) audit(ctx context.Context, o auditOptions) error {
	if o.limit < 1 {
		return usagef("audit", "--limit must be at least 1")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	// Take the stream position before reading the history, so that no
	// event falls between the two; events in both are printed once.
	var after string
	if o.follow {
		tip, err := cl.FollowAudit(ctx, client.AuditQuery{}, "", time.Millisecond)
		if err != nil {
			return fail("follow the audit log", err)
		}
		after = tip.After
	}
	events, more, err := a.auditHistory(ctx, cl, o)
	if err != nil {
		return err
	}
	printed := map[string]bool{}
	for _, ev := range events {
		printed[ev.ID] = true
	}
	switch {
	case o.follow && o.json:
		for _, ev := range events {
			if err := writeJSONLine(a.stdout, ev); err != nil {
				return err
			}
		}
	case o.json:
		return writeJSON(a.stdout, model.Page[model.AuditEvent]{Items: events, Total: len(events)})
	case o.follow:
		fmt.Fprint(a.stdout, auditLine("TIME", "USER", "HOST", "ACTION", "MESSAGE"))
		for _, ev := range events {
			fmt.Fprint(a.stdout, auditEventLine(ev))
		}
	default:
		if len(events) == 0 {
			fmt.Fprintln(a.stderr, "No audit events match.")
			return nil
		}
		t := newTable(a.stdout, "TIME", "USER", "HOST", "ACTION", "MESSAGE")
		for _, ev := range events {
			t.row(auditCells(ev)...)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if more && !o.json {
		fmt.Fprintf(a.stderr, "(the newest %d events; use --limit or --since for more)\n", o.limit)
	}
	if !o.follow {
		return nil
	}
	return a.followAudit(ctx, cl, o, after, printed)
}

// auditHistory reads up to limit of the newest matching events and returns
// them oldest first; more is true when older ones were left out.
func (a *app) auditHistory(ctx context.Context, cl *client.Client, o auditOptions) ([]model.AuditEvent, bool, error) {
	var events []model.AuditEvent
	q := o.q
	for len(events) < o.limit {
		q.Limit = min(o.limit-len(events), 1000)
		page, err := cl.Audit(ctx, q)
		if err != nil {
			return nil, false, fail("read the audit log", err)
		}
		events = append(events, page.Items...)
		if page.Next == "" {
			slices.Reverse(events)
			return events, false, nil
		}
		q.Cursor = page.Next
	}
	slices.Reverse(events)
	return events, true, nil
}

// followAudit prints events after the stream position until ctx ends. A
// lost connection is retried; a refusal from the API ends it.
func (a *app) followAudit(ctx context.Context, cl *client.Client, o auditOptions, after string, printed map[string]bool) error {
	q := o.q
	q.Since, q.Until, q.Limit, q.Cursor = "", "", 0, ""
	warned := false
	for {
		reply, err := cl.FollowAudit(ctx, q, after, auditWait)
		if ctx.Err() != nil {
			return nil // interrupted: following ends normally
		}
		if err != nil {
			var p *client.Error
			if errors.As(err, &p) {
				return fail("follow the audit log", err)
			}
			if !warned {
				a.report(fail("follow the audit log (retrying)", err))
				warned = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
			continue
		}
		warned = false
		after = reply.After
		for _, ev := range reply.Items {
			if printed[ev.ID] {
				continue
			}
			if o.json {
				if err := writeJSONLine(a.stdout, ev); err != nil {
					return err
				}
				continue
			}
			fmt.Fprint(a.stdout, auditEventLine(ev))
		}
	}
}

func auditCells(ev model.AuditEvent) []string {
	msg := ev.Msg
	keys := make([]string, 0, len(ev.Extras))
	for k := range ev.Extras {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		msg += fmt.Sprintf(" [%s: %s]", strings.ReplaceAll(k, "_", " "), ev.Extras[k])
	}
	return []string{ev.Time.Local().Format(time.DateTime), ev.User, ev.Host, ev.Kind + " " + ev.Method, msg}
}

// auditLine formats a followed event with fixed column widths, since a
// stream cannot be aligned after the fact.
func auditLine(cells ...string) string {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	return fmt.Sprintf("%-19s  %-10s  %-15s  %-18s  %s\n", cells[0], cells[1], cells[2], cells[3], cells[4])
}

func auditEventLine(ev model.AuditEvent) string { return auditLine(auditCells(ev)...) }

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
