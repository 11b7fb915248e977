// Package objstore is herd's S3-compatible object store (MinIO on the
// appliance, S3 in AWS): image blobs and manifests, boot artifacts and
// archived logs live here, addressed by key. Objects are immutable once
// written; writers put them under a final key only when complete.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config says where the object store is.
type Config struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Secure    bool // HTTPS
}

// Store is one bucket of an S3-compatible service.
type Store struct {
	mc     *minio.Client
	bucket string
}

// Open connects, and creates the bucket when it does not exist yet.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	mc, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", cfg.Endpoint, err)
	}
	s := &Store{mc: mc, bucket: cfg.Bucket}
	ok, err := mc.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("object store %s: bucket %s: %w", cfg.Endpoint, cfg.Bucket, err)
	}
	if !ok {
		err := mc.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{})
		if err != nil {
			// Another replica may have made it at the same moment.
			if exists, e2 := mc.BucketExists(ctx, cfg.Bucket); e2 != nil || !exists {
				return nil, fmt.Errorf("object store %s: create bucket %s: %w", cfg.Endpoint, cfg.Bucket, err)
			}
		}
	}
	return s, nil
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.mc.BucketExists(ctx, s.bucket); err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	return nil
}

// ErrNotFound is returned for a key that holds no object.
var ErrNotFound = errors.New("object not found")

// Put stores size bytes from r under key (size -1 when unknown).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	_, err := s.mc.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get opens the object under key; the caller closes it.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	obj, err := s.mc.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, 0, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, st.Size, nil
}

// Delete removes the object under key; removing a missing key is fine.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.mc.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
