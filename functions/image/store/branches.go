package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// commitRetries bounds how often a pointer move is retried when a watched
// key changed for a reason that does not concern it (another branch of the
// image moved). Each retry checks the move's conditions afresh, so a
// change that does concern it is refused, never merged.
const commitRetries = 8

func (s *Store) namesKey() string             { return s.prefix + "image:names" }
func (s *Store) imageKey(id string) string    { return s.prefix + "image:" + id }
func (s *Store) branchesKey(id string) string { return s.prefix + "image:" + id + ":branches" }

// historyKey holds the history of one branch. The id has a fixed form, so
// whatever the branch name holds the key is unambiguous.
func (s *Store) historyKey(id, branch string) string {
	return s.prefix + "image:" + id + ":history:" + branch
}

// Options are what a caller may add to any pointer move (CommitWith,
// Rollback, CreateBranch, RenameBranch, DeleteBranch, SetLive, RenameImage,
// DeleteImage).
type Options struct {
	// Also, when set, queues the caller's own writes (the API's audit
	// event, say) on the move's MULTI pipeline, so they are written if and
	// only if the move is. It may be called more than once when the move
	// is retried; only the attempt that commits counts. It must only queue
	// commands: their replies are not available inside the transaction.
	Also func(p redis.Pipeliner)
}

func also(p redis.Pipeliner, opts []Options) {
	for _, o := range opts {
		if o.Also != nil {
			o.Also(p)
		}
	}
}

// CommitInfo says who moved a branch and why, for its history.
type CommitInfo struct {
	User    string
	Message string    // the commit message or the command that made the version
	Time    time.Time // zero: now
	// Changes, when the caller already has it (an import's Result), is the
	// difference from the base to the new version; otherwise the commit
	// reads both manifests to count it.
	Changes *manifest.Changes
}

func (i CommitInfo) time() time.Time {
	if i.Time.IsZero() {
		return time.Now().UTC()
	}
	return i.Time.UTC()
}

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

// Commit is CommitWith without who and why.
func (s *Store) Commit(ctx context.Context, image, branch string, base, next manifest.Digest) error {
	return s.CommitWith(ctx, image, branch, base, next, CommitInfo{})
}

// CommitWith moves branch of the image named image from base to next and
// appends the move to the branch's history, creating the image (with a new
// random id, and branch as its live branch) or the branch when they do not
// exist yet; a zero base means "the branch must not exist". If the branch
// points anywhere but base, CommitWith returns ErrConflict and changes
// nothing. Both manifests must be stored (PutManifest) before.
func (s *Store) CommitWith(ctx context.Context, image, branch string, base, next manifest.Digest, info CommitInfo, opts ...Options) error {
	err := s.commit(ctx, image, branch, base, next, info, opts)
	if err != nil {
		return fmt.Errorf("commit image %q branch %q to %s: %w", image, branch, next, err)
	}
	return nil
}

