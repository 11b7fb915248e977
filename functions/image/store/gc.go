package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// DefaultGrace is how old an unreferenced object must be before GC deletes
// it: an import uploads its blobs before its manifest and its commit, and
// one that holds no lease is protected by this alone.
const DefaultGrace = time.Hour

// leaseSlack widens the lease cutoff for clocks that disagree: a lease's
// start comes from the importer's clock, LastModified from the object
// store's.
const leaseSlack = time.Minute

// gcFlagTTL is how long the sweep flag outlives a GC that stops renewing
// it (a crash); gcRenew is how often a sweeping GC renews it.
const (
	gcFlagTTL = 2 * time.Minute
	gcRenew   = 30 * time.Second
)

// gcManifestWorkers is how many manifests the mark phase reads at once.
const gcManifestWorkers = 4

// ErrGCRunning is returned when another GC is sweeping.
var ErrGCRunning = errors.New("another image GC is running")

// GCOptions tune one GC run.
type GCOptions struct {
	Grace  time.Duration // unreferenced objects younger than this stay; 0: DefaultGrace
	DryRun bool          // count what would go, delete nothing (and block no import)
	Now    time.Time     // the time ages are measured from; zero: now
}

// GCResult is what a GC run found and did.
type GCResult struct {
	Images    int // images marked from
	Versions  int // distinct versions (manifests) reachable from branches and histories
	Blobs     int // distinct blobs they reference
	Leases    int // live import leases
	Pinned    int // distinct digests pinned by them
	Scanned   int // objects listed under blobs/ and manifests/
	KeptYoung int // unreferenced objects kept for being younger than Cutoff
	Foreign   int // objects whose key is no blob or manifest key (left alone)

	DeletedBlobs     int
	DeletedManifests int
	BytesFreed       int64 // sizes of the deleted objects (would-be, in a dry run)

	Cutoff time.Time // unreferenced objects modified before this were deleted
	DryRun bool
}

// marks is the set of objects GC keeps.
type marks struct {
	blobs     map[manifest.Digest]struct{}
	manifests map[manifest.Digest]struct{}
	pinned    map[manifest.Digest]struct{} // blob or manifest
}

// GC deletes the blobs and manifests nothing refers to: not a branch of any
// image, not a version in any branch's history (so rollback keeps working),
// not a live import's pin. It runs in this order, each step after the one
// before, so an import running alongside loses nothing:
//
//  1. raise the sweep flag (imports that pin from now on wait for the end);
//  2. read the live leases and their pins (an import pins before it looks
//     whether an object exists, so an object it found present is pinned);
//  3. read every image's branches and histories, one consistent snapshot
//     per image, and every version's manifest;
//  4. list blobs/ and manifests/ and delete each object that is unmarked
//     and older than the cutoff: the grace period before now, or the start
//     of the oldest live lease if that is earlier.
//
// A manifest that cannot be read stops GC before it deletes anything:
// without it, GC cannot know what it keeps.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	res, err := s.gc(ctx, opts)
	if err != nil {
		return res, fmt.Errorf("image GC: %w", err)
	}
	return res, nil
}

func (s *Store) gc(ctx context.Context, opts GCOptions) (GCResult, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	res := GCResult{DryRun: opts.DryRun, Cutoff: opts.Now.Add(-opts.Grace)}
	var flag *sweepFlag
	if !opts.DryRun {
		var err error
		if flag, err = s.raiseSweepFlag(ctx); err != nil {
			return res, err
		}
		defer flag.lower(context.WithoutCancel(ctx))
	}
	mk := marks{blobs: map[manifest.Digest]struct{}{}, manifests: map[manifest.Digest]struct{}{}, pinned: map[manifest.Digest]struct{}{}}
	oldest, err := s.readLeases(ctx, &mk, &res)
	if err != nil {
		return res, err
	}
	if !oldest.IsZero() {
		if c := oldest.Add(-leaseSlack); c.Before(res.Cutoff) {
			res.Cutoff = c
		}
	}
	versions, err := s.reachableVersions(ctx, &res)
	if err != nil {
		return res, err
	}
	if err := s.markVersions(ctx, versions, &mk); err != nil {
		return res, err
	}
	res.Versions, res.Blobs = len(mk.manifests), len(mk.blobs)
	if err := s.sweep(ctx, &mk, flag, &res); err != nil {
		return res, err
	}
	return res, nil
}

