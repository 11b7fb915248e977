// Package store keeps images: file contents as content-addressed blobs and
// versions as immutable manifests in the object store, and the branches that
// point at those versions in Redis.
//
// Object keys:
//
//	blobs/sha256/<2 hex>/<64 hex>   a whole file's content, or one chunk of a big file
//	manifests/sha256/<64 hex>       an encoded manifest; its digest is the version id
//	images/<image>/<branch>/kernel  boot files Publish writes (names escaped by
//	images/<image>/<branch>/modules KeySegment); per kernel version also
//	images/<image>/<branch>/versions/<version>/{kernel,modules}
//
// GC deletes only under blobs/ and manifests/.
//
// Redis keys, under the store's prefix:
//
//	image:names                 hash    image name → image id
//	image:<id>                  hash    "name" → image name, "live" → live branch,
//	                                    "created", "updated" → RFC 3339 UTC times
//	image:<id>:branches         hash    branch name → manifest digest ("sha256:<hex>")
//	image:<id>:history:<branch> list    the branch's Version records as JSON, newest first
//	                                    (LPUSH on every move; never rewritten)
//	image:imports               zset    import lease id ("<start unix ms>-<random>") →
//	                                    expiry in unix ms
//	image:imports:<lease>:pins  set     digests (32 raw bytes) an import relies on
//	image:gc                    string  the token of the GC sweeping now (with a TTL)
//
// Branch names go into history keys as they are: the id before them has a
// fixed form, so any name gives one key.
//
// Everything an import writes to the object store is written before the
// branch moves, and the branch moves by compare-and-set, so a crash leaves
// the branch where it was and a concurrent commit is refused, not merged.
package store

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"iter"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
)

// ErrConflict is returned when a branch moved between the time a commit was
// based on it and the commit itself.
var ErrConflict = errors.New("branch moved since the commit's base")

// ErrNotFound is returned for an image, branch or manifest that does not exist.
var ErrNotFound = errors.New("not found")

// Objects is the part of the object store images need;
// *objstore.Store implements it. Get and Stat return an error wrapping
// objstore.ErrNotFound for a missing key.
type Objects interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
	Stat(ctx context.Context, key string) (objstore.ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) iter.Seq2[objstore.ObjectInfo, error]
}

// Store is the image store. It holds no state between calls.
type Store struct {
	obj    Objects
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store keeping contents in obj and branches in rdb under
// prefix (see (*functions/store.Store).Redis).
func New(obj Objects, rdb redis.UniversalClient, prefix string) *Store {
	return &Store{obj: obj, rdb: rdb, prefix: prefix}
}

// BlobKey is the object key of the blob with digest d.
func BlobKey(d manifest.Digest) string {
	h := hex.EncodeToString(d[:])
	return "blobs/sha256/" + h[:2] + "/" + h
}

// ManifestKey is the object key of the manifest with digest d.
func ManifestKey(d manifest.Digest) string {
	return "manifests/sha256/" + hex.EncodeToString(d[:])
}
