package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/push"
)

// uploadWorkers is how many blobs an import reads and uploads at once.
const uploadWorkers = 4

// Result is what an import did.
type Result struct {
	Files         int             // regular file entries (hardlinks not counted)
	BytesScanned  uint64          // sum of their sizes
	BlobsUploaded int             // blobs and chunks written; the rest were present
	BytesUploaded uint64          // their sizes
	Manifest      manifest.Digest // the new version
	Base          manifest.Digest // the branch's version before; zero for a new branch
	Changes       manifest.Changes
	// Lease is the import's GC lease (see BeginImport), still held after
	// StageDir so GC keeps the staged version until it is committed: end it
	// with EndImport after the commit. ImportDir does.
	Lease Lease
}

// ImportDir imports the tree dir as a new version of branch of the image
// named image, creating either when new: it stores every blob and the
// manifest, then moves the branch. If the branch moved during the import,
// it returns ErrConflict and the branch keeps the other commit.
func (s *Store) ImportDir(ctx context.Context, image, branch, dir string) (Result, error) {
	return s.ImportDirWith(ctx, image, branch, dir, CommitInfo{})
}

// ImportDirWith is ImportDir recording who imported and why in the
// branch's history.
func (s *Store) ImportDirWith(ctx context.Context, image, branch, dir string, info CommitInfo, opts ...Options) (Result, error) {
	r, err := s.StageDir(ctx, image, branch, dir)
	if err != nil {
		return r, err
	}
	info.Changes = &r.Changes
	err = s.CommitWith(ctx, image, branch, r.Base, r.Manifest, info, opts...)
	if e := s.EndImport(ctx, r.Lease); err == nil {
		err = e
	}
	return r, err
}

// StageDir does all of ImportDir but moving the branch: it reads the
// branch's current version (the base Commit must still find), scans dir,
// uploads missing blobs and stores the manifest, all under an import lease
// it returns in Result.Lease for the caller to end after its commit.
func (s *Store) StageDir(ctx context.Context, image, branch, dir string) (r Result, err error) {
	if r.Lease, err = s.BeginImport(ctx); err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			s.EndImport(context.WithoutCancel(ctx), r.Lease)
		}
	}()
	prev := &manifest.Manifest{Version: manifest.FormatVersion}
	base, err := s.Branch(ctx, image, branch)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return r, err
	default:
		r.Base = base
		if prev, err = s.Manifest(ctx, base); err != nil {
			return r, err
		}
	}
	m, pr, err := push.Dir(ctx, Leased{Store: s, Lease: r.Lease}, dir, push.Options{Workers: uploadWorkers})
	if err != nil {
		return r, fmt.Errorf("import %s: %w", dir, err)
	}
	r.Files, r.BytesScanned, r.BlobsUploaded, r.BytesUploaded, r.Manifest = pr.Files, pr.BytesScanned, pr.BlobsUploaded, pr.BytesUploaded, pr.Manifest
	r.Changes = manifest.Diff(prev, m)
	return r, nil
}

// Leased is the store as the sink of one import holding Lease (see
// functions/image/push): every digest it is asked about is pinned before
// it is looked up, so GC cannot delete what the import found present
// before the import commits and ends the lease.
type Leased struct {
	Store *Store
	Lease Lease
}

// Missing pins ds and returns those the store lacks.
func (l Leased) Missing(ctx context.Context, ds []manifest.Digest) ([]manifest.Digest, error) {
	return l.Store.MissingPinned(ctx, l.Lease, ds)
}

// PutBlob stores a blob Missing reported (and so pinned).
func (l Leased) PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	return l.Store.PutBlob(ctx, d, r, size)
}

// PutManifest pins and stores the import's manifest.
func (l Leased) PutManifest(ctx context.Context, m *manifest.Manifest) (manifest.Digest, error) {
	return l.Store.PutManifestLeased(ctx, m, l.Lease)
}
