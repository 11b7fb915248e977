package boot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// countedReads opens blobs on the test MinIO and counts the reads.
type countedReads struct {
	t     *testing.T
	n     atomic.Int64
	gate  chan struct{} // when set, reads wait for it to close
	cache *blobCache
}

func (c *countedReads) get(ctx context.Context, obj interface {
	Get(context.Context, string) (io.ReadCloser, int64, error)
}, d manifest.Digest) (blob, error) {
	return c.cache.getWith(ctx, d, func(ctx context.Context) (blob, error) {
		c.n.Add(1)
		if c.gate != nil {
			<-c.gate
		}
		rc, n, err := obj.Get(ctx, imgstore.BlobKey(d))
		if err != nil {
			return blob{}, err
		}
		return blob{rc: rc, n: n}, nil
	})
}

func (c *countedReads) read(ctx context.Context, obj interface {
	Get(context.Context, string) (io.ReadCloser, int64, error)
}, d manifest.Digest) []byte {
	c.t.Helper()
	b, err := c.get(ctx, obj, d)
	return readBlob(c.t, b, err)
}

func readBlob(t *testing.T, b blob, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	got, err := io.ReadAll(b.reader())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBlobCacheReads counts the object store reads behind the cache: a
// repeat makes none, concurrent misses make one, a corrupt or large blob
// is read every time, and the least recently used blob leaves first.
func TestBlobCacheReads(t *testing.T) {
	ctx := context.Background()
	obj := testenv.Objects(t)
	put := func(data []byte) manifest.Digest {
		d := manifest.Sum(data)
		if err := obj.Put(ctx, imgstore.BlobKey(d), bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		return d
	}
	blobs := make([][]byte, 4)
	ds := make([]manifest.Digest, 4)
	for i := range blobs {
		blobs[i] = bytes.Repeat([]byte{byte(i + 1)}, 400)
		ds[i] = put(blobs[i])
	}
	c := &countedReads{t: t, cache: newBlobCache(1000)} // room for two

	b, err := c.get(ctx, obj, ds[0])
	if got := readBlob(t, b, err); !bytes.Equal(got, blobs[0]) || c.n.Load() != 1 {
		t.Fatalf("first read: %d bytes, %d reads", len(got), c.n.Load())
	}
	b, err = c.get(ctx, obj, ds[0])
	if got := readBlob(t, b, err); !bytes.Equal(got, blobs[0]) || c.n.Load() != 1 {
		t.Fatalf("repeat: %d bytes, %d reads", len(got), c.n.Load())
	}

	// Ten at once, the read held until they all asked: one read.
	c.n.Store(0)
	c.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			b, err := c.get(ctx, obj, ds[1])
			if err == nil {
				got, _ := io.ReadAll(b.reader())
				b.close()
				if !bytes.Equal(got, blobs[1]) {
					err = fmt.Errorf("got %d bytes", len(got))
				}
			}
			errs <- err
		})
	}
	time.Sleep(200 * time.Millisecond) // let them all ask; correctness does not depend on it
	close(c.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if c.n.Load() != 1 {
		t.Errorf("ten concurrent misses made %d reads", c.n.Load())
	}
	c.gate = nil

	// ds[0] used last before ds[1]; a third blob pushes ds[0] out.
	c.n.Store(0)
	c.read(ctx, obj, ds[1])
	c.read(ctx, obj, ds[2])
	c.read(ctx, obj, ds[1])
	c.read(ctx, obj, ds[2])
	if c.n.Load() != 1 {
		t.Errorf("two cached blobs and a new one: %d reads", c.n.Load())
	}
	c.read(ctx, obj, ds[0])
	if c.n.Load() != 2 {
		t.Errorf("the evicted blob: %d reads in all", c.n.Load())
	}

	// Corrupt content is answered as stored, never kept.
	c.n.Store(0)
	bad := manifest.Sum([]byte("right"))
	if err := obj.Put(ctx, imgstore.BlobKey(bad), bytes.NewReader([]byte("wrong")), 5, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := c.read(ctx, obj, bad); string(got) != "wrong" {
			t.Errorf("corrupt blob: %q", got)
		}
	}
	// Larger than the whole cache: read every time.
	large := put(bytes.Repeat([]byte{9}, 2000))
	for range 2 {
		if got := c.read(ctx, obj, large); len(got) != 2000 {
			t.Errorf("large blob: %d bytes", len(got))
		}
	}
	if c.n.Load() != 4 {
		t.Errorf("corrupt and large blobs twice each: %d reads, want 4", c.n.Load())
	}

	// Off: every get reads.
	c.cache = newBlobCache(-1)
	c.n.Store(0)
	c.read(ctx, obj, ds[3])
	c.read(ctx, obj, ds[3])
	if c.n.Load() != 2 {
		t.Errorf("cache off: %d reads", c.n.Load())
	}
}
