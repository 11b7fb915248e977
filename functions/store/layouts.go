package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Disk layouts are inventory like groups: layout:<name> holds the JSON,
// idx:layout lists the names; every change is audited.

func (s *Store) layoutKey(name string) string { return s.key("layout", name) }

// GetLayout reads one disk layout.
func (s *Store) GetLayout(ctx context.Context, name string) (model.Layout, error) {
	l, ok, err := getJSON[model.Layout](ctx, s.rdb, s.layoutKey(name))
	if err != nil {
		return l, err
	}
	if !ok {
		return l, notFound("disk layout", name)
	}
	return l, nil
}

// ListLayouts returns one page of disk layouts, sorted by name.
func (s *Store) ListLayouts(ctx context.Context, opts ListOptions) (model.Page[model.Layout], error) {
	items, next, total, err := listObjects(ctx, s, "layout", opts, func(l model.Layout) string { return l.Name }, nil)
	if items == nil {
		items = []model.Layout{}
	}
	return model.Page[model.Layout]{Items: items, Next: next, Total: total}, err
}

// CreateLayout adds a disk layout.
func (s *Store) CreateLayout(ctx context.Context, a Actor, l model.Layout) (model.Layout, error) {
	if err := l.Validate(); err != nil {
		return l, err
	}
	key := s.layoutKey(l.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 1 {
			return nil, errf(KindConflict, "name", "disk layout %q already exists", l.Name)
		}
		now := s.now()
		l.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(l), 0)
			pipe.ZAdd(ctx, s.key("idx", "layout"), redis.Z{Member: l.Name})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "layout", Method: "create", Refs: []string{"layout/" + l.Name},
				Msg: fmt.Sprintf("created %s disk layout %s", l.Mode, l.Name)})
			return nil
		}, nil
	})
	return l, err
}

// ReplaceLayout stores a new version of a disk layout. Nodes pick it up on
// their next boot.
func (s *Store) ReplaceLayout(ctx context.Context, a Actor, l model.Layout, ifMatch int64) (model.Layout, error) {
	if err := l.Validate(); err != nil {
		return l, err
	}
	key := s.layoutKey(l.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Layout](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("disk layout", l.Name)
		}
		if err := checkRevision("disk layout", l.Name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		l.Meta = model.Meta{Revision: old.Revision + 1, Created: old.Created, Updated: s.now()}
		changed := changedFields(old, l)
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(l), 0)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "layout", Method: "update", Refs: []string{"layout/" + l.Name},
				Msg: fmt.Sprintf("changed disk layout %s", l.Name), Extras: map[string]string{"changed": changed}})
			return nil
		}, nil
	})
	return l, err
}

// DeleteLayout removes a disk layout no node or group names.
func (s *Store) DeleteLayout(ctx context.Context, a Actor, name string, ifMatch int64) error {
	key := s.layoutKey(name)
	// The name indexes are watched too: a node or group created meanwhile
	// (possibly naming this layout) restarts the check.
	watch := []string{key, s.key("idx", "node"), s.key("idx", "group")}
	return s.txn(ctx, watch, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Layout](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("disk layout", name)
		}
		if err := checkRevision("disk layout", name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		users, err := s.layoutUsers(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			shown := users
			if len(shown) > 5 {
				shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(users)-5))
			}
			return nil, errf(KindConflict, "", "disk layout %q is named by %s: give them another layout first", name, strings.Join(shown, ", "))
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, key)
			pipe.ZRem(ctx, s.key("idx", "layout"), name)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "layout", Method: "delete", Refs: []string{"layout/" + name},
				Msg: fmt.Sprintf("deleted disk layout %s", name)})
			return nil
		}, nil
	})
}

// layoutUsers names the groups and nodes ("group/NAME", "node/NAME") that
// set disk_layout to name themselves.
func (s *Store) layoutUsers(ctx context.Context, name string) ([]string, error) {
	var users []string
	for _, kind := range []string{"group", "node"} {
		names, err := s.listNames(ctx, kind, nil)
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(names))
		for i, n := range names {
			keys[i] = s.key(kind, n)
		}
		objs, err := mgetJSON[struct {
			Name string `json:"name"`
			model.Settings
		}](ctx, s.rdb, keys)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.DiskLayout == name {
				users = append(users, kind+"/"+o.Name)
			}
		}
	}
	return users, nil
}
