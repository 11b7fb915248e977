package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// ConsoleSeqParam numbers the chunks a node posts to its console (a query
// parameter: the edge drops every X-Herd-* header a client sends), from 1
// up: a chunk whose number was seen is not appended again, so a node may
// retry a post whose answer it lost.
const ConsoleSeqParam = "seq"

// ConsoleKey is where a session's console is archived in the object store
// once the session is done or failed.
func ConsoleKey(session string) string { return store.ConsoleArchiveKey(session) }

// postConsole appends the body, raw bytes, to the session's console.
func (h *Handler) postConsole(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := h.nodeSession(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(r.URL.Query().Get(ConsoleSeqParam), 10, 64)
	if err != nil || seq == 0 {
		h.fail(w, r, problem.New(http.StatusBadRequest, "bad-seq", "Bad console sequence number",
			"?"+ConsoleSeqParam+"= must number the chunk: 1 for the first, then 2, 3, …"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, store.MaxConsoleChunk+1))
	if err != nil {
		h.fail(w, r, problem.New(http.StatusBadRequest, "bad-body", "Body not read", err.Error()))
		return
	}
	if len(body) > store.MaxConsoleChunk {
		h.fail(w, r, problem.New(http.StatusRequestEntityTooLarge, "too-large", "Chunk too large",
			fmt.Sprintf("post at most %d bytes of console at a time", store.MaxConsoleChunk)))
		return
	}
	appended, err := h.store.AppendConsole(ctx, id, seq, body)
	if errors.Is(err, store.ErrConsoleFull) {
		h.fail(w, r, problem.New(http.StatusRequestEntityTooLarge, "console-full", "Console full", err.Error()))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !appended {
		w.Header().Set("X-Herd-Console-Duplicate", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}

// statusRecorder remembers the status an inner handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// postEventArchiving is postEvent, and when the event moves the session
// into done or failed it archives the console to the object store, so it
// outlives the session's stream.
func (h *Handler) postEventArchiving(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var before model.BootState
	if model.ValidBootSessionID(id) {
		if s, err := h.store.BootSession(r.Context(), id); err == nil {
			before = s.State
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	h.postEvent(rec, r)
	if rec.status != http.StatusCreated {
		return
	}
	sess, err := h.store.BootSession(r.Context(), id)
	if err != nil || sess.State == before || (sess.State != model.BootDone && sess.State != model.BootFailed) {
		return
	}
	if err := h.archiveConsole(r.Context(), id); err != nil {
		h.log.Warn("console not archived", "session", id, "err", err)
	}
}

// archiveConsole writes the session's whole console to ConsoleKey. A
// session that fails, goes on and ends again is archived again, whole.
func (h *Handler) archiveConsole(ctx context.Context, id string) error {
	oa, ok := h.art.(ObjectArtifacts)
	if !ok || oa.Objects == nil {
		return nil
	}
	return ArchiveConsole(ctx, h.store, oa.Objects, id)
}

// ArchiveConsole copies a session's live console to the object store.
func ArchiveConsole(ctx context.Context, st *store.Store, obj *objstore.Store, id string) error {
	data, _, err := st.Console(ctx, id)
	if err != nil {
		return err
	}
	if err := obj.Put(ctx, ConsoleKey(id), bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		return fmt.Errorf("archive console of boot session %s: %w", id, err)
	}
	return nil
}