func (s *Store) commit(ctx context.Context, image, branch string, base, next manifest.Digest, info CommitInfo, opts []Options) error {
	if err := CheckName("image", image); err != nil {
		return err
	}
	if err := CheckName("branch", branch); err != nil {
		return err
	}
	changes := info.Changes
	if changes == nil {
		c, err := s.diff(ctx, base, next)
		if err != nil {
			return err
		}
		changes = &c
	}
	v := Version{
		Digest: next, Previous: base, Time: info.time(), User: info.User, Message: info.Message,
		Kind: KindCommit, Added: len(changes.Added), Changed: len(changes.Changed), Removed: len(changes.Removed),
	}
	for range commitRetries {
		err := s.commitOnce(ctx, image, branch, base, v, opts)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return ErrConflict
}

// diff counts the changes from base (zero: nothing) to next.
func (s *Store) diff(ctx context.Context, base, next manifest.Digest) (manifest.Changes, error) {
	a := &manifest.Manifest{Version: manifest.FormatVersion}
	if !base.IsZero() {
		var err error
		if a, err = s.Manifest(ctx, base); err != nil {
			return manifest.Changes{}, err
		}
	}
	b, err := s.Manifest(ctx, next)
	if err != nil {
		return manifest.Changes{}, err
	}
	return manifest.Diff(a, b), nil
}

func (s *Store) commitOnce(ctx context.Context, image, branch string, base manifest.Digest, v Version, opts []Options) error {
	rec, err := v.encode()
	if err != nil {
		return err
	}
	_, err = s.ImageID(ctx, image)
	if errors.Is(err, ErrNotFound) {
		if !base.IsZero() {
			return ErrConflict
		}
		return s.createImage(ctx, image, branch, v, rec, opts)
	}
	if err != nil {
		return err
	}
	err = s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
		cur, ok := st.branches[branch]
		switch {
		case !ok && !base.IsZero(), ok && cur != base.String():
			return nil, ErrConflict
		}
		return func(p redis.Pipeliner) {
			p.HSet(ctx, s.branchesKey(st.id), branch, v.Digest.String())
			p.LPush(ctx, s.historyKey(st.id, branch), rec)
		}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return redis.TxFailedErr // the image was deleted meanwhile: create it
	}
	return err
}

// createImage creates the image with its first branch, unless another
// commit created an image of that name meanwhile.
func (s *Store) createImage(ctx context.Context, image, branch string, v Version, rec string, opts []Options) error {
	id, err := newID()
	if err != nil {
		return err
	}
	return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		switch err := tx.HGet(ctx, s.namesKey(), image).Err(); {
		case err == nil:
			return redis.TxFailedErr // created meanwhile: commit onto it
		case !errors.Is(err, redis.Nil):
			return err
		}
		now := v.Time.Format(time.RFC3339Nano)
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.namesKey(), image, id)
			p.HSet(ctx, s.imageKey(id), "name", image, "live", branch, "created", now, "updated", now)
			p.HSet(ctx, s.branchesKey(id), branch, v.Digest.String())
			p.LPush(ctx, s.historyKey(id, branch), rec)
			also(p, opts)
			return nil
		})
		return err
	}, s.namesKey())
}

// imageState is an image as a move reads it inside its transaction.
type imageState struct {
	id       string
	name     string
	live     string
	branches map[string]string // branch → digest text
}

// move runs one pointer move on the existing image named image as a
// WATCH/MULTI transaction: it watches the image's keys (and the name index
// when watchNames), reads the image, lets decide check it and say what to
// write, and writes that together with the image's "updated" time and the
// callers' Also hooks. Every move writes image:<id>, so watching it sees
// every other move of the same image; when one happened, the attempt is
// repeated from the start (up to commitRetries times), so decide always
// judges the state it changes.
func (s *Store) move(ctx context.Context, image string, watchNames bool, opts []Options, decide func(st *imageState) (func(redis.Pipeliner), error)) error {
	for range commitRetries {
		id, err := s.ImageID(ctx, image)
		if err != nil {
			return err
		}
		keys := []string{s.imageKey(id), s.branchesKey(id)}
		if watchNames {
			keys = append(keys, s.namesKey())
		}
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			fields, err := tx.HGetAll(ctx, s.imageKey(id)).Result()
			if err != nil {
				return err
			}
			if fields["name"] != image {
				return redis.TxFailedErr // renamed or deleted since its id was read
			}
			branches, err := tx.HGetAll(ctx, s.branchesKey(id)).Result()
			if err != nil {
				return err
			}
			st := &imageState{id: id, name: image, live: fields["live"], branches: branches}
			write, err := decide(st)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				// "updated" first, so a move that deletes the image deletes it too.
				p.HSet(ctx, s.imageKey(id), "updated", time.Now().UTC().Format(time.RFC3339Nano))
				write(p)
				also(p, opts)
				return nil
			})
			return err
		}, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return ErrConflict
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new image id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
