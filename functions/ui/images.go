package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/image/kernel"
	"github.com/herd-hpc/herd/functions/image/manifest"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// Caps of the image pages: a diff can list a whole image, a history every
// commit ever made.
const (
	diffListMax = 500
	historyMax  = 200
	usersMax    = 100 // groups and nodes listed on an image's page
)

// imgs returns the image store, or an error page when this herd has none.
func (u *UI) imgs() (*imgstore.Store, error) {
	if u.images == nil {
		return nil, &pageError{status: http.StatusServiceUnavailable, title: "No image store",
			detail: "This herd runs without an object store, so it keeps no images."}
	}
	return u.images, nil
}

// imagePageErr turns the image store's refusals into error pages; others
// pass through to fail.
func imagePageErr(err error) error {
	var ne *imgstore.NameError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ne):
		return &pageError{status: http.StatusUnprocessableEntity, title: "Invalid name", detail: upperFirst(ne.Error()) + "."}
	case errors.Is(err, imgstore.ErrNotFound):
		return &pageError{status: http.StatusNotFound, title: "Not found", detail: upperFirst(err.Error()) + "."}
	case errors.Is(err, imgstore.ErrConflict), errors.Is(err, imgstore.ErrExists), errors.Is(err, imgstore.ErrLiveBranch):
		return &pageError{status: http.StatusConflict, title: "Conflict", detail: upperFirst(err.Error()) + "."}
	}
	return err
}

// refusal is the reason a change was not made, for the flash message of
// the page the user goes back to; ok is false when the error is not the
// user's to fix: storage down, or what the page named is gone (a stale
// page), which gets the not-found page.
func refusal(err error) (msg string, ok bool) {
	var (
		ne *imgstore.NameError
		iu *store.InUseError
	)
	switch {
	case errors.As(err, &iu):
		return iu.Error(), true
	case errors.As(err, &ne):
		return ne.Error(), true
	case errors.Is(err, imgstore.ErrConflict), errors.Is(err, imgstore.ErrExists), errors.Is(err, imgstore.ErrLiveBranch):
		return err.Error(), true
	}
	return "", false
}

// audited returns store options that write ev, by id, in the same
// transaction as the image store's change.
func (u *UI) audited(ctx context.Context, id auth.Identity, ev model.AuditEvent) imgstore.Options {
	return imgstore.Options{Also: func(p redis.Pipeliner) { u.store.AuditIn(ctx, p, id.Actor(), ev) }}
}

func imageRef(name string) string { return "image/" + name }

func (u *UI) imagesList(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	list, err := s.Images(r.Context())
	if err != nil {
		return err
	}
	var v components.ImagesView
	for _, im := range list {
		row := components.ImageRow{Name: im.Name, Live: im.Live, Branches: len(im.Branches), Updated: im.Updated}
		for _, b := range im.Branches {
			if b.Name == im.Live {
				row.LiveVersion = b.Digest.String()
			}
		}
		v.Images = append(v.Images, row)
	}
	return u.render(w, r, http.StatusOK, components.ImagesPage(u.frame(w, r, id, "images", "Images"), v))
}

func (u *UI) imagePage(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name := r.Context(), r.PathValue("image")
	im, err := s.Image(ctx, name)
	if err != nil {
		return imagePageErr(err)
	}
	users, err := u.store.ImageUsers(ctx, name)
	if err != nil {
		return err
	}
	v := components.ImageView{Name: im.Name, Live: im.Live, Created: im.Created, Updated: im.Updated}
	var live manifest.Digest
	for _, b := range im.Branches {
		row := components.BranchRow{Name: b.Name, Version: b.Digest.String(), Live: b.Name == im.Live}
		for _, us := range users {
			if us.Branch == b.Name {
				row.Users++
			}
		}
		if row.Live {
			live = b.Digest
		}
		v.Branches = append(v.Branches, row)
	}
	v.LiveVersion = live.String()
	v.UsersTotal = len(users)
	for _, us := range users[:min(len(users), usersMax)] {
		v.Users = append(v.Users, components.ImageUserRow{Kind: us.Kind, Name: us.Name, Branch: us.Branch, Via: us.Via})
	}
	m, err := s.Manifest(ctx, live)
	switch {
	case errors.Is(err, imgstore.ErrNotFound):
		v.KernelProblem = "The live version's manifest is missing from the object store: nodes cannot boot this image."
	case err != nil:
		return err
	default:
		for _, k := range kernel.Find(m) {
			v.Kernels = append(v.Kernels, components.KernelRow{Version: k.Version, Path: k.Path, Size: k.Size,
				Initrd: k.Initrd, Modules: k.ModuleCount})
		}
	}
	return u.render(w, r, http.StatusOK, components.ImagePage(u.frame(w, r, id, "images", "Image "+im.Name), v))
}

