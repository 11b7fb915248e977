package sync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// BatchSource fetches many blobs in one request (functions/client's
// Boot.FetchBlobs behind the session): it calls each with every blob, in
// the order asked, and each reads r to its end. A source whose stream is
// cut or whose content does not match its digest returns an error; the
// blobs each already took stay good.
type BatchSource interface {
	FetchBlobs(ctx context.Context, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error
}

// PrefetchOptions tunes Prefetch. The zero value is ready to use.
type PrefetchOptions struct {
	// MaxBlob is the largest piece fetched in batches (1 MiB: every chunk
	// and small file); larger ones go to the fallback.
	MaxBlob uint64
	// BatchBlobs and BatchBytes bound one batch (256 blobs, 4 MiB: with
	// base64's third more it stays under AWS Lambda's 6 MB answer, so a
	// boot function run as a Lambda serves batches too).
	BatchBlobs int
	BatchBytes uint64
	// InFlight is how many batches run at once (2).
	InFlight int
	// Budget bounds the bytes fetched and not yet read, with those of the
	// batches under way (64 MiB). A blob larger than the budget is still
	// fetched, alone, when nothing else is held.
	Budget uint64
}

func (o PrefetchOptions) withDefaults() PrefetchOptions {
	if o.MaxBlob == 0 {
		o.MaxBlob = 1 << 20
	}
	if o.BatchBlobs <= 0 {
		o.BatchBlobs = 256
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 4 << 20
	}
	if o.InFlight <= 0 {
		o.InFlight = 2
	}
	if o.Budget == 0 {
		o.Budget = 64 << 20
	}
	return o
}

// PrefetchStats is what a Prefetcher did.
type PrefetchStats struct {
	Batches   int // batches asked for
	Failed    int // batches that failed or were cut short
	Fetched   int // blobs that arrived in batches
	Served    int // Opens answered from a batch
	Fallbacks int // Opens passed to the fallback
}

// Prefetcher is a Fetcher that fetches the pieces a plan will ask for
// ahead, in batches, and serves Apply's Opens from what arrived.
type Prefetcher struct {
	src      BatchSource
	fallback Fetcher
	opts     PrefetchOptions
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	wake     *sync.Cond // budget freed, a batch ended, or stopped
	want     map[manifest.Digest]*pending
	order    []manifest.Digest // distinct digests, first use first
	next     int               // order[next] is the next to ask for
	used     uint64            // bytes held and reserved by batches under way
	inflight int
	stopped  bool
	stats    PrefetchStats
}

// Blob states.
const (
	queued   = iota // not asked for yet: an Open passes it to the fallback
	fetching        // in a batch under way: an Open waits for it
	ready           // arrived: Opens take it
	gone            // failed, skipped, or dropped: Opens use the fallback
)

// pending is one distinct blob the plan fetches.
type pending struct {
	d     manifest.Digest
	size  uint64
	refs  int // Opens still expected
	taken int // Opens served
	state int
	data  []byte
	done  chan struct{} // closed when it leaves fetching
}

// Prefetch starts fetching the pieces Apply will fetch for p, in the order
// its workers ask for them (files of Create, then Replace, those that copy
// from a file the plan writes last; each file's pieces in order), and
// returns a Fetcher for Apply that serves them from memory. An Open of a
// blob whose batch is under way waits for it; anything not prefetched,
// not asked for yet, dropped, or whose batch failed goes to fallback, so
// Apply writes the same either way. A failed batch stops prefetching (a
// server without batches answers the first one with an error). Close it
// after Apply (or cancel ctx) to stop what runs.
func Prefetch(ctx context.Context, p *SyncPlan, src BatchSource, fallback Fetcher, opts PrefetchOptions) *Prefetcher {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	f := &Prefetcher{src: src, fallback: fallback, opts: opts, cancel: cancel, want: map[manifest.Digest]*pending{}}
	f.wake = sync.NewCond(&f.mu)
	for _, pc := range fetchOrder(p) {
		if pc.Size > opts.MaxBlob {
			continue
		}
		w := f.want[pc.Digest]
		if w == nil {
			w = &pending{d: pc.Digest, size: pc.Size, done: make(chan struct{})}
			f.want[pc.Digest] = w
			f.order = append(f.order, pc.Digest)
		}
		w.refs++
	}
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.stopped = true
		f.wake.Broadcast()
		f.mu.Unlock()
	})
	f.wg.Go(func() { f.run(ctx) })
	return f
}

// fetchOrder lists the pieces Apply fetches, in the order its workers
// take them: see applier.run and writeFile.
func fetchOrder(p *SyncPlan) []Piece {
	var first, later []Piece
	for _, list := range [][]Item{p.Create, p.Replace} {
		for i := range list {
			it := &list[i]
			if it.Entry.Type != manifest.TypeFile {
				continue
			}
			after := false
			seen := map[manifest.Digest]bool{}
			var pcs []Piece
			for _, pc := range it.Pieces {
				after = after || pc.After
				// A piece already written to this file is read back
				// from it, not fetched.
				if pc.From == "" && !seen[pc.Digest] {
					pcs = append(pcs, pc)
				}
				seen[pc.Digest] = true
			}
			if after {
				later = append(later, pcs...)
			} else {
				first = append(first, pcs...)
			}
		}
	}
	return append(first, later...)
}

