package embedded

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisDatabases is how many numbered databases are saved, Redis's default.
const redisDatabases = 16

// snapshotMagic starts every snapshot file; a file without it is refused
// rather than overwritten.
const snapshotMagic = "herd embedded redis snapshot v1\n"

// snapshot is the whole keyspace of the embedded Redis, gob-encoded after
// snapshotMagic. Expiry is kept as an instant, so a key's TTL keeps running
// while herd is stopped, as it would in Redis.
type snapshot struct {
	DBs []dbSnapshot
}

type dbSnapshot struct {
	Index int
	Keys  []keySnapshot
}

// keySnapshot is one key; which value field is set depends on Type, one of
// the names TYPE answers with.
type keySnapshot struct {
	Key      string
	Type     string
	ExpireAt int64 // Unix milliseconds; 0: no expiry

	String string
	List   []string
	Set    []string
	Hash   []hashField
	ZSet   []zMember
	Stream []streamEntry
	Groups []streamGroup
}

type hashField struct {
	Field, Value string
	ExpireAt     int64 // Unix milliseconds; 0: no expiry
}

type zMember struct {
	Member string
	Score  float64
}

type streamEntry struct {
	ID     string
	Values []string
}

// streamGroup is a consumer group: where it is in the stream, its consumers
// and what was delivered to them and not yet acknowledged.
type streamGroup struct {
	Name      string
	LastID    string
	Consumers []string
	Pending   []pendingEntry
}

type pendingEntry struct {
	ID          string
	Consumer    string
	DeliveredAt int64 // Unix milliseconds
	Deliveries  int64
}

func (s *snapshot) keyCount() int {
	n := 0
	for _, db := range s.DBs {
		n += len(db.Keys)
	}
	return n
}

// capture reads the keyspace through miniredis's Go API, and stream consumer
// groups, which that API does not expose, through an in-memory connection.
// Keys that change type or vanish while it runs are left out; the commands
// that did so make the next capture happen.
func capture(ctx context.Context, m *miniredis.Miniredis, log *slog.Logger) (*snapshot, error) {
	s := &snapshot{}
	for i := range redisDatabases {
		db := m.DB(i) // with ClockTTL this also expires what is due
		keys := db.Keys()
		if len(keys) == 0 {
			continue
		}
		d, err := captureDB(ctx, m, i, db, keys, log)
		if err != nil {
			return nil, fmt.Errorf("save database %d: %w", i, err)
		}
		s.DBs = append(s.DBs, d)
	}
	return s, nil
}

func captureDB(ctx context.Context, m *miniredis.Miniredis, index int, db *miniredis.RedisDB, keys []string, log *slog.Logger) (dbSnapshot, error) {
	d := dbSnapshot{Index: index}
	now := time.Now()
	var rdb *redis.Client
	defer func() {
		if rdb != nil {
			rdb.Close()
		}
	}()
	for _, k := range keys {
		ks := keySnapshot{Key: k, Type: db.Type(k)}
		if ttl := db.TTL(k); ttl > 0 {
			ks.ExpireAt = now.Add(ttl).UnixMilli()
		}
		var err error
		switch ks.Type {
		case "string":
			ks.String, err = db.Get(k)
		case "list":
			ks.List, err = db.List(k)
		case "set":
			ks.Set, err = db.Members(k)
		case "hash":
			ks.Hash, err = captureHash(db, k, now)
		case "zset":
			ks.ZSet, err = captureZSet(db, k)
		case "stream":
			ks.Stream, err = captureStream(db, k)
			if err == nil {
				if rdb == nil {
					rdb = dial(m, index)
				}
				ks.Groups, err = captureGroups(ctx, rdb, k, now)
			}
		case "":
			continue // deleted since Keys
		default:
			log.Warn("redis key of this type is not saved", "db", index, "key", k, "type", ks.Type)
			continue
		}
		if errors.Is(err, miniredis.ErrKeyNotFound) || errors.Is(err, miniredis.ErrWrongType) {
			continue
		}
		if err != nil {
			return d, fmt.Errorf("key %q: %w", k, err)
		}
		d.Keys = append(d.Keys, ks)
	}
	return d, nil
}

func captureHash(db *miniredis.RedisDB, key string, now time.Time) ([]hashField, error) {
	fields, err := db.HKeys(key)
	if err != nil {
		return nil, err
	}
	out := make([]hashField, 0, len(fields))
	for _, f := range fields {
		hf := hashField{Field: f, Value: db.HGet(key, f)}
		if ttl := db.HTTL(key, f); ttl > 0 {
			hf.ExpireAt = now.Add(ttl).UnixMilli()
		}
		out = append(out, hf)
	}
	return out, nil
}

