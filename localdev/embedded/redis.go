package embedded

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisServer is miniredis plus what it lacks for herd: persistence. Every
// SnapshotInterval, if any command ran since the last look, the keyspace is
// captured and, when it differs from what is on disk, written to path.
type redisServer struct {
	m      *miniredis.Miniredis
	path   string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	// Used by the snapshot loop until done is closed, then by close.
	lastCount int
	lastSaved [sha256.Size]byte
}

func startRedis(ctx context.Context, path string, log *slog.Logger) (*redisServer, error) {
	removeTempSnapshots(path, log)
	s, err := readSnapshot(path)
	if err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	m := miniredis.NewMiniRedis()
	// miniredis counts TTLs down only when told to; herd's sessions and boot
	// sessions must expire with the wall clock as in real Redis.
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded redis: listen: %w", err)
	}
	r := &redisServer{m: m, path: path, log: log, done: make(chan struct{})}
	if s != nil {
		if err := restore(ctx, m, s, time.Now()); err != nil {
			m.Close()
			return nil, fmt.Errorf("embedded redis: restore %s: %w", path, err)
		}
		r.lastSaved = s.fingerprint()
		log.Info("restored redis snapshot", "path", path, "keys", s.keyCount())
	}
	r.lastCount = m.CommandCount()

	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.loop(loopCtx)
	return r, nil
}

func (r *redisServer) addr() string { return r.m.Addr() }

func (r *redisServer) loop(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(SnapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The count includes reads, so an unchanged count means nothing
		// changed; a changed one is confirmed by the fingerprint in save.
		// Commands that run during a capture change the count again, so a
		// capture that raced with them is redone on the next tick.
		n := r.m.CommandCount()
		if n == r.lastCount {
			continue
		}
		r.lastCount = n
		if err := r.save(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("save redis snapshot", "path", r.path, "err", err)
		}
	}
}

// save writes the keyspace to disk unless it is what was written last.
func (r *redisServer) save(ctx context.Context) error {
	s, err := capture(ctx, r.m, r.log)
	if err != nil {
		return err
	}
	fp := s.fingerprint()
	if fp == r.lastSaved {
		return nil
	}
	if err := writeSnapshot(r.path, s); err != nil {
		return err
	}
	r.lastSaved = fp
	return nil
}

func (r *redisServer) close() error {
	r.cancel()
	<-r.done
	// Once the listener and every client connection are closed nothing can
	// change the keyspace, so this last snapshot is exact.
	r.m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.save(ctx)
	r.m.Close() // the in-memory server that capture's client dialled
	if err != nil {
		return fmt.Errorf("embedded redis: final snapshot to %s: %w", r.path, err)
	}
	return nil
}

// dial returns a client for database db over an in-memory connection to m,
// for what miniredis's Go API cannot do (stream consumer groups). It works
// also after m's listener is closed.
func dial(m *miniredis.Miniredis, db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            "embedded",
		DB:              db,
		Dialer:          func(context.Context, string, string) (net.Conn, error) { return m.Dial() },
		Protocol:        2,
		DisableIdentity: true,
		PoolSize:        1,
	})
}