// run asks for batches in order while the budget and the number in
// flight allow, until every blob was asked for or it is stopped.
func (f *Prefetcher) run(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		batch, ok := f.nextBatch()
		if !ok {
			return
		}
		if len(batch) == 0 {
			f.wake.Wait()
			continue
		}
		f.inflight++
		f.stats.Batches++
		f.wg.Go(func() { f.fetch(ctx, batch) })
	}
}

// nextBatch picks the next batch and reserves its bytes: none (with ok)
// when it must wait, ok false when there is nothing more to do. The
// caller holds mu.
func (f *Prefetcher) nextBatch() (batch []*pending, ok bool) {
	if f.stopped {
		return nil, false
	}
	if f.inflight >= f.opts.InFlight {
		return nil, true
	}
	// Blobs every Open already passed by are not asked for.
	for f.next < len(f.order) && f.want[f.order[f.next]].refs == 0 {
		f.want[f.order[f.next]].state = gone
		f.next++
	}
	if f.next == len(f.order) {
		return nil, f.inflight > 0
	}
	if w := f.want[f.order[f.next]]; f.used > 0 && f.used+w.size > f.opts.Budget {
		f.dropTaken(w.size)
	}
	var bytes uint64
	for f.next < len(f.order) && len(batch) < f.opts.BatchBlobs {
		w := f.want[f.order[f.next]]
		if w.refs == 0 {
			w.state = gone
			f.next++
			continue
		}
		fits := f.used+w.size <= f.opts.Budget && bytes+w.size <= f.opts.BatchBytes
		if !fits && (len(batch) > 0 || f.used > 0) {
			break
		}
		w.state = fetching
		f.used += w.size
		bytes += w.size
		batch = append(batch, w)
		f.next++
	}
	return batch, true
}

// dropTaken frees room for need bytes by dropping blobs that were served
// and are wanted again by a later file: holding them for it could fill
// the budget with blobs waiting for files far ahead, while the files in
// between wait for room. Those later files fetch them from the fallback.
// The caller holds mu.
func (f *Prefetcher) dropTaken(need uint64) {
	for _, w := range f.want {
		if f.used+need <= f.opts.Budget {
			return
		}
		if w.state == ready && w.taken > 0 {
			w.state, w.data = gone, nil
			f.used -= w.size
		}
	}
}

// fetch asks for one batch and files what arrives.
func (f *Prefetcher) fetch(ctx context.Context, batch []*pending) {
	ds := make([]manifest.Digest, len(batch))
	for i, w := range batch {
		ds[i] = w.d
	}
	i := 0
	err := f.src.FetchBlobs(ctx, ds, func(d manifest.Digest, r io.Reader, size int64) error {
		if i == len(batch) || d != batch[i].d || size != int64(batch[i].size) {
			return fmt.Errorf("batch answered blob %s of %d bytes out of turn", d, size)
		}
		w := batch[i]
		data := make([]byte, w.size)
		if _, err := io.ReadFull(r, data); err != nil {
			return err
		}
		// Reading to the end is what checks the content.
		if extra, err := io.ReadAll(io.LimitReader(r, 1)); err != nil || len(extra) != 0 {
			return fmt.Errorf("blob %s: longer than %d bytes (%v)", d, w.size, err)
		}
		f.mu.Lock()
		w.state, w.data = ready, data
		f.stats.Fetched++
		if w.refs == 0 {
			// Its Opens gave up waiting (their context ended).
			w.state, w.data = gone, nil
			f.used -= w.size
			f.wake.Broadcast()
		}
		close(w.done)
		f.mu.Unlock()
		i++
		return nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || i < len(batch) {
		f.stats.Failed++
		// Stop asking: the next batch would most likely fail the same way.
		f.stopped = true
		for _, w := range batch[i:] {
			w.state = gone
			f.used -= w.size
			close(w.done)
		}
	}
	f.inflight--
	f.wake.Broadcast()
}

// Open returns blob d: from a batch when d was prefetched (waiting for
// its batch if it is under way), from the fallback otherwise.
func (f *Prefetcher) Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error) {
	f.mu.Lock()
	w := f.want[d]
	if w != nil && w.refs > 0 && w.state == fetching {
		f.mu.Unlock()
		select {
		case <-w.done:
		case <-ctx.Done():
			f.mu.Lock()
			w.refs--
			f.mu.Unlock()
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	if w == nil || w.refs == 0 || w.state != ready || w.size != size {
		if w != nil && w.refs > 0 {
			w.refs--
		}
		f.stats.Fallbacks++
		f.mu.Unlock()
		return f.fallback.Open(ctx, d, size)
	}
	w.refs--
	w.taken++
	f.stats.Served++
	data := w.data
	last := w.refs == 0
	if last {
		// Freed when read, below; Opens from now on use the fallback.
		w.state, w.data = gone, nil
	}
	f.mu.Unlock()
	r := &heldBlob{Reader: bytes.NewReader(data)}
	if last {
		r.release = func() {
			f.mu.Lock()
			f.used -= w.size
			f.wake.Broadcast()
			f.mu.Unlock()
		}
	}
	return r, nil
}

// heldBlob reads a prefetched blob; closing the last reader of it frees
// its room in the budget.
type heldBlob struct {
	*bytes.Reader
	once    sync.Once
	release func()
}

func (h *heldBlob) Close() error {
	if h.release != nil {
		h.once.Do(h.release)
	}
	return nil
}

// Stats reports what the Prefetcher did so far.
func (f *Prefetcher) Stats() PrefetchStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close stops prefetching and waits for the batches under way to end;
// Opens after it use the fallback.
func (f *Prefetcher) Close() error {
	f.cancel()
	f.wg.Wait()
	return nil
}
