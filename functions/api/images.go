package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// Limits of the image endpoints. A blob is a small file or one chunk of a
// big one, so it is never larger than the chunking threshold; a manifest is
// about 100 bytes per entry.
const (
	maxBlob      = chunk.Threshold
	maxManifest  = 512 << 20
	maxDigests   = 10000 // per /blobs/missing request
	diffListMax  = 200   // paths per list in a commit's audit extras
	manifestType = "application/vnd.herd.manifest"
)

func imageRoutes(a *API) {
	p := Prefix
	a.handle("GET "+p+"/images", a.images)
	a.handle("GET "+p+"/images/{image}", a.image)
	a.handle("PATCH "+p+"/images/{image}", a.patchImage)
	a.handle("DELETE "+p+"/images/{image}", a.deleteImage)
	a.handle("POST "+p+"/images/{image}/branches", a.createBranch)
	a.handle("PATCH "+p+"/images/{image}/branches/{branch}", a.renameBranch)
	a.handle("DELETE "+p+"/images/{image}/branches/{branch}", a.deleteBranch)
	a.handle("GET "+p+"/images/{image}/branches/{branch}/history", a.branchHistory)
	a.handle("POST "+p+"/images/{image}/branches/{branch}/commits", a.commitBranch)
	a.handle("POST "+p+"/images/{image}/branches/{branch}/rollback", a.rollbackBranch)
	a.handle("GET "+p+"/images/{image}/diff", a.imageDiff)
	a.handle("POST "+p+"/images/gc", a.imageGC)
	a.handle("POST "+p+"/imports", a.beginImport)
	a.handle("DELETE "+p+"/imports/{lease}", a.endImport)
	a.handle("POST "+p+"/blobs/missing", a.missingBlobs)
	a.handle("PUT "+p+"/blobs/{digest}", a.putBlob)
	a.handle("GET "+p+"/blobs/{digest}", a.getBlob)
	a.handle("PUT "+p+"/manifests/{digest}", a.putManifest)
	a.handle("GET "+p+"/manifests/{digest}", a.getManifest)
}

// imgs returns the image store, or a problem when this deployment has none.
func (a *API) imgs() (*imgstore.Store, error) {
	if a.Images == nil {
		return nil, problem.New(http.StatusServiceUnavailable, "no-image-store", "No image store",
			"this herd runs without an object store, so it keeps no images")
	}
	return a.Images, nil
}

// imgsAndDigest is the image store and the {digest} of the path, for the
// blob and manifest endpoints.
func (a *API) imgsAndDigest(r *http.Request) (*imgstore.Store, manifest.Digest, error) {
	s, err := a.imgs()
	if err != nil {
		return nil, manifest.Digest{}, err
	}
	d, err := digestParam("digest", r.PathValue("digest"))
	return s, d, err
}

// imageErr maps the image store's errors to problems; others pass through.
func imageErr(err error) error {
	var ne *imgstore.NameError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ne):
		p := problem.New(http.StatusUnprocessableEntity, "invalid", "Invalid name", ne.Error())
		p.Errors = []model.FieldProblem{{Field: "name", Message: ne.Reason}}
		return p
	case errors.Is(err, imgstore.ErrNotFound):
		return problem.New(http.StatusNotFound, "not-found", "Not found", err.Error())
	case errors.Is(err, imgstore.ErrConflict):
		return problem.New(http.StatusConflict, "conflict", "Branch moved", err.Error()+
			"; another change was committed first: start again from the branch as it is now")
	case errors.Is(err, imgstore.ErrExists), errors.Is(err, imgstore.ErrLiveBranch):
		return problem.New(http.StatusConflict, "conflict", "Conflict", err.Error())
	}
	return err
}

// audited returns store options that write ev, by the caller, in the same
// transaction as the image store's change.
func (a *API) audited(ctx context.Context, id auth.Identity, ev model.AuditEvent) imgstore.Options {
	return imgstore.Options{Also: func(p redis.Pipeliner) { a.store.AuditIn(ctx, p, id.Actor(), ev) }}
}

