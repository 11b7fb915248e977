package objstore

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/minio/minio-go/v7"
)

// ObjectInfo is what a listing or Stat says about one object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time // set by the server when the object was written
}

// List yields every object whose key starts with prefix, in key order, at
// any depth. A failure ends the sequence with a non-nil error; stopping
// early cancels the listing.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true}
		for o := range s.mc.ListObjectsIter(ctx, s.bucket, opts) {
			if o.Err != nil {
				yield(ObjectInfo{}, fmt.Errorf("list %s: %w", prefix, o.Err))
				return
			}
			if !yield(ObjectInfo{Key: o.Key, Size: o.Size, LastModified: o.LastModified}, nil) {
				return
			}
		}
	}
}

// Stat returns what the store knows about the object under key, an error
// wrapping ErrNotFound when there is none.
func (s *Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	o, err := s.mc.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return ObjectInfo{Key: o.Key, Size: o.Size, LastModified: o.LastModified}, nil
}
