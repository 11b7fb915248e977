package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/image/manifest"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
)

// maxBootenv caps bootenv's initramfs: the static program, the disk tools
// and their libraries take tens of megabytes, not hundreds.
const maxBootenv = 512 << 20

func bootenvRoutes(a *API) {
	a.handle("PUT "+Prefix+"/bootenv", a.putBootenv)
	a.handle("GET "+Prefix+"/bootenv", a.getBootenv)
}

// bootenvStore is the object store bootenv goes to, or a problem when this
// deployment has none.
func (a *API) bootenvStore() (*objstore.Store, error) {
	obj, ok := a.Objects.(*objstore.Store)
	if !ok || obj == nil {
		return nil, problem.New(http.StatusServiceUnavailable, "no-object-store", "No object store",
			"this herd runs without an object store, so it has nowhere to keep bootenv")
	}
	return obj, nil
}

// putBootenv publishes bootenv's initramfs (herd bootenv build): every
// node boots it from the next boot on. The body's SHA-256 must match the
// X-Herd-Sha256 header, so a cut upload never replaces a good one.
func (a *API) putBootenv(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	obj, err := a.bootenvStore()
	if err != nil {
		return err
	}
	n, err := sizedBody(r, maxBootenv)
	if err != nil {
		return err
	}
	want := r.Header.Get("X-Herd-Sha256")
	d, err := manifest.ParseDigest("sha256:" + want)
	if err != nil {
		return problem.New(http.StatusBadRequest, "bad-digest", "Digest required",
			"send the initramfs's SHA-256 in hex as X-Herd-Sha256")
	}
	// The object store sees the last byte only once the digest matched.
	if err := obj.Put(r.Context(), boot.BootenvKey, imgstore.VerifyingReader(r.Body, d, n), n, "application/octet-stream"); err != nil {
		if strings.Contains(err.Error(), "content changed") || errors.Is(err, io.ErrUnexpectedEOF) {
			return problem.New(http.StatusUnprocessableEntity, "digest-mismatch", "Upload damaged",
				fmt.Sprintf("the upload is not the initramfs with SHA-256 %s (%v); the bootenv nodes boot is unchanged", want, err))
		}
		return err
	}
	ev := model.AuditEvent{Kind: "bootenv", Method: "publish", Refs: []string{"bootenv"},
		Msg:    fmt.Sprintf("bootenv published (%d bytes)", n),
		Extras: map[string]string{"sha256": want, "size": strconv.FormatInt(n, 10)}}
	if err := a.store.Record(r.Context(), id.Actor(), ev); err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.BootenvInfo{Size: n, SHA256: want})
}

func (a *API) getBootenv(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	obj, err := a.bootenvStore()
	if err != nil {
		return err
	}
	info, err := obj.Stat(r.Context(), boot.BootenvKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return problem.New(http.StatusNotFound, "not-found", "No bootenv", "no bootenv is published yet: run herd bootenv build")
	}
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.BootenvInfo{Size: info.Size, Modified: info.LastModified})
}