func imageRef(name string) string { return "image/" + name }

func (a *API) images(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	list, err := s.Images(r.Context())
	if err != nil {
		return err
	}
	out := make([]model.Image, len(list))
	for i, im := range list {
		out[i] = wireImage(im)
	}
	return reply(w, http.StatusOK, model.Page[model.Image]{Items: out, Total: len(out)})
}

func wireImage(im imgstore.ImageInfo) model.Image {
	out := model.Image{ID: im.ID, Name: im.Name, Live: im.Live, Created: im.Created, Updated: im.Updated,
		Branches: make([]model.ImageBranch, len(im.Branches))}
	for i, b := range im.Branches {
		out.Branches[i] = model.ImageBranch{Name: b.Name, Version: b.Digest.String()}
	}
	return out
}

// replyImage answers with the image as it is now.
func replyImage(ctx context.Context, w http.ResponseWriter, s *imgstore.Store, name string, status int) error {
	im, err := s.Image(ctx, name)
	if err != nil {
		return imageErr(err)
	}
	return reply(w, status, wireImage(im))
}

func (a *API) image(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	return replyImage(r.Context(), w, s, r.PathValue("image"), http.StatusOK)
}

func (a *API) patchImage(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.ImagePatch
	if err := decode(r, &req); err != nil {
		return err
	}
	name, ctx := r.PathValue("image"), r.Context()
	if req.Live != "" {
		ev := model.AuditEvent{Kind: "image", Method: "set-live", Refs: []string{imageRef(name)},
			Msg: fmt.Sprintf("image %s: branch %s is live", name, req.Live)}
		if err := s.SetLive(ctx, name, req.Live, a.audited(ctx, id, ev)); err != nil {
			return imageErr(err)
		}
	}
	if req.Name != "" && req.Name != name {
		// Nodes and groups name images by name: renaming one under them
		// would leave them pointing at nothing.
		if err := a.refuseInUse(ctx, name, ""); err != nil {
			return err
		}
		ev := model.AuditEvent{Kind: "image", Method: "rename", Refs: []string{imageRef(name), imageRef(req.Name)},
			Msg: fmt.Sprintf("image %s renamed to %s", name, req.Name)}
		if err := s.RenameImage(ctx, name, req.Name, a.audited(ctx, id, ev)); err != nil {
			return imageErr(err)
		}
		im, err := s.Image(ctx, req.Name)
		if err != nil {
			return imageErr(err)
		}
		for _, b := range im.Branches {
			a.movePublished(ctx, name, b.Name, req.Name, b.Name)
		}
		name = req.Name
	}
	return replyImage(ctx, w, s, name, http.StatusOK)
}

// refuseInUse answers 409 when groups or nodes use image (branch, when
// not empty), so neither is deleted or renamed under them.
func (a *API) refuseInUse(ctx context.Context, image, branch string) error {
	err := a.store.CheckImageUnused(ctx, image, branch)
	var iu *store.InUseError
	if errors.As(err, &iu) {
		return problem.New(http.StatusConflict, "in-use", "In use", iu.Error())
	}
	return err
}

