// Package push stores a directory tree as an image version through a Sink:
// the image store itself on the appliance, or the REST API from the herd
// CLI. Each file is read once to hash it (functions/image/scan) and big
// files once more to cut them into chunks; the sink is then asked, in
// batches, which blobs it lacks, and only those are read again and sent.
// Re-pushing an unchanged tree sends no blob.
package push

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/scan"
)

// Sink is where blobs and manifests go. PutBlob must check the content
// against d and report whether it stored it (false: it was present).
type Sink interface {
	Missing(ctx context.Context, ds []manifest.Digest) ([]manifest.Digest, error)
	PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error)
	PutManifest(ctx context.Context, m *manifest.Manifest) (manifest.Digest, error)
}

// Phase names what a push is doing, for progress reports.
type Phase string

// The phases, in order.
const (
	PhaseScan   Phase = "scan"   // reading and hashing the tree
	PhaseChunk  Phase = "chunk"  // cutting big files into chunks
	PhaseCheck  Phase = "check"  // asking the sink what it lacks
	PhaseUpload Phase = "upload" // sending what it lacks
)

// Progress is a push's state: Done of Total bytes in Phase.
type Progress struct {
	Phase       Phase
	Done, Total uint64
}

// Options tunes a push. The zero value is ready to use.
type Options struct {
	Workers  int                 // blobs read and sent at once; default 4
	Batch    int                 // digests per Missing call; default 1000
	Progress func(Progress)      // called from several goroutines; may be nil
	Skip     func(p string) bool // paths left out, as scan.Options.Skip
}

// Result is what a push did.
type Result struct {
	Files         int    // regular files (hardlinks not counted)
	BytesScanned  uint64 // their total size
	BlobsUploaded int    // blobs the sink stored; the rest it had
	BytesUploaded uint64
	Manifest      manifest.Digest
}

// piece is one blob of the tree: a small file's content or a chunk of a
// big one, at off in the file at path.
type piece struct {
	path      string
	off, size int64
	digest    manifest.Digest
}

// Dir pushes the tree dir and returns the stored manifest with the result.
func Dir(ctx context.Context, sink Sink, dir string, opts Options) (*manifest.Manifest, Result, error) {
	var r Result
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	report := func(p Progress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	report(Progress{Phase: PhaseScan})
	m, err := scan.Tree(ctx, dir, scan.Options{Skip: opts.Skip})
	if err != nil {
		return nil, r, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, r, fmt.Errorf("push %s: %w", dir, err)
	}
	defer root.Close()

	pieces, err := cut(ctx, root, m, &r, opts, report)
	if err != nil {
		return nil, r, fmt.Errorf("push %s: %w", dir, err)
	}
	missing, err := missingPieces(ctx, sink, pieces, opts, report)
	if err != nil {
		return nil, r, fmt.Errorf("push %s: %w", dir, err)
	}
	if err := upload(ctx, sink, root, missing, &r, opts, report); err != nil {
		return nil, r, fmt.Errorf("push %s: %w", dir, err)
	}
	if r.Manifest, err = sink.PutManifest(ctx, m); err != nil {
		return nil, r, fmt.Errorf("push %s: %w", dir, err)
	}
	return m, r, nil
}

// cut lists the pieces of every file, one per distinct digest, chunking the
// big files (in parallel) and recording their chunks in m.
func cut(ctx context.Context, root *os.Root, m *manifest.Manifest, r *Result, opts Options, report func(Progress)) ([]piece, error) {
	var pieces []piece
	seen := map[manifest.Digest]bool{}
	var big []*manifest.Entry
	var bigBytes uint64
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != manifest.TypeFile {
			continue
		}
		r.Files++
		r.BytesScanned += e.Size
		switch {
		case e.Size == 0:
		case chunk.Chunked(int64(e.Size)):
			big = append(big, e)
			bigBytes += e.Size
		case !seen[e.Digest]:
			seen[e.Digest] = true
			pieces = append(pieces, piece{path: e.Path, size: int64(e.Size), digest: e.Digest})
		}
	}
	chunked := make([][]piece, len(big))
	var done atomic.Uint64
	err := forEach(ctx, opts.Workers, len(big), func(i int) error {
		ps, err := chunkFile(root, big[i])
		chunked[i] = ps
		report(Progress{Phase: PhaseChunk, Done: done.Add(big[i].Size), Total: bigBytes})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, ps := range chunked {
		for _, p := range ps {
			if !seen[p.digest] {
				seen[p.digest] = true
				pieces = append(pieces, p)
			}
		}
	}
	return pieces, nil
}

// chunkFile cuts the file of e into chunks, records them in e and checks
// that the whole still has the digest the scan found.
func chunkFile(root *os.Root, e *manifest.Entry) ([]piece, error) {
	f, err := root.Open(e.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := chunk.NewChunker(f, chunk.DefaultParams())
	if err != nil {
		return nil, err
	}
	whole := sha256.New()
	var ps []piece
	var chunks []manifest.Chunk
	var off int64
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e.Path, err)
		}
		b := c.Bytes()
		whole.Write(b)
		chunks = append(chunks, manifest.Chunk{Digest: ch.Digest, Size: uint64(len(b))})
		ps = append(ps, piece{path: e.Path, off: off, size: int64(len(b)), digest: ch.Digest})
		off += int64(len(b))
	}
	if got := manifest.Digest(whole.Sum(nil)); uint64(off) != e.Size || got != e.Digest {
		return nil, fmt.Errorf("%q changed while being read: %d bytes with digest %s, scanned %d bytes with %s", e.Path, off, got, e.Size, e.Digest)
	}
	e.Chunks = chunks
	return ps, nil
}

