package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
)

// uploader stores contents as they are read: the reading goroutine hashes
// and cuts, workers upload. Each queued blob holds its own bytes, so memory
// is bounded by the queue: (2*workers + workers running) blobs of at most
// chunk.Threshold bytes.
type uploader struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	blobs  Blobs
	jobs   chan blob
	wg     sync.WaitGroup

	mu   sync.Mutex
	seen map[manifest.Digest]bool // blobs this import has queued

	files         int
	bytesRead     uint64
	blobsUploaded atomic.Int64
	bytesUploaded atomic.Uint64
}

type blob struct {
	d manifest.Digest
	b []byte
}

func newUploader(ctx context.Context, blobs Blobs, workers int) *uploader {
	ctx, cancel := context.WithCancelCause(ctx)
	u := &uploader{ctx: ctx, cancel: cancel, blobs: blobs, jobs: make(chan blob, 2*workers), seen: make(map[manifest.Digest]bool)}
	for range workers {
		u.wg.Go(u.work)
	}
	return u
}

func (u *uploader) work() {
	for j := range u.jobs {
		if u.ctx.Err() != nil {
			continue // drain so the reader never blocks on a dead queue
		}
		ok, err := u.blobs.PutBlob(u.ctx, j.d, bytes.NewReader(j.b), int64(len(j.b)))
		if err != nil {
			u.cancel(fmt.Errorf("upload blob %s: %w", j.d, err))
			continue
		}
		if ok {
			u.blobsUploaded.Add(1)
			u.bytesUploaded.Add(uint64(len(j.b)))
		}
	}
}

// put queues b for upload under digest d unless this import queued d before.
func (u *uploader) put(d manifest.Digest, b []byte) error {
	u.mu.Lock()
	dup := u.seen[d]
	u.seen[d] = true
	u.mu.Unlock()
	if dup {
		return nil
	}
	select {
	case u.jobs <- blob{d: d, b: b}:
		return nil
	case <-u.ctx.Done():
		return context.Cause(u.ctx)
	}
}

// failed returns the upload error that stopped the import, if any.
func (u *uploader) failed() error {
	if u.ctx.Err() == nil {
		return nil
	}
	return context.Cause(u.ctx)
}

// wait waits for the queued uploads and returns the first error.
func (u *uploader) wait() error {
	close(u.jobs)
	u.wg.Wait()
	err := u.failed()
	u.cancel(nil)
	return err
}

// addStats adds the uploader's counts to s.
func (u *uploader) addStats(s *Stats) {
	s.Files += u.files
	s.BytesRead += u.bytesRead
	s.BlobsUploaded += int(u.blobsUploaded.Load())
	s.BytesUploaded += u.bytesUploaded.Load()
}

// file reads size bytes of one regular file from r, queues them for upload
// and fills e's Size, Digest and Chunks the way the directory import does:
// no blob for an empty file, one blob for a file below chunk.Threshold,
// FastCDC chunks with the store's default params above.
func (u *uploader) file(r io.Reader, size int64, e *manifest.Entry) error {
	u.files++
	e.Size = uint64(size)
	if size == 0 {
		e.Digest = manifest.Sum(nil)
		return nil
	}
	if !chunk.Chunked(size) {
		b := make([]byte, size)
		n, err := io.ReadFull(r, b)
		u.bytesRead += uint64(n)
		if err != nil {
			return fmt.Errorf("read contents after %d of %d bytes: %w", n, size, short(err))
		}
		e.Digest = manifest.Sum(b)
		return u.put(e.Digest, b)
	}
	c, err := chunk.NewChunker(r, chunk.DefaultParams())
	if err != nil {
		return err
	}
	whole := sha256.New()
	var total uint64
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read contents after %d of %d bytes: %w", total, size, short(err))
		}
		b := bytes.Clone(c.Bytes())
		whole.Write(b)
		total += uint64(len(b))
		u.bytesRead += uint64(len(b))
		e.Chunks = append(e.Chunks, manifest.Chunk{Digest: ch.Digest, Size: uint64(len(b))})
		if err := u.put(ch.Digest, b); err != nil {
			return err
		}
	}
	// The chunker takes an early end of input for the end of the file.
	if total != uint64(size) {
		return fmt.Errorf("read contents after %d of %d bytes: %w", total, size, short(io.ErrUnexpectedEOF))
	}
	whole.Sum(e.Digest[:0])
	return nil
}

// short marks an early end of a file's contents as a truncated archive.
func short(err error) error {
	if errors.Is(err, io.EOF) || isTruncation(err) {
		return truncated(io.ErrUnexpectedEOF)
	}
	return err
}