func (a *API) deleteImage(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	name, ctx := r.PathValue("image"), r.Context()
	if err := a.refuseInUse(ctx, name, ""); err != nil {
		return err
	}
	ev := model.AuditEvent{Kind: "image", Method: "delete", Refs: []string{imageRef(name)}, Msg: "image " + name + " deleted"}
	im, err := s.Image(ctx, name)
	if err != nil {
		return imageErr(err)
	}
	if err := s.DeleteImage(ctx, name, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	for _, b := range im.Branches {
		a.movePublished(ctx, name, b.Name, "", "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.BranchRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name, ctx := r.PathValue("image"), r.Context()
	if req.From == "" {
		if req.From, err = s.Live(ctx, name); err != nil {
			return imageErr(err)
		}
	}
	ev := model.AuditEvent{Kind: "image", Method: "branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s created from %s", name, req.Name, req.From)}
	if err := s.CreateBranch(ctx, name, req.From, req.Name, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	a.movePublished(ctx, "", "", name, req.Name)
	return replyImage(ctx, w, s, name, http.StatusCreated)
}

func (a *API) renameBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.BranchPatch
	if err := decode(r, &req); err != nil {
		return err
	}
	name, branch, ctx := r.PathValue("image"), r.PathValue("branch"), r.Context()
	if err := a.refuseInUse(ctx, name, branch); err != nil {
		return err
	}
	ev := model.AuditEvent{Kind: "image", Method: "rename-branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s renamed to %s", name, branch, req.Name)}
	if err := s.RenameBranch(ctx, name, branch, req.Name, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	a.movePublished(ctx, name, branch, name, req.Name)
	return replyImage(ctx, w, s, name, http.StatusOK)
}

func (a *API) deleteBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	name, branch, ctx := r.PathValue("image"), r.PathValue("branch"), r.Context()
	if err := a.refuseInUse(ctx, name, branch); err != nil {
		return err
	}
	ev := model.AuditEvent{Kind: "image", Method: "delete-branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s deleted", name, branch)}
	if err := s.DeleteBranch(ctx, name, branch, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	a.movePublished(ctx, name, branch, "", "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) branchHistory(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 10000 {
			return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "limit must be a number from 1 to 10000")
		}
	}
	hist, err := s.History(r.Context(), r.PathValue("image"), r.PathValue("branch"), limit)
	if err != nil {
		return imageErr(err)
	}
	return reply(w, http.StatusOK, model.Page[model.ImageVersion]{Items: wireVersions(hist), Total: len(hist)})
}

// digestParam parses a digest from the path or a body field.
func digestParam(field, v string) (manifest.Digest, error) {
	d, err := manifest.ParseDigest(v)
	if err != nil {
		p := problem.New(http.StatusBadRequest, "bad-digest", "Bad digest",
			fmt.Sprintf("%s %q is not a digest (sha256:<64 hex digits>)", field, v))
		p.Errors = []model.FieldProblem{{Field: field, Message: "not a sha256 digest"}}
		return d, p
	}
	return d, nil
}

// changeExtras summarises a diff for the audit stream: counts, and the
// paths themselves up to diffListMax of each kind.
func changeExtras(c manifest.Changes) map[string]string {
	list := func(ps []string) string {
		if len(ps) > diffListMax {
			return strings.Join(ps[:diffListMax], "\n") + fmt.Sprintf("\n… and %d more", len(ps)-diffListMax)
		}
		return strings.Join(ps, "\n")
	}
	changed := make([]string, len(c.Changed))
	for i, ch := range c.Changed {
		changed[i] = ch.Path
	}
	ex := map[string]string{
		"added": strconv.Itoa(len(c.Added)), "changed": strconv.Itoa(len(c.Changed)), "removed": strconv.Itoa(len(c.Removed)),
	}
	if len(c.Added) > 0 {
		ex["added_paths"] = list(c.Added)
	}
	if len(changed) > 0 {
		ex["changed_paths"] = list(changed)
	}
	if len(c.Removed) > 0 {
		ex["removed_paths"] = list(c.Removed)
	}
	return ex
}

// referenced lists every blob digest a manifest needs.
func referenced(m *manifest.Manifest) []manifest.Digest {
	var ds []manifest.Digest
	for _, e := range m.Entries {
		if e.Type != manifest.TypeFile || e.Size == 0 {
			continue
		}
		if len(e.Chunks) == 0 {
			ds = append(ds, e.Digest)
		}
		for _, c := range e.Chunks {
			ds = append(ds, c.Digest)
		}
	}
	return ds
}

