package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// bootPoll is how often boot watch looks for a newer session of a node
// while the one it follows is quiet: a reboot shows within this time.
const bootPoll = 2 * time.Second

func (a *app) bootCommand() *command {
	return &command{
		name: "boot", summary: "list, show and follow the network boots of nodes",
		help: `Every network boot of a node is a boot session: herd sends iPXE the
node's boot script, then bootenv reports each step (plan, disks, image,
bootloader, ...) until the node runs its image. Sessions are kept for a
day by default.`,
		subs: []*command{
			{
				name: "sessions", aliases: []string{"list", "ls"}, args: "NODE", minArgs: 1, maxArgs: 1,
				summary: "list a node's recent boot sessions",
				help: `Lists a node's recent boot sessions, newest first. DURATION runs to the
last event of a session that ended (done or failed) and to now for one
that has not. --json prints a page ({"items": [...], "total": N}).`,
				flags: a.bootSessionsFlags,
			},
			{
				name: "show", aliases: []string{"get"}, args: "SESSION", minArgs: 1, maxArgs: 1,
				summary: "show a boot session and its timeline",
				help: `Shows one boot session and every event of its timeline, oldest first.
SESSION is the id boot sessions lists, or its first few hex digits when
they name one recent session. --json prints {"session": ..., "events": [...]}.`,
				flags: a.bootShowFlags,
			},
			{
				name: "watch", aliases: []string{"follow"}, args: "NODE|SESSION", minArgs: 1, maxArgs: 1,
				summary: "follow a node's boots, or one session, live",
				help: `Prints each event of a boot as it arrives. Given a node, it starts with
the events of the node's newest session and follows the node across
reboots until interrupted (Ctrl-C). Given a session id (32 hex digits),
it follows that session until it is done or failed, and exits with
status 1 if it failed. --json prints one {"session": ..., "event": ...}
object per line.`,
				flags: a.bootWatchFlags,
			},
		},
	}
}

