package boot

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
)

// Nodes read their image through the boot function with the session's
// boot token, not through /api/v1 (which wants an admin's token):
//
//   - GET /boot/sessions/{id}/manifests/{digest}: only the version the
//     session's plan named (the plan endpoint records it).
//   - GET /boot/sessions/{id}/blobs/{digest}: any blob, for a session
//     whose token is valid. Checking that the blob belongs to the planned
//     version would mean reading the manifest on every request; it is not
//     needed: blobs are content-addressed (a digest is known only to who
//     has a manifest naming it) and the node may read its whole image
//     anyway. What a token gives is bounded by its session's life.
//   - POST /boot/sessions/{id}/blobs: many blobs in one answer, on the
//     same terms (blobs_batch.go).
//
// Both are immutable, so they are answered with long-lived caching headers
// an edge cache may keep.

const manifestType = "application/vnd.herd.manifest"

func (h *Handler) digestParam(w http.ResponseWriter, r *http.Request) (manifest.Digest, bool) {
	d, err := manifest.ParseDigest(r.PathValue("digest"))
	if err != nil {
		h.fail(w, r, problem.New(http.StatusBadRequest, "bad-digest", "Bad digest",
			fmt.Sprintf("%v (want sha256:<64 hex digits>)", err)))
		return d, false
	}
	return d, true
}

// nodeImageRequest checks what a node's manifest or blob request shares:
// a live session with its boot token, a digest, and an image store. It
// answers the problem itself and returns false when one is missing.
func (h *Handler) nodeImageRequest(w http.ResponseWriter, r *http.Request) (string, manifest.Digest, *ObjectArtifacts, bool) {
	id, ok := h.nodeSession(w, r)
	if !ok {
		return "", manifest.Digest{}, nil, false
	}
	d, ok := h.digestParam(w, r)
	if !ok {
		return "", manifest.Digest{}, nil, false
	}
	_, oa := h.images()
	if oa == nil {
		h.fail(w, r, noImages())
		return "", manifest.Digest{}, nil, false
	}
	return id, d, oa, true
}

// nodeManifest streams the planned version's manifest as stored; the node
// checks it against the digest it asked for.
func (h *Handler) nodeManifest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, d, oa, ok := h.nodeImageRequest(w, r)
	if !ok {
		return
	}
	planned, err := h.store.PlanVersion(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if planned == "" {
		h.fail(w, r, problem.New(http.StatusConflict, "no-plan", "No plan yet",
			fmt.Sprintf("session %s has not fetched its plan: GET /boot/sessions/%s/plan first", id, id)))
		return
	}
	if planned != d.String() {
		h.fail(w, r, problem.New(http.StatusForbidden, "forbidden", "Not this session's version",
			fmt.Sprintf("session %s's plan names version %s, not %s", id, planned, d)))
		return
	}
	h.stream(w, r, d, manifestType, func() (blob, error) {
		return openObject(ctx, oa.Objects, imgstore.ManifestKey(d))
	})
}

// nodeBlob streams one blob, from the blob cache when it is there.
func (h *Handler) nodeBlob(w http.ResponseWriter, r *http.Request) {
	_, d, oa, ok := h.nodeImageRequest(w, r)
	if !ok {
		return
	}
	h.stream(w, r, d, "application/octet-stream", func() (blob, error) {
		return h.blobs.get(r.Context(), oa.Objects, d)
	})
}

// stream answers with one content-addressed object that open reads.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, d manifest.Digest, contentType string, open func() (blob, error)) {
	tag := `"` + d.String() + `"`
	if r.Header.Get("If-None-Match") == tag {
		w.Header().Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, err := open()
	if errors.Is(err, objstore.ErrNotFound) {
		h.fail(w, r, problem.New(http.StatusNotFound, "not-found", "Not found", fmt.Sprintf("%s is not stored", d)))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer b.close()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(b.size(), 10))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", tag)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, b.reader()); err != nil {
		// The status is out already; the node sees a short body.
		h.log.Warn("image content cut short", "digest", d.String(), "err", err)
	}
}