func (a *API) commitBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.CommitRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name, branch, ctx := r.PathValue("image"), r.PathValue("branch"), r.Context()
	if err := imgstore.CheckName("image", name); err != nil {
		return imageErr(err)
	}
	if err := imgstore.CheckName("branch", branch); err != nil {
		return imageErr(err)
	}
	next, err := digestParam("version", req.Version)
	if err != nil {
		return err
	}
	var base manifest.Digest
	if req.Base != "" {
		if base, err = digestParam("base", req.Base); err != nil {
			return err
		}
	}
	m, err := s.Manifest(ctx, next)
	if err != nil {
		return imageErr(err)
	}
	// Nodes sync from what the branch points at: every blob must be there.
	missing, err := s.Missing(ctx, referenced(m))
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return problem.New(http.StatusUnprocessableEntity, "missing-blobs", "Missing content",
			fmt.Sprintf("version %s needs %d blobs the store lacks (first %s); upload them first", next, len(missing), missing[0]))
	}
	prev := &manifest.Manifest{Version: manifest.FormatVersion}
	if !base.IsZero() {
		if prev, err = s.Manifest(ctx, base); err != nil {
			return imageErr(err)
		}
	}
	changes := manifest.Diff(prev, m)
	msg := req.Message
	if msg == "" {
		msg = "commit"
	}
	ev := model.AuditEvent{Kind: "image", Method: "commit", Refs: []string{imageRef(name)},
		Msg:    fmt.Sprintf("image %s branch %s: %s (%d added, %d changed, %d removed)", name, branch, msg, len(changes.Added), len(changes.Changed), len(changes.Removed)),
		Extras: changeExtras(changes)}
	ev.Extras["branch"], ev.Extras["version"], ev.Extras["base"] = branch, next.String(), req.Base
	info := imgstore.CommitInfo{User: id.User.Name, Message: req.Message, Changes: &changes}
	if err := s.CommitWith(ctx, name, branch, base, next, info, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	if req.Lease != "" {
		if l, err := imgstore.ParseLease(req.Lease); err == nil {
			// The version is on the branch now; the lease has done its job.
			// An error leaves it to expire.
			_ = s.EndImport(ctx, l)
		}
	}
	out := model.CommitReply{Image: name, Branch: branch, Version: next.String(), Base: req.Base,
		Added: len(changes.Added), Changed: len(changes.Changed), Removed: len(changes.Removed)}
	// Nodes boot the branch's kernel: publish it with the commit. The
	// commit stands either way; an image without a kernel is normal until
	// one is installed.
	p, err := s.Publish(ctx, name, branch)
	switch {
	case err == nil:
		out.Kernel = p.Default
	case errors.Is(err, imgstore.ErrNoKernel):
		out.Note = "no kernel in this version: nodes cannot boot it until one is installed"
	default:
		a.log.Error("publish boot files", "image", name, "branch", branch, "err", err)
		out.Note = "committed, but its boot files could not be published: " + err.Error()
	}
	return reply(w, http.StatusOK, out)
}

func (a *API) rollbackBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.RollbackRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	to, err := digestParam("to", req.To)
	if err != nil {
		return err
	}
	name, branch, ctx := r.PathValue("image"), r.PathValue("branch"), r.Context()
	ev := model.AuditEvent{Kind: "image", Method: "rollback", Refs: []string{imageRef(name)},
		Msg:    fmt.Sprintf("image %s branch %s rolled back to %s", name, branch, to),
		Extras: map[string]string{"branch": branch, "version": to.String()}}
	info := imgstore.CommitInfo{User: id.User.Name, Message: req.Message}
	if err := s.Rollback(ctx, name, branch, to, info, a.audited(ctx, id, ev)); err != nil {
		return imageErr(err)
	}
	a.movePublished(ctx, "", "", name, branch) // its kernel may differ now
	hist, err := s.History(ctx, name, branch, 1)
	if err != nil {
		return imageErr(err)
	}
	return reply(w, http.StatusOK, wireVersions(hist))
}

func wireVersions(vs []imgstore.Version) []model.ImageVersion {
	out := make([]model.ImageVersion, len(vs))
	for i, v := range vs {
		out[i] = model.ImageVersion{Version: v.Digest.String(), Time: v.Time, User: v.User, Message: v.Message,
			Kind: string(v.Kind), From: v.From, Added: v.Added, Changed: v.Changed, Removed: v.Removed}
		if !v.Previous.IsZero() {
			out[i].Previous = v.Previous.String()
		}
	}
	return out
}

