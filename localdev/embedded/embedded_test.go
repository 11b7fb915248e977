package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
)

func start(t *testing.T, dir string) *Embedded {
	t.Helper()
	e, err := Start(t.Context(), dir, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("Start(%s): %v", dir, err)
	}
	return e
}

func redisClient(t *testing.T, e *Embedded, db int) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(e.RedisURL())
	if err != nil {
		t.Fatalf("parse %q: %v", e.RedisURL(), err)
	}
	opt.DB = db
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func s3Client(t *testing.T, e *Embedded) *minio.Client {
	t.Helper()
	cfg := e.S3()
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
	})
	if err != nil {
		t.Fatalf("minio client for %s: %v", cfg.Endpoint, err)
	}
	return c
}

// do fails the test if the Redis command failed, and returns it.
func do[C redis.Cmder](t *testing.T, c C) C {
	t.Helper()
	if err := c.Err(); err != nil {
		t.Fatalf("%v: %v", c.Args(), err)
	}
	return c
}

// TestRestart writes keys of every type and objects, closes, starts again
// on the same directory and reads everything back.
func TestRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	binary := "\x00\xff\xfe not utf-8 \x80"
	big := make([]byte, 6<<20+123) // more than one 5 MiB part
	rand.Read(big)

	e := start(t, dir)
	rdb := redisClient(t, e, 0)
	do(t, rdb.Set(ctx, "str", "hello", 0)).Val()
	do(t, rdb.Set(ctx, "bin", binary, 0)).Val()
	do(t, rdb.Set(ctx, "session", "alice", time.Hour)).Val()
	do(t, rdb.Set(ctx, "short", "gone soon", 300*time.Millisecond)).Val()
	do(t, rdb.HSet(ctx, "node:1", "mac", "52:54:00:12:34:56", "name", "n001", "tmp", "x")).Val()
	do(t, rdb.HExpire(ctx, "node:1", time.Hour, "tmp")).Val()
	do(t, rdb.RPush(ctx, "queue", "a", "b", "c", "a")).Val()
	do(t, rdb.SAdd(ctx, "group:compute", "n001", "n002")).Val()
	do(t, rdb.ZAdd(ctx, "seen", redis.Z{Score: 1.5, Member: "n001"}, redis.Z{Score: -2e10, Member: "n002"})).Val()
	for _, id := range []string{"1-1", "1-2", "5-0", "7-3"} {
		do(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: "audit", ID: id, Values: []string{"kind", "test", "id", id}})).Val()
	}
	do(t, rdb.XDel(ctx, "audit", "5-0")).Val()
	do(t, rdb.XGroupCreate(ctx, "audit", "archiver", "1-1")).Val()
	read := do(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "archiver", Consumer: "worker1", Streams: []string{"audit", ">"}, Count: 1,
	})).Val()
	if got := read[0].Messages[0].ID; got != "1-2" {
		t.Fatalf("XREADGROUP delivered %s, want 1-2", got)
	}
	do(t, rdb.XGroupCreateConsumer(ctx, "audit", "archiver", "idle-worker")).Val()
	do(t, rdb.XGroupCreateMkStream(ctx, "empty-stream", "g", "$")).Val()
	c3 := redisClient(t, e, 3)
	do(t, c3.Set(ctx, "other-db", "3", 0)).Val()

	s3c := s3Client(t, e)
	bucket := e.S3().Bucket
	put := func(bucket, key string, data []byte) {
		t.Helper()
		_, err := s3c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{PartSize: 5 << 20})
		if err != nil {
			t.Fatalf("put %s/%s: %v", bucket, key, err)
		}
	}
	put(bucket, "blobs/sha256/ab/cd", []byte("small"))
	put(bucket, "big", big)
	if err := s3c.MakeBucket(ctx, "logs", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	put("logs", "boot/1.log", []byte("console"))

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // "short" expires while stopped

	e = start(t, dir)
	defer e.Close()
	rdb = redisClient(t, e, 0)

	for key, want := range map[string]string{"str": "hello", "bin": binary, "session": "alice"} {
		if got := do(t, rdb.Get(ctx, key)).Val(); got != want {
			t.Errorf("GET %s = %q, want %q", key, got, want)
		}
	}
	if ttl := do(t, rdb.TTL(ctx, "session")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL session = %v, want just under 1h", ttl)
	}
	if n := do(t, rdb.Exists(ctx, "short")).Val(); n != 0 {
		t.Errorf("key short outlived its TTL across the restart")
	}
	if got := do(t, rdb.HGetAll(ctx, "node:1")).Val(); got["mac"] != "52:54:00:12:34:56" || got["name"] != "n001" || got["tmp"] != "x" {
		t.Errorf("HGETALL node:1 = %v", got)
	}
	if ttl := do(t, rdb.HTTL(ctx, "node:1", "tmp", "name")).Val(); ttl[0] <= 3500 || ttl[1] != -1 {
		t.Errorf("HTTL node:1 tmp name = %v, want about 3600 and -1", ttl)
	}
	if got := do(t, rdb.LRange(ctx, "queue", 0, -1)).Val(); !slices.Equal(got, []string{"a", "b", "c", "a"}) {
		t.Errorf("LRANGE queue = %v", got)
	}
	if got := do(t, rdb.SMembers(ctx, "group:compute")).Val(); len(got) != 2 {
		t.Errorf("SMEMBERS group:compute = %v", got)
	}
	if got := do(t, rdb.ZRangeWithScores(ctx, "seen", 0, -1)).Val(); len(got) != 2 ||
		got[0] != (redis.Z{Score: -2e10, Member: "n002"}) || got[1] != (redis.Z{Score: 1.5, Member: "n001"}) {
		t.Errorf("ZRANGE seen = %v", got)
	}
	var ids []string
	for _, m := range do(t, rdb.XRange(ctx, "audit", "-", "+")).Val() {
		ids = append(ids, m.ID)
		if m.Values["id"] != m.ID {
			t.Errorf("entry %s has values %v", m.ID, m.Values)
		}
	}
	if !slices.Equal(ids, []string{"1-1", "1-2", "7-3"}) {
		t.Errorf("XRANGE audit IDs = %v, want [1-1 1-2 7-3]", ids)
	}
	groups := do(t, rdb.XInfoGroups(ctx, "audit")).Val()
	if len(groups) != 1 || groups[0].Name != "archiver" || groups[0].LastDeliveredID != "1-2" {
		t.Errorf("XINFO GROUPS audit = %+v", groups)
	}
	pending := do(t, rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: "audit", Group: "archiver", Start: "-", End: "+", Count: 10})).Val()
	if len(pending) != 1 || pending[0].ID != "1-2" || pending[0].Consumer != "worker1" || pending[0].RetryCount != 1 {
		t.Errorf("XPENDING audit archiver = %+v", pending)
	}
	var consumers []string
	for _, c := range do(t, rdb.XInfoConsumers(ctx, "audit", "archiver")).Val() {
		consumers = append(consumers, c.Name)
	}
	if !slices.Equal(consumers, []string{"idle-worker", "worker1"}) {
		t.Errorf("XINFO CONSUMERS audit archiver = %v", consumers)
	}
	next := do(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "archiver", Consumer: "worker1", Streams: []string{"audit", ">"}, Count: 10,
	})).Val()
	if len(next[0].Messages) != 1 || next[0].Messages[0].ID != "7-3" {
		t.Errorf("XREADGROUP after restart = %+v, want only 7-3", next)
	}
	// Entries added later get time-based IDs, after the restored ones.
	if id := do(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: "audit", Values: []string{"k", "v"}})).Val(); !strings.HasPrefix(id, "1") || len(id) < len("1700000000000-0") {
		t.Errorf("new entry ID %s is not after 7-3", id)
	}
	if typ := do(t, rdb.Type(ctx, "empty-stream")).Val(); typ != "stream" {
		t.Errorf("TYPE empty-stream = %q", typ)
	}
	if n := do(t, rdb.XLen(ctx, "empty-stream")).Val(); n != 0 {
		t.Errorf("XLEN empty-stream = %d", n)
	}
	c3 = redisClient(t, e, 3)
	if got := do(t, c3.Get(ctx, "other-db")).Val(); got != "3" {
		t.Errorf("GET other-db in database 3 = %q", got)
	}

	s3c = s3Client(t, e)
	for _, o := range []struct {
		bucket, key string
		want        []byte
	}{
		{bucket, "blobs/sha256/ab/cd", []byte("small")},
		{bucket, "big", big},
		{"logs", "boot/1.log", []byte("console")},
	} {
		obj, err := s3c.GetObject(ctx, o.bucket, o.key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, o.want) {
			t.Errorf("object %s/%s: %d bytes, err %v; want %d bytes", o.bucket, o.key, len(got), err, len(o.want))
		}
	}
	var keys []string
	for o := range s3c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"big", "blobs/sha256/ab/cd"}) {
		t.Errorf("objects in %s: %v", bucket, keys)
	}
}

