package boot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
)

// A sync fetches hundreds of small blobs; one request each costs a token
// check, an object store read and a round trip apiece. POST
// /boot/sessions/{id}/blobs with {"digests": [...]} answers them all at
// once, as BlobsType: for each digest in the order asked, its length as 8
// bytes big-endian, then its bytes. The node checks every blob against its
// digest, as it does those it GETs.
//
// The first blob is looked up before the status goes out, so a missing
// one is a clean 404 naming it. A blob missing or failing after that
// cuts the answer short: the node sees a short read and fetches the rest
// another way.

// BlobsType is the media type of a batch of blobs.
const BlobsType = "application/vnd.herd.blobs"

// MaxBatchBlobs is the most digests one batch may ask for.
const MaxBatchBlobs = 1000

// maxBatchBody caps a batch request: 1000 digests of 71 bytes in quotes,
// with commas and room to spare.
const maxBatchBody = 128 << 10

// BlobsRequest is the body of a batch of blobs.
type BlobsRequest struct {
	Digests []string `json:"digests"`
}

// parseBlobsRequest checks a batch's digests: 1 to MaxBatchBlobs, each
// valid.
func parseBlobsRequest(req BlobsRequest) ([]manifest.Digest, error) {
	if len(req.Digests) == 0 || len(req.Digests) > MaxBatchBlobs {
		return nil, problem.New(http.StatusBadRequest, "bad-batch", "Bad batch of blobs",
			fmt.Sprintf("ask for 1 to %d digests, not %d", MaxBatchBlobs, len(req.Digests)))
	}
	ds := make([]manifest.Digest, len(req.Digests))
	for i, s := range req.Digests {
		d, err := manifest.ParseDigest(s)
		if err != nil {
			return nil, problem.New(http.StatusBadRequest, "bad-digest", "Bad digest",
				fmt.Sprintf("digest %d: %v (want sha256:<64 hex digits>)", i, err))
		}
		ds[i] = d
	}
	return ds, nil
}

// nodeBlobs answers a batch of blobs, from the blob cache where it can,
// filling it on the way.
func (h *Handler) nodeBlobs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := h.nodeSession(w, r)
	if !ok {
		return
	}
	var req BlobsRequest
	if err := decodeAtMost(r, &req, maxBatchBody); err != nil {
		h.fail(w, r, err)
		return
	}
	ds, err := parseBlobsRequest(req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, oa := h.images()
	if oa == nil {
		h.fail(w, r, noImages())
		return
	}
	b, err := h.blobs.get(ctx, oa.Objects, ds[0])
	if errors.Is(err, objstore.ErrNotFound) {
		h.fail(w, r, problem.New(http.StatusNotFound, "not-found", "Not found", fmt.Sprintf("%s is not stored", ds[0])))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", BlobsType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	next := h.readAhead(ctx, oa.Objects, ds, b)
	defer next.stop()
	for i, d := range ds {
		b, err := next.blob(i)
		if err == nil {
			err = writeFrame(w, b)
			b.close()
		}
		if err != nil {
			// The node sees a short read and fetches the rest another way.
			h.log.Warn("batch of blobs cut short", "session", id, "digest", d.String(), "blob", i, "of", len(ds), "err", err)
			return
		}
	}
}

// readAheadBlobs is how many blobs of a batch are read from the cache or
// the object store while the one before them is written: reads are
// latency bound, and one at a time would make a batch slower than the
// parallel GETs it replaces.
const readAheadBlobs = 8

// aheadReads reads the blobs of a batch in order, up to readAheadBlobs
// before the one being written.
type aheadReads struct {
	results []chan aheadResult
	slots   chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	taken   int
}

type aheadResult struct {
	b   blob
	err error
}

// readAhead starts reading ds after the first, which the caller has
// already read as first.
func (h *Handler) readAhead(ctx context.Context, obj *objstore.Store, ds []manifest.Digest, first blob) *aheadReads {
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadReads{results: make([]chan aheadResult, len(ds)), slots: make(chan struct{}, readAheadBlobs), cancel: cancel}
	for i := range a.results {
		a.results[i] = make(chan aheadResult, 1)
	}
	a.results[0] <- aheadResult{b: first}
	a.wg.Go(func() {
		for i := 1; i < len(ds); i++ {
			select {
			case a.slots <- struct{}{}:
			case <-ctx.Done():
				for ; i < len(ds); i++ {
					a.results[i] <- aheadResult{err: ctx.Err()}
				}
				return
			}
			a.wg.Go(func() {
				b, err := h.blobs.get(ctx, obj, ds[i])
				a.results[i] <- aheadResult{b, err}
			})
		}
	})
	return a
}

// blob returns blob i, waiting for its read; blobs are taken in order.
func (a *aheadReads) blob(i int) (blob, error) {
	r := <-a.results[i]
	a.taken = i + 1
	if i > 0 {
		<-a.slots
	}
	return r.b, r.err
}

// stop ends the reads and closes the streams of blobs not taken.
func (a *aheadReads) stop() {
	a.cancel()
	a.wg.Wait()
	for _, c := range a.results[a.taken:] {
		select {
		case r := <-c:
			r.b.close()
		default:
		}
	}
}

// writeFrame writes one blob of a batch: its length, then its bytes.
func writeFrame(w io.Writer, b blob) error {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(b.size()))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := io.CopyN(w, b.reader(), b.size())
	return err
}
