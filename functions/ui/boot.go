package ui

import (
	"context"
	"net/http"
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
	v := components.BootSessionView{Session: s, Events: events, Now: time.Now(), Live: u.static.url(htmxPath) != ""}
	if fragment(r, "boot-timeline") {
		return u.render(w, r, http.StatusOK, components.BootTimelineCard(v))
	}
	return u.render(w, r, http.StatusOK, components.BootSessionPage(u.frame(w, r, id, "nodes", "Boot of "+s.Node), v))
}