// version resolves a branch name or a digest of image to a version.
func version(ctx context.Context, s *imgstore.Store, image, v string) (manifest.Digest, error) {
	if strings.HasPrefix(v, "sha256:") {
		return digestParam("version", v)
	}
	d, err := s.Branch(ctx, image, v)
	return d, imageErr(err)
}

func (a *API) imageDiff(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	q, name, ctx := r.URL.Query(), r.PathValue("image"), r.Context()
	if q.Get("from") == "" || q.Get("to") == "" {
		return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "from and to are both needed: a branch name or a version digest each")
	}
	var ms [2]*manifest.Manifest
	for i, k := range []string{"from", "to"} {
		d, err := version(ctx, s, name, q.Get(k))
		if err != nil {
			return err
		}
		if ms[i], err = s.Manifest(ctx, d); err != nil {
			return imageErr(err)
		}
	}
	c := manifest.Diff(ms[0], ms[1])
	out := model.ImageDiff{Added: c.Added, Removed: c.Removed, Changed: make([]model.PathChange, len(c.Changed))}
	for i, ch := range c.Changed {
		out.Changed[i] = model.PathChange{Path: ch.Path, What: ch.What.String()}
	}
	return reply(w, http.StatusOK, out)
}

func (a *API) missingBlobs(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.MissingRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Digests) > maxDigests {
		return problem.New(http.StatusBadRequest, "too-many", "Too many digests",
			fmt.Sprintf("%d digests in one request; send at most %d", len(req.Digests), maxDigests))
	}
	ds := make([]manifest.Digest, len(req.Digests))
	for i, v := range req.Digests {
		if ds[i], err = digestParam(fmt.Sprintf("digests[%d]", i), v); err != nil {
			return err
		}
	}
	var miss []manifest.Digest
	if req.Lease != "" {
		l, err := leaseParam("lease", req.Lease)
		if err != nil {
			return err
		}
		miss, err = s.MissingPinned(r.Context(), l, ds)
	} else {
		miss, err = s.Missing(r.Context(), ds)
	}
	if err != nil {
		return err
	}
	out := model.MissingReply{Missing: make([]string, len(miss))}
	for i, d := range miss {
		out.Missing[i] = d.String()
	}
	return reply(w, http.StatusOK, out)
}

// sizedBody checks the request's declared length against limit.
func sizedBody(r *http.Request, limit int64) (int64, error) {
	if r.ContentLength < 0 {
		return 0, problem.New(http.StatusLengthRequired, "length-required", "Length required", "send Content-Length with the content")
	}
	if r.ContentLength > limit {
		return 0, problem.New(http.StatusRequestEntityTooLarge, "too-large", "Too large",
			fmt.Sprintf("%d bytes; the limit is %d", r.ContentLength, limit))
	}
	return r.ContentLength, nil
}