// sweepFlag is this GC's hold on image:gc.
type sweepFlag struct {
	s       *Store
	token   string
	renewed time.Time
}

func (s *Store) raiseSweepFlag(ctx context.Context) (*sweepFlag, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	f := &sweepFlag{s: s, token: hex.EncodeToString(b[:]), renewed: time.Now()}
	ok, err := s.rdb.SetNX(ctx, s.gcKey(), f.token, gcFlagTTL).Result()
	switch {
	case err != nil:
		return nil, fmt.Errorf("raise the sweep flag: %w", err)
	case !ok:
		return nil, ErrGCRunning
	}
	return f, nil
}

// Scripts that touch the flag only while it is still this GC's.
const (
	renewIfMine = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`
	dropIfMine  = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
)

// hold renews the flag when due and fails if it was lost (this GC stalled
// longer than gcFlagTTL): imports no longer wait, so deleting is unsafe.
func (f *sweepFlag) hold(ctx context.Context) error {
	if f == nil || time.Since(f.renewed) < gcRenew {
		return nil
	}
	n, err := f.s.rdb.Eval(ctx, renewIfMine, []string{f.s.gcKey()}, f.token, gcFlagTTL.Milliseconds()).Int()
	switch {
	case err != nil:
		return fmt.Errorf("renew the sweep flag: %w", err)
	case n != 1:
		return fmt.Errorf("lost the sweep flag (stalled for more than %s)", gcFlagTTL)
	}
	f.renewed = time.Now()
	return nil
}

func (f *sweepFlag) lower(ctx context.Context) {
	f.s.rdb.Eval(ctx, dropIfMine, []string{f.s.gcKey()}, f.token)
}

// readLeases drops expired leases, marks what the live ones pin and
// returns the start of the oldest (zero when there is none).
func (s *Store) readLeases(ctx context.Context, mk *marks, res *GCResult) (time.Time, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := s.rdb.ZRemRangeByScore(ctx, s.importsKey(), "-inf", "("+now).Err(); err != nil {
		return time.Time{}, fmt.Errorf("drop expired import leases: %w", err)
	}
	ids, err := s.rdb.ZRangeByScore(ctx, s.importsKey(), &redis.ZRangeBy{Min: now, Max: "+inf"}).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("read import leases: %w", err)
	}
	var oldest time.Time
	for _, id := range ids {
		start, err := leaseStart(id)
		if err != nil {
			return time.Time{}, err
		}
		if oldest.IsZero() || start.Before(oldest) {
			oldest = start
		}
		pins, err := s.rdb.SMembers(ctx, s.pinsKey(id)).Result()
		if err != nil {
			return time.Time{}, fmt.Errorf("read pins of import %s: %w", id, err)
		}
		for _, p := range pins {
			var d manifest.Digest
			if len(p) != len(d) {
				return time.Time{}, fmt.Errorf("import %s pins %d bytes, not a digest", id, len(p))
			}
			copy(d[:], p)
			mk.pinned[d] = struct{}{}
		}
	}
	res.Leases, res.Pinned = len(ids), len(mk.pinned)
	return oldest, nil
}

// reachableVersions returns every version a branch points at or its
// history names.
func (s *Store) reachableVersions(ctx context.Context, res *GCResult) (map[manifest.Digest]struct{}, error) {
	ids, err := s.rdb.HVals(ctx, s.namesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	vs := map[manifest.Digest]struct{}{}
	for _, id := range ids {
		if err := s.imageVersions(ctx, id, vs); err != nil {
			return nil, err
		}
	}
	res.Images = len(ids)
	return vs, nil
}

// imageVersions adds the versions of image id, read as one snapshot: a
// branch created and its source deleted between two reads would otherwise
// hide a version from both.
func (s *Store) imageVersions(ctx context.Context, id string, vs map[manifest.Digest]struct{}) error {
	for range commitRetries {
		var texts []string
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			texts = texts[:0]
			branches, err := tx.HGetAll(ctx, s.branchesKey(id)).Result()
			if err != nil {
				return err
			}
			for b, d := range branches {
				texts = append(texts, d)
				recs, err := tx.LRange(ctx, s.historyKey(id, b), 0, -1).Result()
				if err != nil {
					return err
				}
				for _, r := range recs {
					v, err := decodeVersion(r)
					if err != nil {
						return fmt.Errorf("branch %q: %w", b, err)
					}
					texts = append(texts, v.Digest.String())
					if !v.Previous.IsZero() {
						texts = append(texts, v.Previous.String())
					}
				}
			}
			// An empty transaction: it fails if the image moved meanwhile.
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Exists(ctx, s.imageKey(id))
				return nil
			})
			return err
		}, s.imageKey(id), s.branchesKey(id))
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read versions of image %s: %w", id, err)
		}
		for _, t := range texts {
			d, err := manifest.ParseDigest(t)
			if err != nil {
				return fmt.Errorf("read versions of image %s: %w", id, err)
			}
			vs[d] = struct{}{}
		}
		return nil
	}
	return fmt.Errorf("read versions of image %s: it kept moving: %w", id, ErrConflict)
}

// markVersions reads each version's manifest and marks it and its blobs.
func (s *Store) markVersions(ctx context.Context, versions map[manifest.Digest]struct{}, mk *marks) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan manifest.Digest)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range gcManifestWorkers {
		wg.Go(func() {
			for d := range jobs {
				m, err := s.Manifest(ctx, d)
				if err != nil {
					cancel(fmt.Errorf("mark version: %w", err))
					continue
				}
				mu.Lock()
				mk.manifests[d] = struct{}{}
				markBlobs(m, mk.blobs)
				mu.Unlock()
			}
		})
	}
	for d := range versions {
		select {
		case jobs <- d:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// markBlobs adds every blob m's files are stored in: the whole-file blob
// and, for a chunked file, each chunk.
func markBlobs(m *manifest.Manifest, blobs map[manifest.Digest]struct{}) {
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != manifest.TypeFile || e.Size == 0 {
			continue
		}
		blobs[e.Digest] = struct{}{}
		for _, c := range e.Chunks {
			blobs[c.Digest] = struct{}{}
		}
	}
}

// sweep lists the object store and deletes what is unmarked and old.
func (s *Store) sweep(ctx context.Context, mk *marks, flag *sweepFlag, res *GCResult) error {
	for _, kind := range []struct {
		prefix  string
		parse   func(string) (manifest.Digest, bool)
		marked  map[manifest.Digest]struct{}
		deleted *int
	}{
		{"blobs/", parseBlobKey, mk.blobs, &res.DeletedBlobs},
		{"manifests/", parseManifestKey, mk.manifests, &res.DeletedManifests},
	} {
		for o, err := range s.obj.List(ctx, kind.prefix) {
			if err != nil {
				return err
			}
			res.Scanned++
			d, ok := kind.parse(o.Key)
			if !ok {
				res.Foreign++
				continue
			}
			if _, ok := kind.marked[d]; ok {
				continue
			}
			if _, ok := mk.pinned[d]; ok {
				continue
			}
			if !o.LastModified.Before(res.Cutoff) {
				res.KeptYoung++
				continue
			}
			if !res.DryRun {
				if err := flag.hold(ctx); err != nil {
					return err
				}
				if err := s.obj.Delete(ctx, o.Key); err != nil {
					return err
				}
			}
			*kind.deleted++
			res.BytesFreed += o.Size
		}
	}
	return nil
}

// parseBlobKey is BlobKey backwards; it refuses any other spelling.
func parseBlobKey(key string) (manifest.Digest, bool) {
	rest, ok := strings.CutPrefix(key, "blobs/sha256/")
	if !ok || len(rest) != 3+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return manifest.Digest{}, false
	}
	d, err := manifest.ParseDigest("sha256:" + rest[3:])
	return d, err == nil
}

// parseManifestKey is ManifestKey backwards.
func parseManifestKey(key string) (manifest.Digest, bool) {
	h, ok := strings.CutPrefix(key, "manifests/sha256/")
	if !ok {
		return manifest.Digest{}, false
	}
	d, err := manifest.ParseDigest("sha256:" + h)
	return d, err == nil
}