// changed ends a POST on an image: back to page with a message, or with the
// reason the store refused.
func (u *UI) changed(w http.ResponseWriter, r *http.Request, page, done string, err error) error {
	if err == nil {
		u.redirect(w, r, page, done, false)
		return nil
	}
	msg, ok := refusal(err)
	if !ok {
		return imagePageErr(err)
	}
	u.redirect(w, r, page, "Nothing was changed: "+msg+".", true)
	return nil
}

// existing checks that the image named in the path still exists, so a
// stale page gets the not-found page rather than a message on a page that
// is gone.
func existing(ctx context.Context, s *imgstore.Store, image string) error {
	_, err := s.ImageID(ctx, image)
	return imagePageErr(err)
}

func (u *UI) createBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name := r.Context(), r.PathValue("image")
	if err := existing(ctx, s, name); err != nil {
		return err
	}
	to, from := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("from")
	if from == "" {
		if from, err = s.Live(ctx, name); err != nil {
			return imagePageErr(err)
		}
	}
	ev := model.AuditEvent{Kind: "image", Method: "branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s created from %s", name, to, from)}
	err = s.CreateBranch(ctx, name, from, to, u.audited(ctx, id, ev))
	if err == nil {
		u.publish(ctx, name, to)
	}
	return u.changed(w, r, components.ImageURL(name), fmt.Sprintf("Created branch %s from %s.", to, from), err)
}

func (u *UI) setLive(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, branch := r.Context(), r.PathValue("image"), r.PostForm.Get("branch")
	if err := existing(ctx, s, name); err != nil {
		return err
	}
	ev := model.AuditEvent{Kind: "image", Method: "set-live", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s is live", name, branch)}
	err = s.SetLive(ctx, name, branch, u.audited(ctx, id, ev))
	return u.changed(w, r, components.ImageURL(name), fmt.Sprintf("Branch %s is live.", branch), err)
}

func (u *UI) renameBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, branch := r.Context(), r.PathValue("image"), r.PathValue("branch")
	to := strings.TrimSpace(r.PostForm.Get("name"))
	if err := existing(ctx, s, name); err != nil {
		return err
	}
	page := components.ImageURL(name)
	if to == branch {
		u.redirect(w, r, page, "", false)
		return nil
	}
	if err := u.store.CheckImageUnused(ctx, name, branch); err != nil {
		return u.changed(w, r, page, "", err)
	}
	ev := model.AuditEvent{Kind: "image", Method: "rename-branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s renamed to %s", name, branch, to)}
	err = s.RenameBranch(ctx, name, branch, to, u.audited(ctx, id, ev))
	if err == nil {
		u.movePublished(ctx, name, branch, name, to)
	}
	return u.changed(w, r, page, fmt.Sprintf("Renamed branch %s to %s.", branch, to), err)
}

func (u *UI) deleteBranch(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, branch := r.Context(), r.PathValue("image"), r.PathValue("branch")
	if err := existing(ctx, s, name); err != nil {
		return err
	}
	page := components.ImageURL(name)
	if err := u.store.CheckImageUnused(ctx, name, branch); err != nil {
		return u.changed(w, r, page, "", err)
	}
	ev := model.AuditEvent{Kind: "image", Method: "delete-branch", Refs: []string{imageRef(name)},
		Msg: fmt.Sprintf("image %s: branch %s deleted", name, branch)}
	err = s.DeleteBranch(ctx, name, branch, u.audited(ctx, id, ev))
	if err == nil {
		u.movePublished(ctx, name, branch, "", "")
	}
	return u.changed(w, r, page, fmt.Sprintf("Deleted branch %s.", branch), err)
}