func (a *app) bootSessionsFlags(fs *flag.FlagSet) action {
	limit := fs.Int("limit", 20, "show at most the `N` newest sessions")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, args []string) error {
		const cmd = "boot sessions"
		node := args[0]
		if err := model.CheckName(node); err != nil {
			return usagef(cmd, "%v", err)
		}
		if *limit < 1 || *limit > 1000 {
			return usagef(cmd, "--limit must be from 1 to 1000")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		// One more than asked tells whether older sessions were left out.
		sessions, err := cl.BootSessions(ctx, node, min(*limit+1, 1000))
		if err != nil {
			return fail("list boot sessions of "+node, err)
		}
		more := len(sessions) > *limit
		if more {
			sessions = sessions[:*limit]
		}
		if len(sessions) == 0 {
			// No sessions may mean no such node: say which.
			if err := a.nodeExists(ctx, cl, cmd, node); err != nil {
				return err
			}
		}
		if sessions == nil {
			sessions = []model.BootSession{}
		}
		if *asJSON {
			return writeJSON(a.stdout, model.Page[model.BootSession]{Items: sessions, Total: len(sessions)})
		}
		if len(sessions) == 0 {
			fmt.Fprintf(a.stderr, "No recent boot sessions of %s.\n", node)
			return nil
		}
		now := time.Now()
		t := newTable(a.stdout, "SESSION", "STARTED", "STATE", "STEP", "ARCH", "CLIENT", "DURATION", "REASON")
		for _, s := range sessions {
			t.row(s.ID, formatTime(s.Started), string(s.State), s.Step, model.ArchLabel(s.Arch, s.Platform, "/"), s.ClientAddr,
				model.ShortDuration(s.Took(now)), s.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if more {
			fmt.Fprintf(a.stderr, "(the newest %d sessions; use --limit for more)\n", *limit)
		}
		return nil
	}
}

// nodeExists returns an error saying so when node does not exist.
func (a *app) nodeExists(ctx context.Context, cl *client.Client, cmd, node string) error {
	_, err := cl.GetNode(ctx, node)
	if client.IsStatus(err, 404) {
		return fmt.Errorf("%s: node %s does not exist", cmd, node)
	}
	if err != nil {
		return fail("read node "+node, err)
	}
	return nil
}

func (a *app) bootShowFlags(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, args []string) error {
		const cmd = "boot show"
		cl, err := a.client()
		if err != nil {
			return err
		}
		id, err := resolveSession(ctx, cl, cmd, args[0])
		if err != nil {
			return err
		}
		d, err := cl.BootSession(ctx, id)
		if client.IsStatus(err, 404) {
			return fmt.Errorf("%s: boot session %s does not exist (sessions expire after a day)", cmd, id)
		}
		if err != nil {
			return fail("read boot session "+id, err)
		}
		if *asJSON {
			if d.Events == nil {
				d.Events = []model.BootEvent{}
			}
			return writeJSON(a.stdout, d)
		}
		return writeBootSession(a, d, time.Now())
	}
}

// resolveSession turns what the user typed into a session id: a whole id
// as it is, else the one recent session whose id starts with it.
func resolveSession(ctx context.Context, cl *client.Client, cmd, arg string) (string, error) {
	id := strings.ToLower(arg)
	if model.ValidBootSessionID(id) {
		return id, nil
	}
	if len(id) < 4 || len(id) > 32 || !isHex(id) {
		return "", usagef(cmd, "%q is not a boot session id (32 hex digits, or at least the first 4 of them)", arg)
	}
	recent, err := cl.BootSessions(ctx, "", 0)
	if err != nil {
		return "", fail("list boot sessions", err)
	}
	var found []string
	for _, s := range recent {
		if strings.HasPrefix(s.ID, id) {
			found = append(found, s.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: no recent boot session starts with %s", cmd, id)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %s could be %d sessions (%s, ...): give more digits", cmd, id, len(found), strings.Join(found[:2], ", "))
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// writeBootSession prints a session's details and its timeline.
func writeBootSession(a *app, d model.BootSessionDetail, now time.Time) error {
	s := d.Session
	det := newDetails(a.stdout)
	det.add("Session", s.ID)
	det.add("Node", s.Node)
	det.add("MAC", string(s.MAC))
	det.add("State", string(s.State))
	det.add("Step", s.Step)
	det.add("Reason", s.Reason)
	image := s.Image
	if image != "" && s.Branch != "" {
		image += "@" + s.Branch
	}
	det.add("Image", image)
	det.add("Arch", model.ArchLabel(s.Arch, s.Platform, "/"))
	det.add("Client", s.ClientAddr)
	det.add("Started", formatTime(s.Started))
	det.add("Updated", formatTime(s.Updated))
	det.add("Duration", model.ShortDuration(s.Took(now)))
	det.add("Expires", formatTime(s.Expires))
	if err := det.flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if len(d.Events) == 0 {
		fmt.Fprintln(a.stdout, "No events.")
		return nil
	}
	t := newTable(a.stdout, "TIME", "STEP", "STATE", "DURATION", "MESSAGE")
	for _, ev := range d.Events {
		t.row(bootEventCells(s, ev)...)
	}
	return t.flush()
}

// bootEventCells are TIME STEP STATE DURATION MESSAGE of one event. The
// time shows its date only when that is not the day the session started.
func bootEventCells(s model.BootSession, ev model.BootEvent) []string {
	at := ev.Time.Local()
	layout := "15:04:05.000"
	if y, m, d := at.Date(); s.Started.IsZero() || !sameDay(s.Started.Local(), y, m, d) {
		layout = "2006-01-02 15:04:05.000"
	}
	msg := ev.Message
	keys := make([]string, 0, len(ev.Extras))
	for k := range ev.Extras {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if ev.Extras[k] != "" {
			msg += fmt.Sprintf(" [%s: %s]", strings.ReplaceAll(k, "_", " "), ev.Extras[k])
		}
	}
	return []string{at.Format(layout), ev.Step, string(ev.State), model.ShortDuration(time.Duration(ev.DurationMS) * time.Millisecond), strings.TrimSpace(msg)}
}

func sameDay(t time.Time, y int, m time.Month, d int) bool {
	ty, tm, td := t.Date()
	return ty == y && tm == m && td == d
}

func (a *app) bootWatchFlags(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	return func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		w := &bootWatch{a: a, json: *asJSON, printed: map[string]bool{}}
		if id := strings.ToLower(args[0]); model.ValidBootSessionID(id) {
			return w.session(ctx, cl, id)
		}
		if err := model.CheckName(args[0]); err != nil {
			return usagef("boot watch", "%q is neither a node name nor a boot session id (32 hex digits): %v", args[0], err)
		}
		return w.node(ctx, cl, args[0])
	}
}

// bootWatch prints followed events once each: a watch that lost its
// connection starts over and skips what it printed already.
type bootWatch struct {
	a        *app
	json     bool
	printed  map[string]bool // session id + "/" + event id
	bySess   bool            // lines carry the session (watching a node)
	started  bool            // the header line is out
	writeErr error
}

// bootWatchLine is what --json prints per event.
type bootWatchLine struct {
	Session model.BootSession `json:"session"`
	Event   model.BootEvent   `json:"event"`
}

func (w *bootWatch) header() {
	if w.json || w.started {
		return
	}
	w.started = true
	if w.bySess {
		fmt.Fprint(w.a.stdout, bootWatchText("TIME", "SESSION", "STEP", "STATE", "DURATION", "MESSAGE"))
	} else {
		fmt.Fprint(w.a.stdout, bootWatchText("TIME", "", "STEP", "STATE", "DURATION", "MESSAGE"))
	}
}

// event prints one event unless it was printed before.
func (w *bootWatch) event(s model.BootSession, ev model.BootEvent) error {
	key := s.ID + "/" + ev.ID
	if w.printed[key] {
		return nil
	}
	w.printed[key] = true
	if w.json {
		w.writeErr = writeJSONLine(w.a.stdout, bootWatchLine{Session: s, Event: ev})
		return w.writeErr
	}
	w.header()
	c := bootEventCells(s, ev)
	sess := ""
	if w.bySess {
		sess = s.ID[:min(8, len(s.ID))]
	}
	_, w.writeErr = fmt.Fprint(w.a.stdout, bootWatchText(c[0], sess, c[1], c[2], c[3], c[4]))
	return w.writeErr
}

// bootWatchText formats a followed event with fixed column widths, since
// a stream cannot be aligned after the fact. sess "" leaves its column
// out.
func bootWatchText(at, sess, step, state, dur, msg string) string {
	cells := []*string{&at, &step, &state, &dur, &msg}
	for _, c := range cells {
		if *c == "" {
			*c = "-"
		}
	}
	if sess != "" {
		return fmt.Sprintf("%-12s  %-8s  %-10s  %-5s  %-8s  %s\n", at, sess, step, state, dur, msg)
	}
	return fmt.Sprintf("%-12s  %-10s  %-5s  %-8s  %s\n", at, step, state, dur, msg)
}

// retry decides what a failed follow means: nil to try again after a
// pause (the connection was lost), or the error that ends the watch. It
// reports the first of a run of lost connections.
func (w *bootWatch) retry(ctx context.Context, what string, err error, warned *bool) error {
	if w.writeErr != nil {
		return w.writeErr
	}
	var p *client.Error
	if errors.As(err, &p) {
		return fail(what, err)
	}
	if !*warned {
		w.a.report(fail(what+" (retrying)", err))
		*warned = true
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	return nil
}

// session follows one session until it ends; a failed session is an
// error, so the exit status tells how the boot went.
func (w *bootWatch) session(ctx context.Context, cl *client.Client, id string) error {
	const cmd = "boot watch"
	warned := false
	for {
		last, err := cl.WatchBootSession(ctx, id, func(s model.BootSession, ev model.BootEvent) error {
			warned = false
			return w.event(s, ev)
		})
		if ctx.Err() != nil {
			return nil // interrupted: following ends normally
		}
		if client.IsStatus(err, 404) {
			return fmt.Errorf("%s: boot session %s does not exist (sessions expire after a day)", cmd, id)
		}
		if err != nil {
			if err := w.retry(ctx, "follow boot session "+id, err, &warned); err != nil {
				return err
			}
			continue
		}
		took := model.ShortDuration(last.Took(time.Now()))
		if last.State == model.BootFailed {
			return fmt.Errorf("boot session %s of %s failed after %s: %s", id, last.Node, took, last.Reason)
		}
		if !w.json {
			fmt.Fprintf(w.a.stderr, "Boot session %s of %s is done after %s.\n", id, last.Node, took)
		}
		return nil
	}
}

// node follows a node's boots, one session after the other, until
// interrupted.
func (w *bootWatch) node(ctx context.Context, cl *client.Client, node string) error {
	const cmd = "boot watch"
	if err := w.a.nodeExists(ctx, cl, cmd, node); err != nil {
		return err
	}
	w.bySess = true
	latest, err := cl.BootSessions(ctx, node, 1)
	if err != nil {
		return fail("list boot sessions of "+node, err)
	}
	if len(latest) == 0 && !w.json {
		fmt.Fprintf(w.a.stderr, "Waiting for %s to boot (Ctrl-C to stop)...\n", node)
	}
	w.header()
	warned := false
	for {
		err := cl.WatchNodeBoots(ctx, node, bootPoll, func(s model.BootSession, ev model.BootEvent) error {
			warned = false
			return w.event(s, ev)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err := w.retry(ctx, "follow the boots of "+node, err, &warned); err != nil {
			return err
		}
	}
}
