// Package testenv gives tests the real Redis and MinIO that localdev/up
// started, each test with its own Redis key prefix and its own bucket, which
// are removed when the test ends.
//
// Settings come from the environment (HERD_REDIS_URL, HERD_REDIS_SERVER,
// HERD_S3_ENDPOINT, HERD_S3_ACCESS_KEY, HERD_S3_SECRET_KEY, HERD_S3_BUCKET)
// or, for those unset, from localdev/.state/env in the module's root, which
// localdev/up writes. `make test` starts the servers and exports the
// variables; a plain `go test` works once localdev/up has run.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
)

// hint ends every failure to find or reach the servers.
const hint = "start Redis and MinIO with localdev/up (make test does this)"

// S3Config says how to reach the object store and which bucket a test owns.
type S3Config struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string
}

// RedisURL returns the URL of the test Redis server, after checking that it
// answers.
func RedisURL(t testing.TB) string {
	t.Helper()
	url := setting(t, "HERD_REDIS_URL")
	rdb := client(t, url)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis at %s does not answer (%v): %s", url, err, hint)
	}
	return url
}

// RedisServer returns the path of the redis-server binary, for tests that
// run a Redis of their own (to stop and restart it, for example).
func RedisServer(t testing.TB) string {
	t.Helper()
	return setting(t, "HERD_REDIS_SERVER")
}

// Prefix returns a key prefix no other test uses, such as
// "test:5f0c2a9e1b7d4c38", and deletes every key that starts with it when
// the test ends.
func Prefix(t testing.TB) string {
	t.Helper()
	url := RedisURL(t)
	prefix := "test:" + random(t)
	t.Cleanup(func() {
		rdb := client(t, url)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := deleteKeys(ctx, rdb, prefix+"*"); err != nil {
			t.Errorf("testenv: delete keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// deleteKeys deletes the keys matching pattern. SCAN may return a key more
// than once; UNLINK does not mind.
func deleteKeys(ctx context.Context, rdb *redis.Client, pattern string) error {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rdb.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}

// S3 creates a bucket for this test alone and returns how to reach it. The
// bucket and everything in it are removed when the test ends.
func S3(t testing.TB) S3Config {
	t.Helper()
	cfg := S3Config{
		Endpoint:  setting(t, "HERD_S3_ENDPOINT"),
		AccessKey: setting(t, "HERD_S3_ACCESS_KEY"),
		SecretKey: setting(t, "HERD_S3_SECRET_KEY"),
		Bucket:    "test-" + random(t),
	}
	mc, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
	})
	if err != nil {
		t.Fatalf("testenv: S3 client for %s: %v", cfg.Endpoint, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mc.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: create bucket %s at %s (%v): %s", cfg.Bucket, cfg.Endpoint, err, hint)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeBucket(ctx, mc, cfg.Bucket); err != nil {
			t.Errorf("testenv: remove bucket %s: %v", cfg.Bucket, err)
		}
	})
	return cfg
}

func removeBucket(ctx context.Context, mc *minio.Client, bucket string) error {
	objects := mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for r := range mc.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		if r.Err != nil {
			return fmt.Errorf("remove %s: %w", r.ObjectName, r.Err)
		}
	}
	for u := range mc.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return fmt.Errorf("list unfinished uploads: %w", u.Err)
		}
		if err := mc.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			return fmt.Errorf("abort upload of %s: %w", u.Key, err)
		}
	}
	return mc.RemoveBucket(ctx, bucket)
}

func client(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testenv: HERD_REDIS_URL %q: %v", url, err)
	}
	return redis.NewClient(opt)
}

// random returns 16 lower-case hex digits, fit for key prefixes and bucket
// names alike.
func random(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// setting returns the environment variable key or, when it is unset, its
// value in localdev/.state/env.
func setting(t testing.TB, key string) string {
	t.Helper()
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	path, err := envFile()
	if err != nil {
		t.Fatalf("testenv: %s is not set and %v: %s", key, err, hint)
	}
	vars, err := readEnvFile(path)
	if err != nil {
		t.Fatalf("testenv: %s is not set and %v: %s", key, err, hint)
	}
	v, ok := vars[key]
	if !ok || v == "" {
		t.Fatalf("testenv: %s is set neither in the environment nor in %s: %s", key, path, hint)
	}
	return v
}

// envFile finds localdev/.state/env in the module root: the first directory
// with a go.mod at or above the working directory.
func envFile() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "localdev", ".state", "env"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// readEnvFile reads KEY=value lines; blank lines and # comments are skipped.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not KEY=value", path, line)
		}
		vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return vars, nil
}