func (u *UI) renameImage(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, to := r.Context(), r.PathValue("image"), strings.TrimSpace(r.PostForm.Get("name"))
	im, err := s.Image(ctx, name)
	if err != nil {
		return imagePageErr(err)
	}
	page := components.ImageURL(name)
	if to == name {
		u.redirect(w, r, page, "", false)
		return nil
	}
	// Nodes name their image: renaming it under them breaks their boot
	// as surely as deleting it.
	if err := u.store.CheckImageUnused(ctx, name, ""); err != nil {
		return u.changed(w, r, page, "", err)
	}
	ev := model.AuditEvent{Kind: "image", Method: "rename", Refs: []string{imageRef(name), imageRef(to)},
		Msg: fmt.Sprintf("image %s renamed to %s", name, to)}
	if err := s.RenameImage(ctx, name, to, u.audited(ctx, id, ev)); err != nil {
		return u.changed(w, r, page, "", err)
	}
	for _, b := range im.Branches {
		u.movePublished(ctx, name, b.Name, to, b.Name)
	}
	u.redirect(w, r, components.ImageURL(to), fmt.Sprintf("Renamed image %s to %s.", name, to), false)
	return nil
}

func (u *UI) deleteImage(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name := r.Context(), r.PathValue("image")
	im, err := s.Image(ctx, name)
	if err != nil {
		return imagePageErr(err)
	}
	page := components.ImageURL(name)
	if err := u.store.CheckImageUnused(ctx, name, ""); err != nil {
		return u.changed(w, r, page, "", err)
	}
	ev := model.AuditEvent{Kind: "image", Method: "delete", Refs: []string{imageRef(name)}, Msg: "image " + name + " deleted"}
	if err := s.DeleteImage(ctx, name, u.audited(ctx, id, ev)); err != nil {
		return u.changed(w, r, page, "", err)
	}
	for _, b := range im.Branches {
		u.movePublished(ctx, name, b.Name, "", "")
	}
	u.redirect(w, r, "/images", "Deleted image "+name+".", false)
	return nil
}

func (u *UI) branchHistory(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, branch := r.Context(), r.PathValue("image"), r.PathValue("branch")
	cur, err := s.Branch(ctx, name, branch)
	if err != nil {
		return imagePageErr(err)
	}
	hist, err := s.History(ctx, name, branch, historyMax+1)
	if err != nil {
		return imagePageErr(err)
	}
	v := components.HistoryView{Image: name, Branch: branch, Current: cur.String()}
	if len(hist) > historyMax {
		hist, v.More = hist[:historyMax], true
	}
	for _, h := range hist {
		v.Records = append(v.Records, components.HistoryRow{Version: h.Digest.String(), Time: h.Time, User: h.User,
			Kind: string(h.Kind), From: h.From, Msg: h.Message, Added: h.Added, Changed: h.Changed, Removed: h.Removed})
	}
	title := fmt.Sprintf("History of %s branch %s", name, branch)
	return u.render(w, r, http.StatusOK, components.ImageHistoryPage(u.frame(w, r, id, "images", title), v))
}

func (u *UI) rollback(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, branch := r.Context(), r.PathValue("image"), r.PathValue("branch")
	if _, err := s.Branch(ctx, name, branch); err != nil {
		return imagePageErr(err)
	}
	to, err := manifest.ParseDigest(r.PostForm.Get("to"))
	if err != nil {
		return &pageError{status: http.StatusBadRequest, title: "Unreadable form",
			detail: fmt.Sprintf("%q is not a version digest (sha256:<64 hex digits>).", r.PostForm.Get("to"))}
	}
	ev := model.AuditEvent{Kind: "image", Method: "rollback", Refs: []string{imageRef(name)},
		Msg:    fmt.Sprintf("image %s branch %s rolled back to %s", name, branch, to),
		Extras: map[string]string{"branch": branch, "version": to.String()}}
	info := imgstore.CommitInfo{User: id.User.Name, Message: strings.TrimSpace(r.PostForm.Get("message"))}
	err = s.Rollback(ctx, name, branch, to, info, u.audited(ctx, id, ev))
	if err == nil {
		u.publish(ctx, name, branch)
	}
	page := components.BranchURL(name, branch) + "/history"
	if errors.Is(err, imgstore.ErrNotFound) {
		// The branch was there a moment ago: what is missing is the
		// version in its history, which is the form's mistake.
		u.redirect(w, r, page, "Nothing was changed: "+err.Error()+".", true)
		return nil
	}
	return u.changed(w, r, page, fmt.Sprintf("Rolled branch %s back to %s.", branch, to), err)
}

