package ui

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
)

// bootPanelSessions is how many recent sessions a node's page lists.
const bootPanelSessions = 10

// bootPanel reads a node's recent boot sessions and the timeline of the
// latest.
func (u *UI) bootPanel(ctx context.Context, node string) (components.BootPanel, error) {
	sessions, err := u.store.BootSessions(ctx, node, bootPanelSessions)
	if err != nil {
		return components.BootPanel{}, err
	}
	p := components.BootPanel{Node: node, Sessions: sessions, Now: time.Now(), Live: u.static.url(htmxPath) != ""}
	if len(sessions) > 0 {
		if p.Events, err = u.store.BootEvents(ctx, sessions[0].ID); err != nil {
			return p, err
		}
	}
	return p, nil
}

// bootSession is one session's page; while the session runs, htmx asks
// for its timeline card alone every 2 s.
// consoleShown is how much of a console the session page shows: the end,
// where a failure is.
const consoleShown = 64 << 10

// consoleTail returns the end of a console as text, cut at a line start,
// and how many bytes before it are left out.
func consoleTail(b []byte) (string, int) {
	if len(b) <= consoleShown {
		return strings.ToValidUTF8(string(b), "\uFFFD"), 0
	}
	tail := b[len(b)-consoleShown:]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return strings.ToValidUTF8(string(tail), "\uFFFD"), len(b) - len(tail)
}

func (u *UI) bootSession(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	sid := r.PathValue("id")
	if !model.ValidBootSessionID(sid) {
		return &pageError{status: http.StatusNotFound, title: "Not found",
			detail: "There is no boot session " + model.CleanText(sid, 64) + ": session ids are 32 hex digits."}
	}
	ctx := r.Context()
	s, err := u.store.BootSession(ctx, sid)
	if err != nil {
		return err
	}
	events, err := u.store.BootEvents(ctx, sid)
	if err != nil {
		return err
	}
	console, _, err := u.store.Console(ctx, sid)
	if err != nil {
		return err
	}
	v := components.BootSessionView{Session: s, Events: events, Now: time.Now(), Live: u.static.url(htmxPath) != ""}
	v.Console, v.ConsoleCut = consoleTail(console)
	if fragment(r, "boot-timeline") {
		return u.render(w, r, http.StatusOK, components.BootTimelineCard(v))
	}
	return u.render(w, r, http.StatusOK, components.BootSessionPage(u.frame(w, r, id, "nodes", "Boot of "+s.Node), v))
}
