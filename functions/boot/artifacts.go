package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/minio/minio-go/v7"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
)

// Artifacts finds and opens what a node boots: the kernel and initrd of an
// image branch and bootenv's initramfs. The image store (a later issue)
// will resolve branches to manifests; until then ObjectArtifacts reads
// fixed keys.
type Artifacts interface {
	// Image returns the object keys of the kernel and the modules archive
	// of an image's branch: of kernel version kernel, or of the newest
	// when kernel is empty. A missing one is a *MissingError.
	Image(ctx context.Context, image, branch, kernel string) (kernelKey, modulesKey string, err error)
	// Bootenv returns the object key of bootenv's initramfs, or a
	// *MissingError.
	Bootenv(ctx context.Context) (string, error)
	// Open opens one artifact for reading; a missing one is a
	// *MissingError.
	Open(ctx context.Context, key string) (*Artifact, error)
}

// Artifact is an open boot file: seekable, so it can be served in ranges
// without holding it in memory.
type Artifact struct {
	Content  io.ReadSeekCloser
	Size     int64
	ETag     string // strong entity tag, quoted
	Modified time.Time
}

// MissingError says which boot file is not there.
type MissingError struct {
	What string // "kernel of image rocky9 branch live", "bootenv initramfs", …
	Key  string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("the %s is missing (object %s)", e.What, e.Key)
}

// LiveBranch is the branch a node boots when neither it nor its group names
// one.
const LiveBranch = "live"

// BootenvKey is where bootenv's initramfs lives in the object store.
const BootenvKey = "bootenv/initramfs"

// ModulesFile is the image file iPXE loads after bootenv: the kernel's
// modules as a cpio archive the kernel appends to bootenv's initramfs
// (functions/image/store.Publish writes it beside the kernel).
const ModulesFile = "modules"

// ImageKey is the object key of one published boot file of an image branch.
func ImageKey(image, branch, file string) string { return imgstore.ArtifactKey(image, branch, file) }

// KeySegment escapes a name into one segment of an object key.
func KeySegment(s string) string { return imgstore.KeySegment(s) }

// ObjectArtifacts serves boot files from the object store.
type ObjectArtifacts struct {
	Objects *objstore.Store
	// Seen, when set, remembers for a short while that a boot file exists,
	// so a boot storm asks the object store once per file, not three
	// times per node. It is shared (Redis), like everything functions know.
	Seen Presence
	// Live, when set, names an image's live branch: a node that pins no
	// branch (LiveBranch) boots the files published for that branch.
	Live func(ctx context.Context, image string) (string, error)
}

// Presence remembers which object keys were found to exist.
type Presence interface {
	// Present reports whether key was seen to exist recently.
	Present(ctx context.Context, key string) bool
	// Saw records that key exists.
	Saw(ctx context.Context, key string)
}

// Image checks that the branch's kernel and initrd exist.
func (a ObjectArtifacts) Image(ctx context.Context, image, branch, version string) (string, string, error) {
	if branch == LiveBranch && a.Live != nil {
		live, err := a.Live(ctx, image)
		if errors.Is(err, imgstore.ErrNotFound) {
			return "", "", &MissingError{What: "image " + image, Key: "images/" + KeySegment(image)}
		}
		if err != nil {
			return "", "", err
		}
		branch = live
	}
	kernel, initrd := ImageKey(image, branch, "kernel"), ImageKey(image, branch, ModulesFile)
	what := fmt.Sprintf("image %s branch %s", image, branch)
	if version != "" {
		kernel = imgstore.VersionArtifactKey(image, branch, version, "kernel")
		initrd = imgstore.VersionArtifactKey(image, branch, version, ModulesFile)
		what = fmt.Sprintf("image %s branch %s version %s", image, branch, version)
	}
	var (
		wg   sync.WaitGroup
		errs [2]error
	)
	for i, f := range []struct{ key, what string }{{kernel, "kernel of " + what}, {initrd, "kernel modules of " + what}} {
		wg.Go(func() { errs[i] = a.exists(ctx, f.key, f.what) })
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		// Report the first missing file; any other failure wins.
		for _, e := range errs {
			var me *MissingError
			if e != nil && !errors.As(e, &me) {
				return "", "", e
			}
		}
		if errs[0] != nil {
			return "", "", errs[0]
		}
		return "", "", errs[1]
	}
	return kernel, initrd, nil
}

