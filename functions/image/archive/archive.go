// Package archive imports images from archives without extracting them: a
// plain or compressed tar of a root filesystem, an OCI image layout, or the
// tar that `docker save` writes. It streams every archive once, hashes and
// uploads file contents as it reads them (small files as one blob, big files
// as FastCDC chunks, exactly as the directory import stores them), and
// returns the image's manifest. Nothing is committed: the caller stores the
// manifest and moves a branch, so a refused archive leaves no version behind.
//
// Every tar entry first passes tarcheck's checks, so an archive that names a
// path twice, climbs out of the root, links outside it or ends early is
// refused with an error naming the entry (an *tarcheck.EntryError).
package archive

import (
	"context"
	"errors"
	"io"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/tarcheck"
)

// Blobs is where imported contents go; *store.Store satisfies it. PutBlob
// stores size bytes from r as the blob with digest d unless present and
// reports whether it uploaded.
type Blobs interface {
	PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (uploaded bool, err error)
}

// Options tunes an import. The zero value is ready to use.
type Options struct {
	// Ref picks the image of an OCI layout (its
	// org.opencontainers.image.ref.name annotation) or of a docker save
	// archive (one of its RepoTags; "name" means "name:latest"). Empty means
	// the only image there is.
	Ref string
	// Platform picks the manifest of a multi-platform image, as "os/arch" or
	// "os/arch/variant"; empty means linux/amd64.
	Platform string
	// Limits bound each tar read; the zero value means tarcheck.DefaultLimits.
	Limits tarcheck.Limits
	// Workers is how many blobs are uploaded at once; 0 means 4.
	Workers int
}

// Stats is what an import read and wrote.
type Stats struct {
	Files         int    // regular files read from the archive, hardlinks not counted
	BytesRead     uint64 // their content bytes
	BlobsUploaded int    // blobs and chunks written; the rest were present
	BytesUploaded uint64 // their sizes
	Layers        int    // layers applied; 1 for a plain tar
}

// Kind is what an import source is.
type Kind int

// Kinds Detect tells apart.
const (
	KindUnknown    Kind = iota
	KindDir             // a directory tree (a chroot): store.ImportDir's job
	KindOCI             // an OCI image layout directory (oci-layout, index.json, blobs/)
	KindDockerSave      // a `docker save` tar (manifest.json beside the layers), possibly compressed
	KindTar             // a plain tar of a root filesystem, possibly compressed
)

func (k Kind) String() string {
	switch k {
	case KindDir:
		return "directory"
	case KindOCI:
		return "OCI layout"
	case KindDockerSave:
		return "docker save archive"
	case KindTar:
		return "tar archive"
	}
	return "unknown"
}

// Errors an import wraps besides tarcheck's; test with errors.Is.
var (
	ErrFormat     = errors.New("not an image archive this import reads")
	ErrNoImage    = errors.New("no image matches")
	ErrAmbiguous  = errors.New("more than one image matches")
	ErrDigest     = errors.New("content does not match its digest")
	ErrLayerApply = errors.New("layer does not apply to the layers below it")
)

const defaultWorkers = 4

func (o Options) limits() tarcheck.Limits {
	if o.Limits == (tarcheck.Limits{}) {
		return tarcheck.DefaultLimits()
	}
	return o.Limits
}

func (o Options) workers() int {
	if o.Workers <= 0 {
		return defaultWorkers
	}
	return o.Workers
}
