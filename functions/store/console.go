package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// A boot session's console is a stream beside its timeline, with the
// session's TTL:
//
//	boot:console:<id>  stream: one entry per chunk the node sent, id
//	                   "<seq>-1" (the node's ?seq=), fields
//	                   "o" (offset of the chunk's first byte) and "d" (bytes)
//	boot:plan:<id>     string: the manifest digest the session's plan named
//
// Stream ids must grow, so Redis itself refuses a chunk whose sequence
// number was seen: a retried request is not appended twice.

// Console limits.
const (
	// MaxConsoleChunk is the most one request may append.
	MaxConsoleChunk = 64 << 10
	// MaxConsoleBytes caps one session's console; a node that prints
	// more is refused (and its output lost) rather than filling Redis.
	MaxConsoleBytes = 32 << 20
	// consoleReadCount is how many chunks one read returns at most.
	consoleReadCount = 32
)

// ErrConsoleFull is returned for a chunk that would take a console past
// MaxConsoleBytes.
var ErrConsoleFull = errors.New("the boot session's console is full")

func (s *Store) bootConsoleKey(id string) string { return s.key("boot", "console", id) }
func (s *Store) bootPlanKey(id string) string    { return s.key("boot", "plan", id) }

// ConsoleArchiveKey is the object key a session's console is archived
// under once the session is done or failed.
func ConsoleArchiveKey(session string) string { return ConsoleArchivePrefix + session }

// ConsoleArchivePrefix starts every archived console's key.
const ConsoleArchivePrefix = "consoles/"

// ConsoleCursor is a position in a console: the last chunk read (0 when
// not known) and the byte offset after it. Its text form is "<seq>.<offset>"; the zero value
// (text "") is the start.
type ConsoleCursor struct {
	Seq    uint64
	Offset int64
	set    bool
}

// ParseConsoleCursor reads a cursor a console read returned.
func ParseConsoleCursor(s string) (ConsoleCursor, error) {
	if s == "" {
		return ConsoleCursor{}, nil
	}
	a, b, ok := strings.Cut(s, ".")
	seq, err1 := strconv.ParseUint(a, 10, 64)
	off, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || off < 0 {
		return ConsoleCursor{}, fmt.Errorf("%q is not a console cursor (give back the next= of a previous read)", model.CleanText(s, 64))
	}
	return ConsoleCursor{Seq: seq, Offset: off, set: true}, nil
}

// ArchiveCursor is the position offset bytes into an archived console.
func ArchiveCursor(offset int64) ConsoleCursor { return ConsoleCursor{Offset: offset, set: true} }

func (c ConsoleCursor) String() string {
	if !c.set {
		return ""
	}
	return strconv.FormatUint(c.Seq, 10) + "." + strconv.FormatInt(c.Offset, 10)
}

// streamAfter is the stream id to read after: sequence numbers start at
// 1, so a cursor of sequence 0 (the start, or a position in an archive)
// reads the whole stream and skips Offset bytes.
func (c ConsoleCursor) streamAfter() string {
	if c.Seq == 0 {
		return "0-0"
	}
	return strconv.FormatUint(c.Seq, 10) + "-1"
}

// AppendConsole appends chunk seq of a session's console. appended is
// false when a chunk with this or a later sequence number is there already
// (a retry): nothing is written then.
func (s *Store) AppendConsole(ctx context.Context, id string, seq uint64, p []byte) (appended bool, err error) {
	if seq == 0 {
		return false, fmt.Errorf("append to console of boot session %s: sequence numbers start at 1", id)
	}
	if len(p) > MaxConsoleChunk {
		return false, fmt.Errorf("append to console of boot session %s: %d bytes is more than %d in one chunk", id, len(p), MaxConsoleChunk)
	}
	key, sessKey := s.bootConsoleKey(id), s.bootSessionKey(id)
	err = s.txn(ctx, []string{key, sessKey}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		exp, err := tx.HGet(ctx, sessKey, "expires").Result()
		if errors.Is(err, redis.Nil) {
			return nil, notFound("boot session", id)
		}
		if err != nil {
			return nil, err
		}
		expires, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil {
			return nil, fmt.Errorf("boot session %s: expiry %q: %w", id, exp, err)
		}
		last, err := tx.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil {
			return nil, err
		}
		var end int64
		if len(last) == 1 {
			lastSeq, off, data := chunkOf(last[0])
			if seq <= lastSeq {
				appended = false
				return nil, nil
			}
			end = off + int64(len(data))
		}
		if end+int64(len(p)) > MaxConsoleBytes {
			return nil, fmt.Errorf("%w (%d bytes)", ErrConsoleFull, MaxConsoleBytes)
		}
		appended = true
		return func(pipe redis.Pipeliner) error {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: strconv.FormatUint(seq, 10) + "-1",
				Values: []any{"o", end, "d", p}})
			pipe.ExpireAt(ctx, key, expires)
			return nil
		}, nil
	})
	if err != nil {
		return false, fmt.Errorf("append to console of boot session %s: %w", id, err)
	}
	return appended, nil
}

// chunkOf reads a console stream entry.
func chunkOf(m redis.XMessage) (seq uint64, off int64, data []byte) {
	ms, _, _ := strings.Cut(m.ID, "-")
	seq, _ = strconv.ParseUint(ms, 10, 64)
	o, _ := m.Values["o"].(string)
	off, _ = strconv.ParseInt(o, 10, 64)
	d, _ := m.Values["d"].(string)
	return seq, off, []byte(d)
}

