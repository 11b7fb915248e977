package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// VersionKind says how a branch came to point at a version.
type VersionKind string

// Kinds of history records.
const (
	KindCommit   VersionKind = "commit"   // a new version (an import, an edit)
	KindRollback VersionKind = "rollback" // back to a version the branch had before
	KindBranch   VersionKind = "branch"   // the branch was created from another
)

// Version is one record of a branch's history: the branch moved from
// Previous to Digest. Records are only ever added, newest first; a rollback
// is a new record, so the history says everything the branch ever was.
type Version struct {
	Digest   manifest.Digest `json:"digest"`
	Previous manifest.Digest `json:"previous,omitzero"` // zero for the branch's first version
	Time     time.Time       `json:"time"`
	User     string          `json:"user,omitempty"`
	Message  string          `json:"message,omitempty"`
	Kind     VersionKind     `json:"kind"`
	From     string          `json:"from,omitempty"` // KindBranch: the branch it was created from
	// Counts of Diff(Previous, Digest).
	Added   int `json:"added"`
	Changed int `json:"changed"`
	Removed int `json:"removed"`
}

func (v Version) encode() (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode history record: %w", err)
	}
	return string(b), nil
}

func decodeVersion(s string) (Version, error) {
	var v Version
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, fmt.Errorf("decode history record: %w", err)
	}
	return v, nil
}

// History returns up to limit records of the branch's history, newest
// first; limit <= 0 returns all of them. A branch committed before
// histories were kept has none.
func (s *Store) History(ctx context.Context, image, branch string, limit int) ([]Version, error) {
	id, err := s.ImageID(ctx, image)
	if err != nil {
		return nil, err
	}
	stop := int64(limit) - 1
	if limit <= 0 {
		stop = -1
	}
	p := s.rdb.TxPipeline()
	ex := p.HExists(ctx, s.branchesKey(id), branch)
	lr := p.LRange(ctx, s.historyKey(id, branch), 0, stop)
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("history of image %q branch %q: %w", image, branch, err)
	}
	if !ex.Val() {
		return nil, fmt.Errorf("history of image %q branch %q: %w", image, branch, ErrNotFound)
	}
	recs := lr.Val()
	out := make([]Version, 0, len(recs))
	for _, r := range recs {
		v, err := decodeVersion(r)
		if err != nil {
			return nil, fmt.Errorf("history of image %q branch %q: %w", image, branch, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// errMoved tells Rollback's loop that the branch moved after the diff was
// counted.
var errMoved = errors.New("branch moved while rolling back")

// Rollback moves branch back to the version to, which must be in the
// branch's history (as a version or as the base of one): an error wrapping
// ErrNotFound otherwise. The move is a new KindRollback record; the history
// is never rewritten, so a rollback can itself be rolled back.
func (s *Store) Rollback(ctx context.Context, image, branch string, to manifest.Digest, info CommitInfo, opts ...Options) error {
	if err := s.rollback(ctx, image, branch, to, info, opts); err != nil {
		return fmt.Errorf("roll back image %q branch %q to %s: %w", image, branch, to, err)
	}
	return nil
}

func (s *Store) rollback(ctx context.Context, image, branch string, to manifest.Digest, info CommitInfo, opts []Options) error {
	hist, err := s.History(ctx, image, branch, 0)
	if err != nil {
		return err
	}
	if !wasOn(hist, to) {
		return fmt.Errorf("version %s was never on this branch: %w", to, ErrNotFound)
	}
	for range commitRetries {
		cur, err := s.Branch(ctx, image, branch)
		if err != nil {
			return err
		}
		changes := info.Changes
		if changes == nil {
			c, err := s.diff(ctx, cur, to)
			if err != nil {
				return err
			}
			changes = &c
		}
		v := Version{
			Digest: to, Previous: cur, Time: info.time(), User: info.User, Message: info.Message,
			Kind: KindRollback, Added: len(changes.Added), Changed: len(changes.Changed), Removed: len(changes.Removed),
		}
		rec, err := v.encode()
		if err != nil {
			return err
		}
		err = s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
			d, ok := st.branches[branch]
			switch {
			case !ok:
				return nil, fmt.Errorf("branch %q: %w", branch, ErrNotFound)
			case d != cur.String():
				return nil, errMoved
			}
			return func(p redis.Pipeliner) {
				p.HSet(ctx, s.branchesKey(st.id), branch, to.String())
				p.LPush(ctx, s.historyKey(st.id, branch), rec)
			}, nil
		})
		if !errors.Is(err, errMoved) {
			return err
		}
	}
	return ErrConflict
}

// wasOn reports whether d is a version or a base in hist.
func wasOn(hist []Version, d manifest.Digest) bool {
	for _, v := range hist {
		if v.Digest == d || v.Previous == d && !d.IsZero() {
			return true
		}
	}
	return false
}