func (a *API) putBlob(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, d, err := a.imgsAndDigest(r)
	if err != nil {
		return err
	}
	n, err := sizedBody(r, maxBlob)
	if err != nil {
		return err
	}
	if v := r.URL.Query().Get("lease"); v != "" {
		l, err := leaseParam("lease", v)
		if err != nil {
			return err
		}
		if err := s.Pin(r.Context(), l, d); err != nil {
			return err
		}
	}
	stored, err := s.PutBlob(r.Context(), d, r.Body, n)
	if err != nil {
		if strings.Contains(err.Error(), "content changed") || errors.Is(err, io.ErrUnexpectedEOF) {
			return problem.New(http.StatusUnprocessableEntity, "digest-mismatch", "Content does not match its digest",
				fmt.Sprintf("the body is not the blob %s: %v; nothing was stored", d, err))
		}
		return err
	}
	if stored {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

func (a *API) getBlob(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, d, err := a.imgsAndDigest(r)
	if err != nil {
		return err
	}
	rc, n, err := s.OpenBlob(r.Context(), d)
	if err != nil {
		return imageErr(err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", `"`+d.String()+`"`)
	_, err = io.Copy(w, rc)
	return err
}

func (a *API) putManifest(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, d, err := a.imgsAndDigest(r)
	if err != nil {
		return err
	}
	n, err := sizedBody(r, maxManifest)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, n))
	if err != nil {
		return err
	}
	if got := manifest.Sum(b); got != d {
		return problem.New(http.StatusUnprocessableEntity, "digest-mismatch", "Manifest does not match its digest",
			fmt.Sprintf("the body has digest %s, not %s; nothing was stored", got, d))
	}
	m, err := manifest.Decode(b)
	if err != nil {
		return problem.New(http.StatusUnprocessableEntity, "bad-manifest", "Bad manifest", err.Error())
	}
	if v := r.URL.Query().Get("lease"); v != "" {
		l, err := leaseParam("lease", v)
		if err != nil {
			return err
		}
		_, err = s.PutManifestLeased(r.Context(), m, l)
		if err != nil {
			return err
		}
	} else if _, err := s.PutManifest(r.Context(), m); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *API) getManifest(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, d, err := a.imgsAndDigest(r)
	if err != nil {
		return err
	}
	m, err := s.Manifest(r.Context(), d)
	if err != nil {
		return imageErr(err)
	}
	b, err := manifest.Encode(m)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", manifestType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err = io.Copy(w, bytes.NewReader(b))
	return err
}

func (a *API) imageGC(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	var req model.GCRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	opts := imgstore.GCOptions{DryRun: req.DryRun}
	if req.Grace != "" {
		if opts.Grace, err = time.ParseDuration(req.Grace); err != nil || opts.Grace < time.Minute {
			return problem.New(http.StatusBadRequest, "bad-grace", "Bad grace period",
				fmt.Sprintf("grace %q must be a duration of at least 1m, such as 1h", req.Grace))
		}
	}
	res, err := s.GC(r.Context(), opts)
	if errors.Is(err, imgstore.ErrGCRunning) {
		return problem.New(http.StatusConflict, "gc-running", "GC running", err.Error())
	}
	if err != nil {
		return err
	}
	out := model.GCReport{DryRun: res.DryRun, Versions: res.Versions, Blobs: res.Blobs, Scanned: res.Scanned,
		KeptYoung: res.KeptYoung, DeletedBlobs: res.DeletedBlobs, DeletedManifests: res.DeletedManifests, BytesFreed: res.BytesFreed}
	if !req.DryRun {
		ev := model.AuditEvent{Kind: "image", Method: "gc", Msg: fmt.Sprintf("image GC freed %d bytes (%d blobs, %d versions)", res.BytesFreed, res.DeletedBlobs, res.DeletedManifests)}
		if err := a.store.Record(r.Context(), id.Actor(), ev); err != nil {
			return err
		}
	}
	return reply(w, http.StatusOK, out)
}

// movePublished publishes a branch's boot files under its (new) name
// (toImage empty: nowhere) and removes them under the old one (fromImage
// empty: none). The change already happened; a failure here is logged,
// and the next commit to the branch publishes again.
func (a *API) movePublished(ctx context.Context, fromImage, fromBranch, toImage, toBranch string) {
	if err := a.Images.MovePublished(ctx, fromImage, fromBranch, toImage, toBranch); err != nil {
		a.log.Error("boot files not moved", "from", fromImage+":"+fromBranch, "to", toImage+":"+toBranch, "err", err)
	}
}

// leaseParam parses an import lease id from a body field or the query.
func leaseParam(field, v string) (imgstore.Lease, error) {
	l, err := imgstore.ParseLease(v)
	if err != nil {
		p := problem.New(http.StatusBadRequest, "bad-lease", "Bad import lease", err.Error())
		p.Errors = []model.FieldProblem{{Field: field, Message: "not an import lease"}}
		return l, p
	}
	return l, nil
}

func (a *API) beginImport(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	l, err := s.BeginImport(r.Context())
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, model.ImportLease{Lease: l.ID})
}

func (a *API) endImport(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	s, err := a.imgs()
	if err != nil {
		return err
	}
	l, err := leaseParam("lease", r.PathValue("lease"))
	if err != nil {
		return err
	}
	if err := s.EndImport(r.Context(), l); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
