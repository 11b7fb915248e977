package testenv

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/objstore"
)

// Objects returns the object store on a bucket of the test's own (S3),
// removed when the test ends.
func Objects(t testing.TB) *objstore.Store {
	t.Helper()
	cfg := S3(t)
	obj, err := objstore.Open(context.Background(), objstore.Config{
		Endpoint: cfg.Endpoint, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey, Bucket: cfg.Bucket,
	})
	if err != nil {
		t.Fatalf("testenv: open the object store: %v", err)
	}
	return obj
}

// Redis returns a client of the test Redis, closed when the test ends.
// Keys go under Prefix(t), which the caller asks for.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := client(t, RedisURL(t))
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
