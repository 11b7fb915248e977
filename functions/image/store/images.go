package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// ImageInfo is an image and its branches as Images and Image read them.
type ImageInfo struct {
	ID       string
	Name     string
	Live     string       // the live branch
	Branches []BranchInfo // by name
	Created  time.Time    // zero for an image made before times were kept
	Updated  time.Time    // the last pointer move
}

// BranchInfo is one branch and the version it points at.
type BranchInfo struct {
	Name   string
	Digest manifest.Digest
}

// Images returns every image, by name.
func (s *Store) Images(ctx context.Context) ([]ImageInfo, error) {
	names, err := s.rdb.HGetAll(ctx, s.namesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	type cmds struct{ fields, branches *redis.MapStringStringCmd }
	p := s.rdb.Pipeline()
	byName := make(map[string]cmds, len(names))
	for name, id := range names {
		byName[name] = cmds{p.HGetAll(ctx, s.imageKey(id)), p.HGetAll(ctx, s.branchesKey(id))}
	}
	if len(names) > 0 {
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
	}
	out := make([]ImageInfo, 0, len(names))
	for name, c := range byName {
		info, err := imageInfo(names[name], c.fields.Val(), c.branches.Val())
		if err != nil {
			return nil, fmt.Errorf("list images: %q: %w", name, err)
		}
		if info.Name != name {
			continue // renamed or deleted between the two reads
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b ImageInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Image returns the image named name; an error wrapping ErrNotFound when
// there is none.
func (s *Store) Image(ctx context.Context, name string) (ImageInfo, error) {
	for range commitRetries {
		id, err := s.ImageID(ctx, name)
		if err != nil {
			return ImageInfo{}, err
		}
		p := s.rdb.TxPipeline()
		fields, branches := p.HGetAll(ctx, s.imageKey(id)), p.HGetAll(ctx, s.branchesKey(id))
		if _, err := p.Exec(ctx); err != nil {
			return ImageInfo{}, fmt.Errorf("image %q: %w", name, err)
		}
		info, err := imageInfo(id, fields.Val(), branches.Val())
		if err != nil {
			return ImageInfo{}, fmt.Errorf("image %q: %w", name, err)
		}
		if info.Name == name {
			return info, nil
		}
	}
	return ImageInfo{}, fmt.Errorf("image %q: renamed while being read: %w", name, ErrConflict)
}

func imageInfo(id string, fields, branches map[string]string) (ImageInfo, error) {
	info := ImageInfo{ID: id, Name: fields["name"], Live: fields["live"]}
	for field, t := range map[string]*time.Time{"created": &info.Created, "updated": &info.Updated} {
		if v := fields[field]; v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return info, fmt.Errorf("%s time: %w", field, err)
			}
		}
	}
	for name, v := range branches {
		d, err := manifest.ParseDigest(v)
		if err != nil {
			return info, fmt.Errorf("branch %q: %w", name, err)
		}
		info.Branches = append(info.Branches, BranchInfo{Name: name, Digest: d})
	}
	slices.SortFunc(info.Branches, func(a, b BranchInfo) int { return strings.Compare(a.Name, b.Name) })
	return info, nil
}

// RenameImage gives the image named from the name to; an error wrapping
// ErrExists when to is taken. Its id, branches and histories stay.
func (s *Store) RenameImage(ctx context.Context, from, to string, opts ...Options) error {
	err := CheckName("image", to)
	if err == nil {
		err = s.move(ctx, from, true, opts, func(st *imageState) (func(redis.Pipeliner), error) {
			if from == to {
				return func(redis.Pipeliner) {}, nil
			}
			taken, err := s.rdb.HExists(ctx, s.namesKey(), to).Result()
			switch {
			case err != nil:
				return nil, err
			case taken:
				return nil, fmt.Errorf("image %q: %w", to, ErrExists)
			}
			return func(p redis.Pipeliner) {
				p.HDel(ctx, s.namesKey(), from)
				p.HSet(ctx, s.namesKey(), to, st.id)
				p.HSet(ctx, s.imageKey(st.id), "name", to)
			}, nil
		})
	}
	if err != nil {
		return fmt.Errorf("rename image %q to %q: %w", from, to, err)
	}
	return nil
}

// DeleteImage removes the image named image: its name, branches and their
// histories. Whether anything still uses the image is the caller's to
// check; the versions' contents stay until GC finds them unreferenced.
func (s *Store) DeleteImage(ctx context.Context, image string, opts ...Options) error {
	err := s.move(ctx, image, true, opts, func(st *imageState) (func(redis.Pipeliner), error) {
		keys := []string{s.imageKey(st.id), s.branchesKey(st.id)}
		for b := range st.branches {
			keys = append(keys, s.historyKey(st.id, b))
		}
		return func(p redis.Pipeliner) {
			p.HDel(ctx, s.namesKey(), image)
			p.Del(ctx, keys...)
		}, nil
	})
	if err != nil {
		return fmt.Errorf("delete image %q: %w", image, err)
	}
	return nil
}

// CreateBranch makes branch to of the image point where branch from does,
// in O(1): no content is copied. The new branch's history starts with a
// KindBranch record. An error wraps ErrExists when to exists and
// ErrNotFound when from does not.
func (s *Store) CreateBranch(ctx context.Context, image, from, to string, opts ...Options) error {
	err := CheckName("branch", to)
	if err == nil {
		err = s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
			d, ok := st.branches[from]
			if !ok {
				return nil, fmt.Errorf("branch %q: %w", from, ErrNotFound)
			}
			if _, ok := st.branches[to]; ok {
				return nil, fmt.Errorf("branch %q: %w", to, ErrExists)
			}
			digest, err := manifest.ParseDigest(d)
			if err != nil {
				return nil, err
			}
			rec, err := Version{Digest: digest, Time: time.Now().UTC(), Kind: KindBranch, From: from}.encode()
			if err != nil {
				return nil, err
			}
			hk := s.historyKey(st.id, to)
			return func(p redis.Pipeliner) {
				p.HSet(ctx, s.branchesKey(st.id), to, d)
				p.Del(ctx, hk) // a leftover would claim versions this branch never had
				p.LPush(ctx, hk, rec)
			}, nil
		})
	}
	if err != nil {
		return fmt.Errorf("create branch %q of image %q from %q: %w", to, image, from, err)
	}
	return nil
}