// ConsoleLive reports whether a session's console stream is still in
// Redis.
func (s *Store) ConsoleLive(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.bootConsoleKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("read console of boot session %s: %w", id, err)
	}
	return n == 1, nil
}

// ConsoleAfter returns the console output after cursor, waiting up to
// wait for some when there is none yet (or for the session's next event),
// and the cursor to read on from.
// It reads only the live stream (see ConsoleLive).
func (s *Store) ConsoleAfter(ctx context.Context, id string, after ConsoleCursor, wait time.Duration) ([]byte, ConsoleCursor, error) {
	block := wait
	if block <= 0 {
		block = -1
	}
	// The wait also ends on a new event of the session, so a follower
	// learns at once that the session ended ("$": only events from now).
	streams, err := s.xread(ctx, redis.XReadArgs{
		Streams: []string{s.bootConsoleKey(id), s.bootEventsKey(id), after.streamAfter(), "$"},
		Count:   consoleReadCount}, block)
	if errors.Is(err, redis.Nil) {
		return []byte{}, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("read console of boot session %s: %w", id, err)
	}
	out := []byte{}
	for _, st := range streams {
		if st.Stream != s.bootConsoleKey(id) {
			continue
		}
		for _, m := range st.Messages {
			seq, off, data := chunkOf(m)
			end := off + int64(len(data))
			// A cursor inside a chunk (from an archive read) skips what
			// was read already.
			if skip := after.Offset - off; skip > 0 {
				data = data[min(skip, int64(len(data))):]
			}
			out = append(out, data...)
			after = ConsoleCursor{Seq: seq, Offset: max(after.Offset, end), set: true}
		}
	}
	return out, after, nil
}

// Console returns a session's whole live console, and the cursor after it.
func (s *Store) Console(ctx context.Context, id string) ([]byte, ConsoleCursor, error) {
	msgs, err := s.rdb.XRange(ctx, s.bootConsoleKey(id), "-", "+").Result()
	if err != nil {
		return nil, ConsoleCursor{}, fmt.Errorf("read console of boot session %s: %w", id, err)
	}
	var (
		out []byte
		cur ConsoleCursor
	)
	for _, m := range msgs {
		seq, off, data := chunkOf(m)
		out = append(out, data...)
		cur = ConsoleCursor{Seq: seq, Offset: off + int64(len(data)), set: true}
	}
	return out, cur, nil
}

// SetPlanVersion records the manifest digest a session's plan named, for
// as long as the session lives: the node may then read that manifest.
func (s *Store) SetPlanVersion(ctx context.Context, id, digest string, expires time.Time) error {
	if err := s.rdb.Set(ctx, s.bootPlanKey(id), digest, 0).Err(); err != nil {
		return fmt.Errorf("record plan of boot session %s: %w", id, err)
	}
	if err := s.rdb.ExpireAt(ctx, s.bootPlanKey(id), expires).Err(); err != nil {
		return fmt.Errorf("record plan of boot session %s: %w", id, err)
	}
	return nil
}

// PlanVersion returns the manifest digest of the session's plan; "" when
// no plan was made for it.
func (s *Store) PlanVersion(ctx context.Context, id string) (string, error) {
	d, err := s.rdb.Get(ctx, s.bootPlanKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read plan of boot session %s: %w", id, err)
	}
	return d, nil
}

// HostsMemo is how long the hosts list of node plans is reused: reading
// every node costs ~100 ms at 10,000 nodes, and a boot storm asks for it
// once per node. A node added meanwhile shows in plans this much later.
const HostsMemo = 15 * time.Second

// Hosts returns every node's name and boot address (the address of its
// boot interface, else of its first interface with one), sorted by name,
// for /etc/hosts. Nodes without an address are left out. The list is
// shared through Redis for HostsMemo.
func (s *Store) Hosts(ctx context.Context) ([]model.HostEntry, error) {
	key := s.key("boot", "hosts")
	if cached, ok, err := getJSON[[]model.HostEntry](ctx, s.rdb, key); err == nil && ok {
		return cached, nil
	}
	out, err := s.hosts(ctx)
	if err != nil {
		return nil, err
	}
	// Best effort: without the memo the next plan reads the nodes again.
	_ = s.rdb.Set(ctx, key, mustJSON(out), HostsMemo).Err()
	return out, nil
}

func (s *Store) hosts(ctx context.Context) ([]model.HostEntry, error) {
	names, err := s.listNames(ctx, "node", nil)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.nodeKey(n)
	}
	nodes, err := mgetJSON[model.Node](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	out := make([]model.HostEntry, 0, len(nodes))
	for _, n := range nodes {
		if addr := BootAddress(n); addr != "" {
			out = append(out, model.HostEntry{Name: n.Name, Address: addr})
		}
	}
	return out, nil
}

// BootAddress is a node's address for /etc/hosts without its prefix
// length: its boot interface's, else the first one set.
func BootAddress(n model.Node) string {
	var addr string
	for _, i := range n.Interfaces {
		if i.Address == "" {
			continue
		}
		if i.Boot || addr == "" {
			addr = i.Address
		}
		if i.Boot {
			break
		}
	}
	if p, err := netip.ParsePrefix(addr); err == nil {
		return p.Addr().String()
	}
	return addr
}
