package boot

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
)

// maxCachedBlob is the largest blob the cache keeps: small files and the
// chunks of big ones (at most 1 MiB) are what a sync fetches by the
// thousand; larger blobs stream from the object store.
const maxCachedBlob = 1 << 20

// defaultBlobCacheBytes is Config.BlobCacheBytes when it is zero.
const defaultBlobCacheBytes = 256 << 20

// blobCache keeps recently served small blobs in memory, least recently
// used out first, so that the nodes of a boot storm, which all fetch the
// same blobs, cost one object store read per blob and not one per node.
// Blobs are content-addressed and immutable, so a replica's cache never
// has to agree with another's; only bytes whose SHA-256 matched their
// digest are kept. Concurrent misses for one digest read the object once.
type blobCache struct {
	max int64 // bytes; 0 turns the cache off

	mu       sync.Mutex
	used     int64
	lru      *list.List // of *cachedBlob, most recently used first
	byDigest map[manifest.Digest]*list.Element
	loading  map[manifest.Digest]*blobLoad
}

type cachedBlob struct {
	d    manifest.Digest
	data []byte
}

// blobLoad is one object store read that other requests for the same
// digest wait for; data is nil when the read did not yield a verified
// blob to share (too large, missing, failed, corrupt).
type blobLoad struct {
	done chan struct{}
	data []byte
}

func newBlobCache(max int64) *blobCache {
	if max < 0 {
		max = 0
	}
	return &blobCache{max: max, lru: list.New(),
		byDigest: map[manifest.Digest]*list.Element{}, loading: map[manifest.Digest]*blobLoad{}}
}

// blob is one blob to answer: whole in memory (data) or a stream of n
// bytes from the object store (rc, which the caller closes).
type blob struct {
	data []byte
	rc   io.ReadCloser
	n    int64
}

func (b blob) size() int64 {
	if b.rc == nil {
		return int64(len(b.data))
	}
	return b.n
}

func (b blob) reader() io.Reader {
	if b.rc == nil {
		return bytes.NewReader(b.data)
	}
	return b.rc
}

func (b blob) close() {
	if b.rc != nil {
		b.rc.Close()
	}
}

// get returns blob d from the cache, or reads it from obj and keeps it
// when it is small and its content has digest d. A missing blob is an
// error wrapping objstore.ErrNotFound.
func (c *blobCache) get(ctx context.Context, obj *objstore.Store, d manifest.Digest) (blob, error) {
	return c.getWith(ctx, d, func(ctx context.Context) (blob, error) { return openBlob(ctx, obj, d) })
}

// getWith is get with open reading blob d as a stream.
func (c *blobCache) getWith(ctx context.Context, d manifest.Digest, open func(context.Context) (blob, error)) (blob, error) {
	if c.max == 0 {
		return open(ctx)
	}
	c.mu.Lock()
	if el, ok := c.byDigest[d]; ok {
		c.lru.MoveToFront(el)
		data := el.Value.(*cachedBlob).data
		c.mu.Unlock()
		return blob{data: data}, nil
	}
	if l, ok := c.loading[d]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
		case <-ctx.Done():
			return blob{}, ctx.Err()
		}
		if l.data != nil {
			return blob{data: l.data}, nil
		}
		// The shared read yielded nothing to share: read it alone, so
		// this request sees its own answer (a stream, an error).
		return open(ctx)
	}
	l := &blobLoad{done: make(chan struct{})}
	c.loading[d] = l
	c.mu.Unlock()
	b, verified, err := load(ctx, d, open)
	c.mu.Lock()
	delete(c.loading, d)
	if verified {
		l.data = b.data
		c.add(d, b.data)
	}
	c.mu.Unlock()
	close(l.done)
	return b, err
}

// add keeps data under d, dropping the least recently used blobs to stay
// within max. The caller holds mu.
func (c *blobCache) add(d manifest.Digest, data []byte) {
	n := int64(len(data))
	if n > c.max {
		return
	}
	if _, ok := c.byDigest[d]; ok {
		return
	}
	for c.used+n > c.max {
		last := c.lru.Back()
		old := c.lru.Remove(last).(*cachedBlob)
		delete(c.byDigest, old.d)
		c.used -= int64(len(old.data))
	}
	c.byDigest[d] = c.lru.PushFront(&cachedBlob{d: d, data: data})
	c.used += n
}

// openBlob opens blob d as a stream.
func openBlob(ctx context.Context, obj *objstore.Store, d manifest.Digest) (blob, error) {
	return openObject(ctx, obj, imgstore.BlobKey(d))
}

// openObject opens the object under key as a stream.
func openObject(ctx context.Context, obj *objstore.Store, key string) (blob, error) {
	rc, n, err := obj.Get(ctx, key)
	if err != nil {
		return blob{}, err
	}
	return blob{rc: rc, n: n}, nil
}

// load reads blob d: whole when it is small enough to cache, reporting
// whether its content has digest d; as a stream otherwise. A small blob
// whose content is not d is still returned, unverified, as the object
// store has it: the node checks every blob and reports the mismatch, and
// the cache never keeps it.
func load(ctx context.Context, d manifest.Digest, open func(context.Context) (blob, error)) (blob, bool, error) {
	b, err := open(ctx)
	if err != nil || b.rc == nil || b.n > maxCachedBlob {
		return b, false, err
	}
	defer b.rc.Close()
	data := make([]byte, b.n)
	if _, err := io.ReadFull(b.rc, data); err != nil {
		return blob{}, false, fmt.Errorf("read blob %s: %w", d, err)
	}
	if n, err := b.rc.Read(make([]byte, 1)); n != 0 || err != nil && !errors.Is(err, io.EOF) {
		return blob{}, false, fmt.Errorf("read blob %s: longer than the %d bytes stated (%v)", d, b.n, err)
	}
	return blob{data: data}, manifest.Sum(data) == d, nil
}