// Bootenv checks that bootenv's initramfs exists.
func (a ObjectArtifacts) Bootenv(ctx context.Context) (string, error) {
	return BootenvKey, a.exists(ctx, BootenvKey, "bootenv initramfs")
}

func (a ObjectArtifacts) exists(ctx context.Context, key, what string) error {
	if a.Seen != nil && a.Seen.Present(ctx, key) {
		return nil
	}
	rc, _, err := a.Objects.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return &MissingError{What: what, Key: key}
	}
	if err != nil {
		return err
	}
	if a.Seen != nil {
		a.Seen.Saw(ctx, key)
	}
	return rc.Close()
}

// objectStatter is the minio object's view of its metadata.
type objectStatter interface {
	Stat() (minio.ObjectInfo, error)
}

// Open opens the object under key. The minio object it wraps fetches
// ranges on demand as it is read and sought.
func (a ObjectArtifacts) Open(ctx context.Context, key string) (*Artifact, error) {
	rc, size, err := a.Objects.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, &MissingError{What: "boot file", Key: key}
	}
	if err != nil {
		return nil, err
	}
	rsc, ok := rc.(io.ReadSeekCloser)
	if !ok {
		rc.Close()
		return nil, fmt.Errorf("open %s: the object store returned a %T, which cannot seek", key, rc)
	}
	art := &Artifact{Content: rsc, Size: size}
	if st, ok := rc.(objectStatter); ok {
		info, err := st.Stat()
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("open %s: %w", key, err)
		}
		art.Modified = info.LastModified
		if info.ETag != "" {
			art.ETag = `"` + strings.Trim(info.ETag, `"`) + `"`
		}
	}
	return art, nil
}

// artifact streams one of the session's boot files. http.ServeContent
// answers Range, If-Range, If-None-Match and If-Modified-Since; the object
// is read (and fetched from the object store) only as the client reads.
func (h *Handler) artifact(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	id, token := q.Get("session"), q.Get("token")
	if token == "" {
		token = bearer(r)
	}
	if !model.ValidBootSessionID(id) {
		h.fail(w, r, problem.New(http.StatusBadRequest, "bad-query", "Bad query",
			"session= must be the boot session id from the boot script"))
		return
	}
	if err := h.sessionFor(ctx, id, token); err != nil {
		h.fail(w, r, err)
		return
	}
	sess, err := h.store.BootSession(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	key := r.PathValue("key")
	if !slices.Contains(sess.Artifacts, key) {
		h.fail(w, r, problem.New(http.StatusForbidden, "forbidden", "Not a boot file of this session",
			fmt.Sprintf("session %s may fetch only its own boot files", id)))
		return
	}
	art, err := h.art.Open(ctx, key)
	var missing *MissingError
	if errors.As(err, &missing) {
		h.fail(w, r, problem.New(http.StatusNotFound, "not-found", "Boot file missing", missing.Error()))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer art.Content.Close()
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		ev := model.BootEvent{Step: "ipxe", State: model.EventInfo, Message: fmt.Sprintf("fetching %s (%d bytes)", key, art.Size)}
		if _, _, err := h.store.AddBootEvent(ctx, id, ev); err != nil {
			h.log.Warn("boot event not recorded", "session", id, "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "private, no-cache")
	if art.ETag != "" {
		w.Header().Set("ETag", art.ETag)
	}
	http.ServeContent(w, r, path.Base(key), art.Modified, art.Content)
}
