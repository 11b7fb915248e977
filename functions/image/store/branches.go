package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// commitRetries bounds how often a commit is retried when a watched key
// changed for a reason other than its branch (another branch of the image).
const commitRetries = 8

func (s *Store) namesKey() string             { return s.prefix + "image:names" }
func (s *Store) imageKey(id string) string    { return s.prefix + "image:" + id }
func (s *Store) branchesKey(id string) string { return s.prefix + "image:" + id + ":branches" }

// ImageID returns the id of the image named name.
func (s *Store) ImageID(ctx context.Context, name string) (string, error) {
	id, err := s.rdb.HGet(ctx, s.namesKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("image %q: %w", name, err)
	}
	return id, nil
}

// Branch returns the manifest digest branch of the image named image points
// at; an error wrapping ErrNotFound when the image or branch does not exist.
func (s *Store) Branch(ctx context.Context, image, branch string) (manifest.Digest, error) {
	id, err := s.ImageID(ctx, image)
	if err != nil {
		return manifest.Digest{}, err
	}
	v, err := s.rdb.HGet(ctx, s.branchesKey(id), branch).Result()
	if errors.Is(err, redis.Nil) {
		return manifest.Digest{}, fmt.Errorf("image %q branch %q: %w", image, branch, ErrNotFound)
	}
	if err != nil {
		return manifest.Digest{}, fmt.Errorf("image %q branch %q: %w", image, branch, err)
	}
	return manifest.ParseDigest(v)
}

// Live returns the name of the image's live branch.
func (s *Store) Live(ctx context.Context, image string) (string, error) {
	id, err := s.ImageID(ctx, image)
	if err != nil {
		return "", err
	}
	live, err := s.rdb.HGet(ctx, s.imageKey(id), "live").Result()
	if err != nil {
		return "", fmt.Errorf("image %q live branch: %w", image, err)
	}
	return live, nil
}

// Commit moves branch of the image named image from base to next, creating
// the image (with a new random id, and branch as its live branch) or the
// branch when they do not exist yet; a zero base means "the branch must not
// exist". If the branch points anywhere but base, Commit returns ErrConflict
// and changes nothing.
func (s *Store) Commit(ctx context.Context, image, branch string, base, next manifest.Digest) error {
	for range commitRetries {
		err := s.commitOnce(ctx, image, branch, base, next)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return fmt.Errorf("commit image %q branch %q to %s: %w", image, branch, next, err)
			}
			return nil
		}
	}
	return fmt.Errorf("commit image %q branch %q to %s: %w", image, branch, next, ErrConflict)
}

func (s *Store) commitOnce(ctx context.Context, image, branch string, base, next manifest.Digest) error {
	var id string
	created := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		var err error
		id, err = tx.HGet(ctx, s.namesKey(), image).Result()
		if errors.Is(err, redis.Nil) {
			if !base.IsZero() {
				return ErrConflict
			}
			id, err = newID()
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, s.namesKey(), image, id)
				p.HSet(ctx, s.imageKey(id), "name", image, "live", branch)
				p.HSet(ctx, s.branchesKey(id), branch, next.String())
				return nil
			})
			created = err == nil
			return err
		}
		if err != nil {
			return err
		}
		return nil
	}, s.namesKey())
	if err != nil || created {
		return err
	}
	// The image exists: guard the branch, and the name still naming id.
	bk := s.branchesKey(id)
	return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if cur, err := tx.HGet(ctx, s.namesKey(), image).Result(); err != nil || cur != id {
			return redis.TxFailedErr // renamed or removed meanwhile: look again
		}
		cur, err := tx.HGet(ctx, bk, branch).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if !base.IsZero() {
				return ErrConflict
			}
		case err != nil:
			return err
		case cur != base.String():
			return ErrConflict
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, bk, branch, next.String())
			return nil
		})
		return err
	}, s.namesKey(), bk)
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new image id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
