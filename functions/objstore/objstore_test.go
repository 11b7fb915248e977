package objstore_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func TestPutGetDeleteOnMinIO(t *testing.T) {
	ctx := context.Background()
	c := testenv.S3(t)
	s, err := objstore.Open(ctx, objstore.Config{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("herd ", 1000)
	if err := s.Put(ctx, "blobs/ab/cd", strings.NewReader(body), int64(len(body)), "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	rc, size, err := s.Get(ctx, "blobs/ab/cd")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(body)) || string(got) != body {
		t.Fatalf("read back %d bytes (size %d), want %d", len(got), size, len(body))
	}
	if err := s.Delete(ctx, "blobs/ab/cd"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "blobs/ab/cd"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
	// Opening again finds the bucket made the first time.
	if _, err := objstore.Open(ctx, objstore.Config{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket}); err != nil {
		t.Fatal(err)
	}
}

func TestListAndStat(t *testing.T) {
	ctx := context.Background()
	c := testenv.S3(t)
	s, err := objstore.Open(ctx, objstore.Config{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)
	for _, k := range []string{"blobs/b/2", "blobs/a/1", "manifests/m", "blobsx"} {
		if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for o, err := range s.List(ctx, "blobs/") {
		if err != nil {
			t.Fatal(err)
		}
		if o.Size != int64(len(o.Key)) || o.LastModified.Before(before) || o.LastModified.After(time.Now().Add(time.Minute)) {
			t.Errorf("listed %+v", o)
		}
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"blobs/a/1", "blobs/b/2"}) {
		t.Errorf("listed %q", keys)
	}
	// Stopping early is fine.
	for range s.List(ctx, "") {
		break
	}
	st, err := s.Stat(ctx, "manifests/m")
	if err != nil || st.Size != int64(len("manifests/m")) || st.Key != "manifests/m" {
		t.Errorf("stat: %+v, %v", st, err)
	}
	if _, err := s.Stat(ctx, "manifests/none"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("stat of a missing key: %v", err)
	}
}

// TestExpireAfter: herd's expiry rule for a prefix is set, changed and
// removed on real MinIO, and a rule of the admin's own is kept.
func TestExpireAfter(t *testing.T) {
	ctx := context.Background()
	c := testenv.S3(t)
	s, err := objstore.Open(ctx, objstore.Config{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Bucket: c.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if days, err := s.Expiry(ctx, "consoles/"); err != nil || days != 0 {
		t.Fatalf("a new bucket's expiry: %d %v", days, err)
	}
	if err := s.ExpireAfter(ctx, "tmp/", 1); err != nil { // stands for an admin's rule
		t.Fatal(err)
	}
	for _, days := range []int{7, 7, 30} {
		if err := s.ExpireAfter(ctx, "consoles/", days); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Expiry(ctx, "consoles/"); err != nil || got != days {
			t.Fatalf("after ExpireAfter(%d): %d %v", days, got, err)
		}
	}
	if err := s.ExpireAfter(ctx, "consoles/", 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Expiry(ctx, "consoles/"); err != nil || got != 0 {
		t.Fatalf("after removing the rule: %d %v", got, err)
	}
	if got, err := s.Expiry(ctx, "tmp/"); err != nil || got != 1 {
		t.Fatalf("the other rule: %d %v", got, err)
	}
}
