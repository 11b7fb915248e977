package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/scan"
)

// uploadWorkers is how many blobs an import uploads at once.
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
	m, err := scan.Tree(ctx, dir, scan.Options{})
	if err != nil {
		return r, err
	}
	if err := s.Pin(ctx, r.Lease, wholeBlobs(m)...); err != nil {
		return r, fmt.Errorf("import %s: %w", dir, err)
	}
	if err := s.uploadFiles(ctx, dir, m, &r); err != nil {
		return r, fmt.Errorf("import %s: %w", dir, err)
	}
	if r.Manifest, err = s.putManifest(ctx, m, &r.Lease); err != nil {
		return r, fmt.Errorf("import %s: %w", dir, err)
	}
	r.Changes = manifest.Diff(prev, m)
	return r, nil
}

// uploadFiles uploads the content of every file entry of m, read from dir,
// and records the chunks of big files in their entries.
func (s *Store) uploadFiles(ctx context.Context, dir string, m *manifest.Manifest, r *Result) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		blobs, nbytes atomic.Uint64
		mu            sync.Mutex
		seen          = make(map[manifest.Digest]bool) // blobs handled by this import
		jobs          = make(chan *manifest.Entry)
		wg            sync.WaitGroup
	)
	claim := func(d manifest.Digest) bool {
		mu.Lock()
		defer mu.Unlock()
		if seen[d] {
			return false
		}
		seen[d] = true
		return true
	}
	up := func(d manifest.Digest, rd io.Reader, size int64, chunk bool) error {
		if chunk {
			// Whole-file blobs were pinned before the upload began.
			if err := s.Pin(ctx, r.Lease, d); err != nil {
				return err
			}
		}
		ok, err := s.putIfAbsent(ctx, BlobKey(d), d, rd, size)
		if ok {
			blobs.Add(1)
			nbytes.Add(uint64(size))
		}
		return err
	}
	for range uploadWorkers {
		wg.Go(func() {
			for e := range jobs {
				if err := s.uploadFile(ctx, filepath.Join(dir, filepath.FromSlash(e.Path)), e, claim, up); err != nil {
					cancel(fmt.Errorf("%q: %w", e.Path, err))
				}
			}
		})
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != manifest.TypeFile {
			continue
		}
		r.Files++
		r.BytesScanned += e.Size
		if e.Size == 0 || !chunk.Chunked(int64(e.Size)) && !claim(e.Digest) {
			continue // empty files need no blob; this content is already queued
		}
		select {
		case jobs <- e:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	r.BlobsUploaded, r.BytesUploaded = int(blobs.Load()), nbytes.Load()
	return context.Cause(ctx)
}

// uploadFile uploads the file at path of entry e as one blob, or as chunks
// when big; a small file's digest is already claimed by the caller.
func (s *Store) uploadFile(ctx context.Context, path string, e *manifest.Entry, claim func(manifest.Digest) bool, up func(d manifest.Digest, r io.Reader, size int64, chunk bool) error) error {
	if !chunk.Chunked(int64(e.Size)) {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return up(e.Digest, f, int64(e.Size), false)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := chunk.NewChunker(f, chunk.DefaultParams())
	if err != nil {
		return err
	}
	whole := sha256.New()
	var chunks []manifest.Chunk
	var total uint64
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		b := c.Bytes()
		whole.Write(b)
		total += uint64(len(b))
		chunks = append(chunks, manifest.Chunk{Digest: ch.Digest, Size: uint64(len(b))})
		if claim(ch.Digest) {
			if err := up(ch.Digest, bytes.NewReader(b), int64(len(b)), true); err != nil {
				return err
			}
		}
	}
	if got := manifest.Digest(whole.Sum(nil)); total != e.Size || got != e.Digest {
		return fmt.Errorf("changed since the scan: %d bytes with digest %s, scanned %d bytes with %s", total, got, e.Size, e.Digest)
	}
	// Only this worker touches e until uploadFiles returns.
	e.Chunks = chunks
	return nil
}

// wholeBlobs returns the digests of the files of m stored as one blob.
func wholeBlobs(m *manifest.Manifest) []manifest.Digest {
	var ds []manifest.Digest
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Type == manifest.TypeFile && e.Size > 0 && !chunk.Chunked(int64(e.Size)) {
			ds = append(ds, e.Digest)
		}
	}
	return ds
}
