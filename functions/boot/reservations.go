package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// reservations answers the edge's DHCP with every node MAC and its
// address. The ETag is a hash of the answer itself, so it changes exactly
// when the table does, whoever changed a node and however; the edge polls
// with If-None-Match and gets 304 while nothing changed. Computing it
// reads every node, which is what the table needs anyway.
func (h *Handler) reservations(w http.ResponseWriter, r *http.Request) {
	if !h.auth.FromEdge(r) {
		problem.Write(w, r, problem.New(http.StatusForbidden, "edge-only", "Only the edge may read reservations",
			"send the edge's shared secret in "+auth.HeaderEdgeSecret))
		return
	}
	res, err := h.store.BootReservations(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := json.Marshal(model.Reservations{Reservations: res})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	tag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", tag)
	w.Header().Set("Cache-Control", "no-cache")
	if noneMatch(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// noneMatch reports whether an If-None-Match header names tag (weak
// comparison, as RFC 9110 wants for If-None-Match) or is "*".
func noneMatch(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}