// missingPieces asks the sink, Batch digests at a time, which pieces it lacks.
func missingPieces(ctx context.Context, sink Sink, pieces []piece, opts Options, report func(Progress)) ([]piece, error) {
	var out []piece
	for start := 0; start < len(pieces); start += opts.Batch {
		batch := pieces[start:min(start+opts.Batch, len(pieces))]
		ds := make([]manifest.Digest, len(batch))
		for i, p := range batch {
			ds[i] = p.digest
		}
		miss, err := sink.Missing(ctx, ds)
		if err != nil {
			return nil, fmt.Errorf("ask which blobs are missing: %w", err)
		}
		lack := make(map[manifest.Digest]bool, len(miss))
		for _, d := range miss {
			lack[d] = true
		}
		for _, p := range batch {
			if lack[p.digest] {
				out = append(out, p)
			}
		}
		report(Progress{Phase: PhaseCheck, Done: uint64(start + len(batch)), Total: uint64(len(pieces))})
	}
	return out, nil
}

// upload sends the missing pieces with Workers at a time.
func upload(ctx context.Context, sink Sink, root *os.Root, pieces []piece, r *Result, opts Options, report func(Progress)) error {
	var total uint64
	for _, p := range pieces {
		total += uint64(p.size)
	}
	report(Progress{Phase: PhaseUpload, Total: total})
	var sent, blobs, stored atomic.Uint64
	err := forEach(ctx, opts.Workers, len(pieces), func(i int) error {
		p := pieces[i]
		f, err := root.Open(p.path)
		if err != nil {
			return err
		}
		defer f.Close()
		ok, err := sink.PutBlob(ctx, p.digest, io.NewSectionReader(f, p.off, p.size), p.size)
		if err != nil {
			return fmt.Errorf("%q: %w", p.path, err)
		}
		if ok {
			blobs.Add(1)
			stored.Add(uint64(p.size))
		}
		report(Progress{Phase: PhaseUpload, Done: sent.Add(uint64(p.size)), Total: total})
		return nil
	})
	r.BlobsUploaded, r.BytesUploaded = int(blobs.Load()), stored.Load()
	return err
}

// forEach runs f(0..n-1) on workers goroutines and returns the first error,
// after which no new call starts.
func forEach(ctx context.Context, workers, n int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
