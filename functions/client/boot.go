package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// BootSessions returns the recent boot sessions of node, or of every node
// when node is "", newest first; limit 0 means all that are kept.
func (c *Client) BootSessions(ctx context.Context, node string, limit int) ([]model.BootSession, error) {
	v := url.Values{"node": {node}}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var page model.Page[model.BootSession]
	_, err := c.do(ctx, http.MethodGet, withQuery("/boot/sessions", v), nil, nil, &page)
	return page.Items, err
}

// BootSession returns a session with its timeline, oldest event first.
func (c *Client) BootSession(ctx context.Context, id string) (model.BootSessionDetail, error) {
	var out model.BootSessionDetail
	_, err := c.do(ctx, http.MethodGet, "/boot/sessions/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// FollowBootSession waits up to wait for a session's events after the
// stream position after ("" for from the start, "$" for from now on) and
// returns them oldest first, with the session's state and the next
// position.
func (c *Client) FollowBootSession(ctx context.Context, id, after string, wait time.Duration) (model.BootFollowReply, error) {
	v := url.Values{"after": {after}, "wait": {wait.String()}}
	var out model.BootFollowReply
	_, err := c.do(ctx, http.MethodGet, withQuery("/boot/sessions/"+url.PathEscape(id)+"/follow", v), nil, nil, &out)
	return out, err
}

// BootEventFunc receives one event of a followed session, with the session
// as it was when the event arrived. An error stops the watch and is
// returned.
type BootEventFunc func(model.BootSession, model.BootEvent) error

// ended tells whether a session will see no more events from bootenv.
func ended(s model.BootSession) bool {
	return s.State == model.BootDone || s.State == model.BootFailed
}

// WatchBootSession calls fn with each event of a session, from the first,
// until the session is done or failed. It returns the session as it ended.
func (c *Client) WatchBootSession(ctx context.Context, id string, fn BootEventFunc) (model.BootSession, error) {
	after, wait := "", 25*time.Second
	for {
		r, err := c.FollowBootSession(ctx, id, after, wait)
		if err != nil {
			return r.Session, err
		}
		for _, ev := range r.Items {
			if err := fn(r.Session, ev); err != nil {
				return r.Session, err
			}
		}
		after = r.After
		if ended(r.Session) {
			if wait == 0 && len(r.Items) == 0 {
				return r.Session, nil
			}
			// One more look without waiting, for an event that came in
			// between reading the events and reading the state.
			wait = 0
		}
	}
}

// WatchNodeBoots follows a node's boots live, as `herd boot watch` does:
// the events of its newest session from the first, then of each session
// that opens after it (the node rebooted). It returns when ctx ends or fn
// fails. poll is how often it looks for a new session while the current
// one is quiet (0 means 5s).
func (c *Client) WatchNodeBoots(ctx context.Context, node string, poll time.Duration, fn BootEventFunc) error {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	cur, after := "", ""
	for {
		latest, err := c.BootSessions(ctx, node, 1)
		if err != nil {
			return err
		}
		if len(latest) == 1 && latest[0].ID != cur {
			cur, after = latest[0].ID, ""
		}
		if cur == "" {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(poll):
			}
			continue
		}
		r, err := c.FollowBootSession(ctx, cur, after, poll)
		if IsStatus(err, http.StatusNotFound) {
			cur = "" // expired; look for a newer one
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range r.Items {
			if err := fn(r.Session, ev); err != nil {
				return err
			}
		}
		after = r.After
	}
}

// ListDiscovered returns one page of the machines waiting to be assigned,
// most recently seen first.
func (c *Client) ListDiscovered(ctx context.Context, o ListOptions) (model.DiscoveredPage, error) {
	var page model.DiscoveredPage
	_, err := c.do(ctx, http.MethodGet, withQuery("/discovered", o.values()), nil, nil, &page)
	return page, err
}

// AllDiscovered returns every machine waiting to be assigned, following
// pages.
func (c *Client) AllDiscovered(ctx context.Context) ([]model.Discovered, error) {
	var out []model.Discovered
	o := ListOptions{Limit: 1000}
	for {
		page, err := c.ListDiscovered(ctx, o)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		o.Cursor = page.Next
	}
}

// GetDiscovered reads the discovery entry of one MAC.
func (c *Client) GetDiscovered(ctx context.Context, mac model.MAC) (model.Discovered, error) {
	var out model.Discovered
	_, err := c.do(ctx, http.MethodGet, "/discovered/"+url.PathEscape(string(mac)), nil, nil, &out)
	return out, err
}

// AssignDiscovered gives a discovered MAC to the node req names, or
// creates that node with req.Create; it returns the node as stored.
func (c *Client) AssignDiscovered(ctx context.Context, mac model.MAC, req model.AssignRequest) (model.Node, error) {
	var out model.Node
	_, err := c.do(ctx, http.MethodPost, "/discovered/"+url.PathEscape(string(mac))+"/assign", nil, req, &out)
	return out, err
}

// ForgetDiscovered deletes the discovery entry of a MAC; the machine comes
// back when it boots again.
func (c *Client) ForgetDiscovered(ctx context.Context, mac model.MAC) error {
	_, err := c.do(ctx, http.MethodDelete, "/discovered/"+url.PathEscape(string(mac)), nil, nil, nil)
	return err
}
