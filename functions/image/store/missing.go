package store

import (
	"context"
	"sync"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// missingWorkers is how many existence checks Missing runs at once: the
// object store answers each in well under a millisecond on loopback, so a
// few in flight hide the round trips.
const missingWorkers = 16

// Missing returns the digests of ds whose blobs the store lacks, in the
// order given; duplicates are checked once.
func (s *Store) Missing(ctx context.Context, ds []manifest.Digest) ([]manifest.Digest, error) {
	uniq := make([]manifest.Digest, 0, len(ds))
	seen := make(map[manifest.Digest]bool, len(ds))
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	lack := make([]bool, len(uniq))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(missingWorkers, len(uniq)) {
		wg.Go(func() {
			for i := range jobs {
				ok, err := s.has(ctx, BlobKey(uniq[i]))
				if err != nil {
					cancel(err)
					continue
				}
				lack[i] = !ok
			}
		})
	}
feed:
	for i := range uniq {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	var out []manifest.Digest
	for i, d := range uniq {
		if lack[i] {
			out = append(out, d)
		}
	}
	return out, nil
}