// RenameBranch renames branch from to to, with its history; if from was
// live, to is. An error wraps ErrExists when to exists.
func (s *Store) RenameBranch(ctx context.Context, image, from, to string, opts ...Options) error {
	err := CheckName("branch", to)
	if err == nil {
		err = s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
			d, ok := st.branches[from]
			if !ok {
				return nil, fmt.Errorf("branch %q: %w", from, ErrNotFound)
			}
			if from == to {
				return func(redis.Pipeliner) {}, nil
			}
			if _, ok := st.branches[to]; ok {
				return nil, fmt.Errorf("branch %q: %w", to, ErrExists)
			}
			return func(p redis.Pipeliner) {
				p.HDel(ctx, s.branchesKey(st.id), from)
				p.HSet(ctx, s.branchesKey(st.id), to, d)
				// RENAME of a missing key fails the whole EXEC, so move the
				// history with a command that tolerates a branch without one.
				p.Del(ctx, s.historyKey(st.id, to))
				p.Eval(ctx, renameIfExists, []string{s.historyKey(st.id, from), s.historyKey(st.id, to)})
				if st.live == from {
					p.HSet(ctx, s.imageKey(st.id), "live", to)
				}
			}, nil
		})
	}
	if err != nil {
		return fmt.Errorf("rename branch %q of image %q to %q: %w", from, image, to, err)
	}
	return nil
}

// renameIfExists renames KEYS[1] to KEYS[2] when KEYS[1] exists.
const renameIfExists = `if redis.call("EXISTS", KEYS[1]) == 1 then return redis.call("RENAME", KEYS[1], KEYS[2]) end return 0`

// DeleteBranch removes branch and its history; an error wrapping
// ErrLiveBranch when it is the image's live branch.
func (s *Store) DeleteBranch(ctx context.Context, image, branch string, opts ...Options) error {
	err := s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
		if _, ok := st.branches[branch]; !ok {
			return nil, fmt.Errorf("branch %q: %w", branch, ErrNotFound)
		}
		if st.live == branch {
			return nil, fmt.Errorf("branch %q %w: make another branch live first", branch, ErrLiveBranch)
		}
		return func(p redis.Pipeliner) {
			p.HDel(ctx, s.branchesKey(st.id), branch)
			p.Del(ctx, s.historyKey(st.id, branch))
		}, nil
	})
	if err != nil {
		return fmt.Errorf("delete branch %q of image %q: %w", branch, image, err)
	}
	return nil
}

// SetLive makes branch the image's live branch.
func (s *Store) SetLive(ctx context.Context, image, branch string, opts ...Options) error {
	err := s.move(ctx, image, false, opts, func(st *imageState) (func(redis.Pipeliner), error) {
		if _, ok := st.branches[branch]; !ok {
			return nil, fmt.Errorf("branch %q: %w", branch, ErrNotFound)
		}
		return func(p redis.Pipeliner) {
			p.HSet(ctx, s.imageKey(st.id), "live", branch)
		}, nil
	})
	if err != nil {
		return fmt.Errorf("make branch %q of image %q live: %w", branch, image, err)
	}
	return nil
}
