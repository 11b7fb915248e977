// Package store keeps herd's inventory, accounts and audit stream in Redis.
//
// Every change and its audit event are written in one MULTI/EXEC
// transaction, guarded by WATCH on every key the change was decided on, so a
// request either lands whole — object, indexes and audit event — or not at
// all. Functions are stateless: nothing here is cached between calls.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Config says where the store lives.
type Config struct {
	RedisURL string // redis://host:port/db
	Prefix   string // prefix of every key, e.g. "herd"
}

// Store is herd's Redis-backed state. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	p   string
	now func() time.Time
}

// Open connects to Redis and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("open store: redis url: %w", err)
	}
	// Fail fast when Redis is gone rather than queueing requests.
	opt.MaxRetries = 1
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	s := New(redis.NewClient(opt), cfg.Prefix)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// New wraps an existing Redis client.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "herd"
	}
	return &Store{rdb: rdb, p: prefix + ":", now: func() time.Time { return time.Now().UTC() }}
}

// Close releases the Redis connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Redis gives other stores of the same functions (boot sessions, images)
// the shared connection pool and key prefix.
func (s *Store) Redis() (redis.UniversalClient, string) { return s.rdb, s.p }

// Actor is who makes a change and from where; it goes into the audit event.
type Actor struct {
	User string
	UID  int
	Host string
}

// Kind of failure, mapped to HTTP statuses by the API.
type Kind int

// Kinds of store errors.
const (
	KindNotFound     Kind = iota + 1 // 404
	KindConflict                     // 409: duplicate name or MAC, object in use
	KindInvalid                      // 422: refers to something that does not exist
	KindPrecondition                 // 412: If-Match did not match
	KindUnauthorized                 // 401
)

// Error is a store failure a client can act on.
type Error struct {
	Kind  Kind
	Field string // the request field at fault, if any
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func errf(k Kind, field, format string, args ...any) *Error {
	return &Error{Kind: k, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IsKind reports whether err is a store Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// ErrBusy means a change lost every retry of its optimistic transaction to
// concurrent writers; the request changed nothing and may be retried.
var ErrBusy = errors.New("store busy: too many concurrent changes to the same objects, nothing was changed; retry")

const txRetries = 20

// txn runs decide under WATCH of keys, and if it returns a write function,
// applies that write in MULTI/EXEC. A concurrent change to a watched key
// restarts the whole decision, so every write is based on what it read.
func (s *Store) txn(ctx context.Context, keys []string, decide func(tx *redis.Tx) (func(redis.Pipeliner) error, error)) error {
	for range txRetries {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			write, err := decide(tx)
			if err != nil || write == nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, write)
			return err
		}, keys...)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return ErrBusy
}

// key builds a prefixed key.
func (s *Store) key(parts ...string) string {
	k := s.p
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// auditKey is the Redis stream of audit events.
func (s *Store) auditKey() string { return s.key("audit") }

// addAudit queues the audit event for ev in the same transaction as the
// change it records.
func (s *Store) addAudit(ctx context.Context, pipe redis.Pipeliner, a Actor, ev model.AuditEvent) {
	ev.Time = s.now()
	ev.User, ev.UID, ev.Host = a.User, a.UID, a.Host
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), Values: []string{"e", mustJSON(ev)}})
}

// blockSlice is the longest single blocking read: Redis does not notice
// that the client behind a long poll went away, so a wait is cut into
// slices and ctx is looked at between them. A request whose caller left
// ends within a slice instead of holding a connection (and a server's
// shutdown) for the whole wait.
const blockSlice = time.Second

// xread is XREAD with a block of up to block (negative: no block),
// returning redis.Nil when nothing came in that time or ctx ended.
func (s *Store) xread(ctx context.Context, args redis.XReadArgs, block time.Duration) ([]redis.XStream, error) {
	if block < 0 {
		args.Block = -1
		return s.rdb.XRead(ctx, &args).Result()
	}
	// "$" means "what comes after now": resolved once, so an entry added
	// between two slices is not skipped.
	n := len(args.Streams) / 2
	for i := n; i < len(args.Streams); i++ {
		if args.Streams[i] != "$" {
			continue
		}
		last, err := s.rdb.XRevRangeN(ctx, args.Streams[i-n], "+", "-", 1).Result()
		if err != nil {
			return nil, err
		}
		args.Streams[i] = "0-0"
		if len(last) == 1 {
			args.Streams[i] = last[0].ID
		}
	}
	deadline := time.Now().Add(block)
	for {
		left := time.Until(deadline)
		args.Block = max(min(left, blockSlice), time.Millisecond)
		streams, err := s.rdb.XRead(ctx, &args).Result()
		if !errors.Is(err, redis.Nil) || left <= blockSlice {
			return streams, err
		}
		if ctx.Err() != nil {
			return nil, redis.Nil
		}
	}
}