// TestSnapshotWhileRunning checks that changes reach the disk without Close,
// so a crash loses at most SnapshotInterval.
func TestSnapshotWhileRunning(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	e := start(t, dir)
	defer e.Close()
	rdb := redisClient(t, e, 0)
	do(t, rdb.Set(ctx, "k", "v1", 0)).Val()

	path := filepath.Join(dir, "redis.snapshot")
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(3 * SnapshotInterval)
		for time.Now().Before(deadline) {
			s, err := readSnapshot(path)
			if err != nil {
				t.Fatal(err)
			}
			if s != nil && len(s.DBs) == 1 && len(s.DBs[0].Keys) == 1 && s.DBs[0].Keys[0].String == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("snapshot never held k=%s", want)
	}
	waitFor("v1")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Reads alone do not rewrite the file.
	for range 5 {
		do(t, rdb.Get(ctx, "k")).Val()
	}
	time.Sleep(SnapshotInterval + 500*time.Millisecond)
	if again, err := os.Stat(path); err != nil || !again.ModTime().Equal(info.ModTime()) {
		t.Errorf("snapshot rewritten after reads only")
	}
	do(t, rdb.Set(ctx, "k", "v2", 0)).Val()
	waitFor("v2")
}

func TestDirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir)
	defer e.Close()
	if e2, err := Start(context.Background(), dir, nil); err == nil {
		e2.Close()
		t.Fatal("second Start on the same directory succeeded")
	}
}

func TestCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "redis.snapshot"), []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e, err := Start(context.Background(), dir, nil); err == nil {
		e.Close()
		t.Fatal("Start with a corrupt snapshot succeeded")
	}
}
