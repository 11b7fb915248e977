package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
)

// OpenBlob opens the blob with digest d and returns its size; an error
// wrapping ErrNotFound when it is not stored. The content is as stored:
// PutBlob checked it against d on the way in.
func (s *Store) OpenBlob(ctx context.Context, d manifest.Digest) (io.ReadCloser, int64, error) {
	rc, n, err := s.obj.Get(ctx, BlobKey(d))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return rc, n, nil
}

// CreateEmpty makes the image with branch (live) pointing at a version that
// holds only an empty root directory, and returns that version. Simulators
// and tests use it to boot nodes before any real image is imported.
func (s *Store) CreateEmpty(ctx context.Context, image, branch string) (manifest.Digest, error) {
	m := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{{Path: ".", Type: manifest.TypeDir, Mode: 0o755}}}
	d, err := s.PutManifest(ctx, m)
	if err != nil {
		return d, err
	}
	return d, s.Commit(ctx, image, branch, manifest.Digest{}, d)
}
