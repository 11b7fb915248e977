package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// LeaseTTL is how long an import lease lives after its last Pin. A staged
// version must be committed within it (or pinned again).
const LeaseTTL = time.Hour

// sweepPoll is how often an import waiting for a GC sweep looks again.
const sweepPoll = 200 * time.Millisecond

// pinBatch bounds the members of one SADD.
const pinBatch = 1000

// Lease is an import in progress, as GC sees it. An import pins every
// blob and manifest it will rely on before it looks whether the object
// exists: a present object may be garbage no branch refers to yet, and GC
// must not delete it under the import's feet. GC keeps what live leases
// pin and everything written since the oldest live lease began.
type Lease struct {
	ID    string
	Start time.Time
}

func (s *Store) importsKey() string { return s.prefix + "image:imports" }
func (s *Store) pinsKey(lease string) string {
	return s.prefix + "image:imports:" + lease + ":pins"
}
func (s *Store) gcKey() string { return s.prefix + "image:gc" }

// BeginImport registers an import lease, after waiting for a running GC
// sweep to end. The caller ends it with EndImport once its version is
// committed (or abandoned); a lease not ended expires LeaseTTL after its
// last Pin.
func (s *Store) BeginImport(ctx context.Context) (Lease, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Lease{}, fmt.Errorf("begin import: %w", err)
	}
	start := time.Now()
	l := Lease{ID: strconv.FormatInt(start.UnixMilli(), 10) + "-" + hex.EncodeToString(b[:]), Start: start}
	err := s.rdb.ZAdd(ctx, s.importsKey(), redis.Z{Score: leaseExpiry(), Member: l.ID}).Err()
	if err != nil {
		return Lease{}, fmt.Errorf("begin import: %w", err)
	}
	if err := s.waitSweep(ctx); err != nil {
		return Lease{}, fmt.Errorf("begin import: %w", err)
	}
	return l, nil
}

func leaseExpiry() float64 { return float64(time.Now().Add(LeaseTTL).UnixMilli()) }

// Pin records that the import relies on the objects with digests ds
// (blobs or manifests) and renews the lease. Call it before checking
// whether they exist. If a GC is sweeping, Pin returns once it is done:
// the sweep may have missed these pins and deleted the objects, and a
// check made after it sees that.
func (s *Store) Pin(ctx context.Context, l Lease, ds ...manifest.Digest) error {
	if err := s.pin(ctx, l, ds); err != nil {
		return fmt.Errorf("pin %d objects for import %s: %w", len(ds), l.ID, err)
	}
	return nil
}

func (s *Store) pin(ctx context.Context, l Lease, ds []manifest.Digest) error {
	for len(ds) > pinBatch {
		if err := s.pin(ctx, l, ds[:pinBatch]); err != nil {
			return err
		}
		ds = ds[pinBatch:]
	}
	// One pipeline, executed in order: the pins are in Redis before the
	// sweep flag is read, and GC sets its flag before it reads pins, so
	// either GC sees these pins or this sees GC's flag.
	p := s.rdb.Pipeline()
	if len(ds) > 0 {
		members := make([]any, len(ds))
		for i, d := range ds {
			members[i] = string(d[:])
		}
		p.SAdd(ctx, s.pinsKey(l.ID), members...)
		p.PExpire(ctx, s.pinsKey(l.ID), LeaseTTL)
	}
	p.ZAdd(ctx, s.importsKey(), redis.Z{Score: leaseExpiry(), Member: l.ID})
	sweeping := p.Exists(ctx, s.gcKey())
	if _, err := p.Exec(ctx); err != nil {
		return err
	}
	if sweeping.Val() == 0 {
		return nil
	}
	return s.waitSweep(ctx)
}

// EndImport removes the lease and its pins.
func (s *Store) EndImport(ctx context.Context, l Lease) error {
	p := s.rdb.TxPipeline()
	p.ZRem(ctx, s.importsKey(), l.ID)
	p.Del(ctx, s.pinsKey(l.ID))
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("end import %s: %w", l.ID, err)
	}
	return nil
}

// waitSweep returns when no GC sweep is running.
func (s *Store) waitSweep(ctx context.Context) error {
	for {
		n, err := s.rdb.Exists(ctx, s.gcKey()).Result()
		if err != nil || n == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the image GC to end: %w", ctx.Err())
		case <-time.After(sweepPoll):
		}
	}
}

// ParseLease rebuilds a lease from its id, as an import that spans several
// requests carries it; the lease itself may have ended or expired.
func ParseLease(id string) (Lease, error) {
	start, err := leaseStart(id)
	if err != nil {
		return Lease{}, err
	}
	return Lease{ID: id, Start: start}, nil
}

// leaseStart parses the start time out of a lease id.
func leaseStart(id string) (time.Time, error) {
	ms, _, ok := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return time.Time{}, fmt.Errorf("import lease %q: not <unix ms>-<random>", id)
	}
	return time.UnixMilli(n), nil
}

// MissingPinned is Missing for an import holding lease l: it pins ds
// first, so a blob Missing finds present stays until the import ends.
func (s *Store) MissingPinned(ctx context.Context, l Lease, ds []manifest.Digest) ([]manifest.Digest, error) {
	if err := s.Pin(ctx, l, ds...); err != nil {
		return nil, err
	}
	return s.Missing(ctx, ds)
}