func captureZSet(db *miniredis.RedisDB, key string) ([]zMember, error) {
	members, err := db.SortedSet(key)
	if err != nil {
		return nil, err
	}
	out := make([]zMember, 0, len(members))
	for m, score := range members {
		out = append(out, zMember{Member: m, Score: score})
	}
	slices.SortFunc(out, func(a, b zMember) int { return cmp.Compare(a.Member, b.Member) })
	return out, nil
}

func captureStream(db *miniredis.RedisDB, key string) ([]streamEntry, error) {
	entries, err := db.Stream(key)
	if err != nil {
		return nil, err
	}
	out := make([]streamEntry, len(entries))
	for i, e := range entries {
		out[i] = streamEntry{ID: e.ID, Values: e.Values}
	}
	return out, nil
}

func captureGroups(ctx context.Context, rdb *redis.Client, key string, now time.Time) ([]streamGroup, error) {
	groups, err := rdb.XInfoGroups(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	out := make([]streamGroup, 0, len(groups))
	for _, g := range groups {
		sg := streamGroup{Name: g.Name, LastID: g.LastDeliveredID}
		consumers, err := rdb.XInfoConsumers(ctx, key, g.Name).Result()
		if err != nil {
			return nil, fmt.Errorf("list consumers of group %q: %w", g.Name, err)
		}
		for _, c := range consumers {
			sg.Consumers = append(sg.Consumers, c.Name)
		}
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: key, Group: g.Name, Start: "-", End: "+", Count: math.MaxInt32,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("list pending entries of group %q: %w", g.Name, err)
		}
		for _, p := range pending {
			sg.Pending = append(sg.Pending, pendingEntry{
				ID:          p.ID,
				Consumer:    p.Consumer,
				DeliveredAt: now.Add(-p.Idle).UnixMilli(),
				Deliveries:  p.RetryCount,
			})
		}
		out = append(out, sg)
	}
	slices.SortFunc(out, func(a, b streamGroup) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// restore loads s into m, which must be empty. Keys and hash fields whose
// expiry passed while herd was stopped are dropped.
func restore(ctx context.Context, m *miniredis.Miniredis, s *snapshot, now time.Time) error {
	for _, d := range s.DBs {
		if err := restoreDB(ctx, m, d, now); err != nil {
			return fmt.Errorf("database %d: %w", d.Index, err)
		}
	}
	return nil
}

func restoreDB(ctx context.Context, m *miniredis.Miniredis, d dbSnapshot, now time.Time) error {
	db := m.DB(d.Index)
	var rdb *redis.Client
	defer func() {
		if rdb != nil {
			rdb.Close()
		}
	}()
	for _, k := range d.Keys {
		var ttl time.Duration
		if k.ExpireAt != 0 {
			if ttl = time.UnixMilli(k.ExpireAt).Sub(now); ttl <= 0 {
				continue
			}
		}
		var err error
		switch k.Type {
		case "string":
			err = db.Set(k.Key, k.String)
		case "list":
			if len(k.List) > 0 {
				_, err = db.Push(k.Key, k.List...)
			}
		case "set":
			if len(k.Set) > 0 {
				_, err = db.SetAdd(k.Key, k.Set...)
			}
		case "hash":
			restoreHash(db, k, now)
		case "zset":
			for _, z := range k.ZSet {
				if _, err = db.ZAdd(k.Key, z.Score, z.Member); err != nil {
					break
				}
			}
		case "stream":
			if rdb == nil {
				rdb = dial(m, d.Index)
			}
			err = restoreStream(ctx, db, rdb, k)
		default:
			err = fmt.Errorf("unknown type %q", k.Type)
		}
		if err != nil {
			return fmt.Errorf("key %q: %w", k.Key, err)
		}
		if ttl > 0 && db.Exists(k.Key) {
			db.SetTTL(k.Key, ttl)
		}
	}
	return nil
}

func restoreHash(db *miniredis.RedisDB, k keySnapshot, now time.Time) {
	var fv []string
	for _, f := range k.Hash {
		if f.ExpireAt == 0 || time.UnixMilli(f.ExpireAt).After(now) {
			fv = append(fv, f.Field, f.Value)
		}
	}
	if len(fv) == 0 {
		return
	}
	db.HSet(k.Key, fv...)
	for _, f := range k.Hash {
		if ttl := time.UnixMilli(f.ExpireAt).Sub(now); f.ExpireAt != 0 && ttl > 0 {
			db.HExpire(k.Key, f.Field, ttl)
		}
	}
}

// restoreStream adds the entries with their IDs, then recreates each
// consumer group with its last delivered ID, its consumers, and its pending
// entries (XCLAIM … FORCE puts an entry into a group's pending list with its
// delivery time and count).
func restoreStream(ctx context.Context, db *miniredis.RedisDB, rdb *redis.Client, k keySnapshot) error {
	for _, e := range k.Stream {
		if _, err := db.XAdd(k.Key, e.ID, e.Values); err != nil {
			return fmt.Errorf("add entry %s: %w", e.ID, err)
		}
	}
	if len(k.Stream) == 0 && len(k.Groups) == 0 {
		// An empty stream: there is no command that makes one directly.
		if _, err := db.XAdd(k.Key, "0-1", []string{"", ""}); err != nil {
			return fmt.Errorf("create empty stream: %w", err)
		}
		if err := rdb.XDel(ctx, k.Key, "0-1").Err(); err != nil {
			return fmt.Errorf("create empty stream: %w", err)
		}
	}
	for _, g := range k.Groups {
		create := rdb.XGroupCreate
		if len(k.Stream) == 0 {
			create = rdb.XGroupCreateMkStream
		}
		if err := create(ctx, k.Key, g.Name, g.LastID).Err(); err != nil {
			return fmt.Errorf("create group %q: %w", g.Name, err)
		}
		for _, c := range g.Consumers {
			if err := rdb.XGroupCreateConsumer(ctx, k.Key, g.Name, c).Err(); err != nil {
				return fmt.Errorf("create consumer %q in group %q: %w", c, g.Name, err)
			}
		}
		for _, p := range g.Pending {
			err := rdb.Do(ctx, "XCLAIM", k.Key, g.Name, p.Consumer, 0, p.ID,
				"TIME", p.DeliveredAt, "RETRYCOUNT", p.Deliveries, "FORCE", "JUSTID").Err()
			if err != nil {
				return fmt.Errorf("restore pending entry %s of group %q: %w", p.ID, g.Name, err)
			}
		}
	}
	return nil
}

// fingerprint identifies the content of s, to skip writing a snapshot that
// equals the last one. Expiry instants count in whole seconds: they are
// computed from TTLs that tick down, and jitter by a millisecond between
// captures of an unchanged keyspace.
func (s *snapshot) fingerprint() [sha256.Size]byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	num := func(n int64) { h.Write(buf[:binary.PutVarint(buf[:], n)]) }
	str := func(v string) { num(int64(len(v))); io.WriteString(h, v) }
	strs := func(vs []string) {
		num(int64(len(vs)))
		for _, v := range vs {
			str(v)
		}
	}
	for _, d := range s.DBs {
		num(int64(d.Index))
		num(int64(len(d.Keys)))
		for _, k := range d.Keys {
			str(k.Key)
			str(k.Type)
			num(k.ExpireAt / 1000)
			str(k.String)
			strs(k.List)
			strs(k.Set)
			num(int64(len(k.Hash)))
			for _, f := range k.Hash {
				str(f.Field)
				str(f.Value)
				num(f.ExpireAt / 1000)
			}
			num(int64(len(k.ZSet)))
			for _, z := range k.ZSet {
				str(z.Member)
				num(int64(math.Float64bits(z.Score)))
			}
			num(int64(len(k.Stream)))
			for _, e := range k.Stream {
				str(e.ID)
				strs(e.Values)
			}
			num(int64(len(k.Groups)))
			for _, g := range k.Groups {
				str(g.Name)
				str(g.LastID)
				strs(g.Consumers)
				num(int64(len(g.Pending)))
				for _, p := range g.Pending {
					str(p.ID)
					str(p.Consumer)
					num(p.Deliveries)
				}
			}
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// removeTempSnapshots removes what writes of path that were cut short by a
// crash left behind.
func removeTempSnapshots(path string, log *slog.Logger) {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".*"))
	for _, tmp := range tmps {
		if err := os.Remove(tmp); err != nil {
			log.Warn("remove unfinished snapshot", "path", tmp, "err", err)
		}
	}
}

// readSnapshot reads the snapshot at path; no file is an empty keyspace.
func readSnapshot(path string) (*snapshot, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		return nil, fmt.Errorf("%s is not a herd redis snapshot (move it away to start empty)", path)
	}
	s := &snapshot{}
	if err := gob.NewDecoder(bytes.NewReader(data[len(snapshotMagic):])).Decode(s); err != nil {
		return nil, fmt.Errorf("decode snapshot %s (move it away to start empty): %w", path, err)
	}
	return s, nil
}

// writeSnapshot replaces the file at path with s atomically: a crash leaves
// either the old file or the new one, never a torn one.
func writeSnapshot(path string, s *snapshot) error {
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write snapshot %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
