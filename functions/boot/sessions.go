package boot

import (
	"net/http"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// sessionID reads the {id} of a session path; ids herd never makes are
// simply not found.
func (h *Handler) sessionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !model.ValidBootSessionID(id) {
		h.fail(w, r, problem.New(http.StatusNotFound, "not-found", "Not found", "there is no boot session "+model.CleanText(id, 64)))
		return "", false
	}
	return id, true
}

// postEvent appends one step event to the session's timeline. herd sets
// its id and time.
func (h *Handler) postEvent(w http.ResponseWriter, r *http.Request) {
	id, ok := h.nodeSession(w, r)
	if !ok {
		return
	}
	var ev model.BootEvent
	if err := decode(r, &ev); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := ev.Validate(); err != nil {
		h.fail(w, r, err)
		return
	}
	_, stored, err := h.store.AddBootEvent(r.Context(), id, ev)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusCreated, stored)
}

// getSession returns the session and its timeline.
func (h *Handler) getSession(w http.ResponseWriter, r *http.Request) {
	id, ok := h.nodeSession(w, r)
	if !ok {
		return
	}
	sess, err := h.store.BootSession(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	events, err := h.store.BootEvents(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, model.BootSessionDetail{Session: sess, Events: events})
}
