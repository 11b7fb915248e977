package api

import (
	"net/http"
	"strconv"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// bootRoutes serves what admins see of network boots: boot sessions and
// their timelines, and the machines that booted with an unknown MAC
// (discovery entries), which an admin assigns to nodes or forgets.
func bootRoutes(a *API) {
	a.handle("GET "+Prefix+"/boot/sessions", a.bootSessions)
	a.handle("GET "+Prefix+"/boot/sessions/{id}", a.bootSession)
	a.handle("GET "+Prefix+"/boot/sessions/{id}/follow", a.bootFollow)
	a.handle("GET "+Prefix+"/discovered", a.discovered)
	a.handle("GET "+Prefix+"/discovered/{mac}", a.discoveredOne)
	a.handle("POST "+Prefix+"/discovered/{mac}/assign", a.assignDiscovered)
	a.handle("DELETE "+Prefix+"/discovered/{mac}", a.forgetDiscovered)
}

// bootSessions lists recent sessions, newest first: a node's (?node=) or
// the whole cluster's.
func (a *API) bootSessions(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	q := r.URL.Query()
	node := q.Get("node")
	if node != "" {
		if err := model.CheckName(node); err != nil {
			p := problem.New(http.StatusBadRequest, "bad-query", "Bad query", "node: "+err.Error())
			p.Errors = []model.FieldProblem{{Field: "node", Message: err.Error()}}
			return p
		}
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	items, err := a.store.BootSessions(r.Context(), node, limit)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.Page[model.BootSession]{Items: items, Total: len(items)})
}

// sessionID reads {id}; a malformed one names no session.
func sessionID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !model.ValidBootSessionID(id) {
		return "", problem.New(http.StatusNotFound, "not-found", "Not found",
			"boot session "+model.CleanText(id, 64)+" does not exist (ids are 32 hex digits)")
	}
	return id, nil
}

func (a *API) bootSession(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	sess, err := a.store.BootSession(r.Context(), id)
	if err != nil {
		return err
	}
	events, err := a.store.BootEvents(r.Context(), id)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.BootSessionDetail{Session: sess, Events: events})
}

// bootFollow long-polls for a session's events after a stream position
// (from the start without one), like the audit follow, and answers with
// the session's state as it is then.
func (a *API) bootFollow(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	if _, err := a.store.BootSession(r.Context(), id); err != nil {
		return err
	}
	items, after, err := a.store.BootEventsAfter(r.Context(), id, r.URL.Query().Get("after"), wait)
	if err != nil {
		return err
	}
	sess, err := a.store.BootSession(r.Context(), id)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.BootFollowReply{Session: sess, Items: items, After: after})
}

func (a *API) discovered(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	page, err := a.store.ListDiscovered(r.Context(), opts)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, page)
}

// pathMAC reads {mac} in any spelling model.ParseMAC accepts.
func pathMAC(r *http.Request) (model.MAC, error) {
	m, err := model.ParseMAC(r.PathValue("mac"))
	if err != nil {
		p := problem.New(http.StatusBadRequest, "bad-mac", "Bad MAC address", err.Error())
		p.Errors = []model.FieldProblem{{Field: "mac", Message: err.Error()}}
		return "", p
	}
	return m, nil
}

func (a *API) discoveredOne(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	m, err := pathMAC(r)
	if err != nil {
		return err
	}
	d, err := a.store.GetDiscovered(r.Context(), m)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, d)
}

// assignDiscovered gives a discovered MAC to a node (or creates the node);
// the machine boots as that node the next time it asks.
func (a *API) assignDiscovered(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	m, err := pathMAC(r)
	if err != nil {
		return err
	}
	var req model.AssignRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	n, created, err := a.store.AssignDiscovered(r.Context(), id.Actor(), m, req)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(n.Revision))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", Prefix+"/nodes/"+n.Name)
	}
	return reply(w, status, n)
}

func (a *API) forgetDiscovered(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	m, err := pathMAC(r)
	if err != nil {
		return err
	}
	if err := a.store.ForgetDiscovered(r.Context(), id.Actor(), m); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