func (u *UI) imageDiff(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	s, err := u.imgs()
	if err != nil {
		return err
	}
	ctx, name, q := r.Context(), r.PathValue("image"), r.URL.Query()
	im, err := s.Image(ctx, name)
	if err != nil {
		return imagePageErr(err)
	}
	v := components.ImageDiffView{Image: name, From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to"))}
	for _, b := range im.Branches {
		v.Branches = append(v.Branches, b.Name)
	}
	status := http.StatusOK
	if v.From != "" && v.To != "" { // else the form alone, to choose both
		status = u.compare(ctx, s, im, &v)
	}
	return u.render(w, r, status, components.ImageDiffPage(u.frame(w, r, id, "images", "Compare versions of "+name), v))
}

// compare fills v with the difference between its two versions, or with
// why there is none, and returns the status to answer with.
func (u *UI) compare(ctx context.Context, s *imgstore.Store, im imgstore.ImageInfo, v *components.ImageDiffView) int {
	var ms [2]*manifest.Manifest
	for i, ref := range []string{v.From, v.To} {
		d, err := versionOf(im, ref)
		if err == nil {
			ms[i], err = s.Manifest(ctx, d)
		}
		switch {
		case errors.Is(err, errBadVersion):
			v.Problem = upperFirst(err.Error()) + "."
			return http.StatusBadRequest
		case errors.Is(err, imgstore.ErrNotFound):
			v.Problem = upperFirst(err.Error()) + "."
			return http.StatusNotFound
		case err != nil:
			u.log.Error("read image version", "image", im.Name, "version", ref, "err", err)
			v.Problem = "The object store could not be read; try again shortly."
			return http.StatusServiceUnavailable
		case i == 0:
			v.FromVer = d.String()
		default:
			v.ToVer = d.String()
		}
	}
	fillDiff(v, manifest.Diff(ms[0], ms[1]))
	return http.StatusOK
}

// errBadVersion is a diff side that is neither a branch nor a digest.
var errBadVersion = errors.New("not a branch of this image nor a version digest")

// versionOf resolves a branch name or a digest of im to a version.
func versionOf(im imgstore.ImageInfo, ref string) (manifest.Digest, error) {
	if strings.HasPrefix(ref, "sha256:") {
		d, err := manifest.ParseDigest(ref)
		if err != nil {
			return d, fmt.Errorf("%q is %w", ref, errBadVersion)
		}
		return d, nil
	}
	for _, b := range im.Branches {
		if b.Name == ref {
			return b.Digest, nil
		}
	}
	return manifest.Digest{}, fmt.Errorf("%q is %w", ref, errBadVersion)
}

// fillDiff puts the changes in the view, each list capped.
func fillDiff(v *components.ImageDiffView, c manifest.Changes) {
	v.Compared, v.Identical = true, c.Empty()
	v.AddedN, v.ChangedN, v.RemovedN = len(c.Added), len(c.Changed), len(c.Removed)
	v.Added = c.Added[:min(len(c.Added), diffListMax)]
	v.Removed = c.Removed[:min(len(c.Removed), diffListMax)]
	for _, ch := range c.Changed[:min(len(c.Changed), diffListMax)] {
		v.Changed = append(v.Changed, components.PathChangeRow{Path: ch.Path, What: ch.What.String()})
	}
}

// publish writes a branch's boot files after it came to point at another
// version. The change stands either way: a failure is logged, and the
// next commit to the branch publishes again; an image without a kernel is
// normal until one is installed.
func (u *UI) publish(ctx context.Context, image, branch string) {
	u.movePublished(ctx, "", "", image, branch)
}

// movePublished moves a branch's boot files as the API does after the same
// change; a failure is logged, and the next commit publishes again.
func (u *UI) movePublished(ctx context.Context, fromImage, fromBranch, toImage, toBranch string) {
	if err := u.images.MovePublished(ctx, fromImage, fromBranch, toImage, toBranch); err != nil {
		u.log.Error("boot files not moved", "from", fromImage+":"+fromBranch, "to", toImage+":"+toBranch, "err", err)
	}
}
