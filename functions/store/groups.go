package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

func (s *Store) groupKey(name string) string { return s.key("group", name) }

// GetGroup reads one group.
func (s *Store) GetGroup(ctx context.Context, name string) (model.Group, error) {
	g, ok, err := getJSON[model.Group](ctx, s.rdb, s.groupKey(name))
	if err != nil {
		return g, err
	}
	if !ok {
		return g, notFound("group", name)
	}
	return g, nil
}

// ListGroups returns one page of groups, sorted by name.
func (s *Store) ListGroups(ctx context.Context, opts ListOptions) (model.Page[model.Group], error) {
	items, next, total, err := listObjects(ctx, s, "group", opts, func(g model.Group) string { return g.Name }, nil)
	if items == nil {
		items = []model.Group{}
	}
	return model.Page[model.Group]{Items: items, Next: next, Total: total}, err
}

// GroupMembers returns the names of a group's nodes, for @group noderanges.
func (s *Store) GroupMembers(ctx context.Context, name string) ([]string, error) {
	exists, err := s.rdb.Exists(ctx, s.groupKey(name)).Result()
	if err != nil {
		return nil, fmt.Errorf("read group %s: %w", name, err)
	}
	if exists == 0 {
		return nil, notFound("group", name)
	}
	members, err := s.rdb.SMembers(ctx, s.membersKey(name)).Result()
	if err != nil {
		return nil, fmt.Errorf("read members of group %s: %w", name, err)
	}
	return members, nil
}

// CreateGroup adds a group.
func (s *Store) CreateGroup(ctx context.Context, a Actor, g model.Group) (model.Group, error) {
	if err := g.Validate(); err != nil {
		return g, err
	}
	key := s.groupKey(g.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 1 {
			return nil, errf(KindConflict, "name", "group %q already exists", g.Name)
		}
		now := s.now()
		g.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(g), 0)
			pipe.ZAdd(ctx, s.key("idx", "group"), redis.Z{Member: g.Name})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "group", Method: "create", Refs: []string{"group/" + g.Name},
				Msg: fmt.Sprintf("created group %s", g.Name)})
			return nil
		}, nil
	})
	return g, err
}

// ReplaceGroup stores a new version of an existing group.
func (s *Store) ReplaceGroup(ctx context.Context, a Actor, g model.Group, ifMatch int64) (model.Group, error) {
	if err := g.Validate(); err != nil {
		return g, err
	}
	key := s.groupKey(g.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Group](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("group", g.Name)
		}
		if err := checkRevision("group", g.Name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		g.Meta = model.Meta{Revision: old.Revision + 1, Created: old.Created, Updated: s.now()}
		changed := changedFields(old, g)
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(g), 0)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "group", Method: "update", Refs: []string{"group/" + g.Name},
				Msg: fmt.Sprintf("changed group %s", g.Name), Extras: map[string]string{"changed": changed}})
			return nil
		}, nil
	})
	return g, err
}

// DeleteGroup removes a group that has no member nodes.
func (s *Store) DeleteGroup(ctx context.Context, a Actor, name string, ifMatch int64) error {
	key := s.groupKey(name)
	return s.txn(ctx, []string{key, s.membersKey(name)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Group](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("group", name)
		}
		if err := checkRevision("group", name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		members, err := tx.SMembers(ctx, s.membersKey(name)).Result()
		if err != nil {
			return nil, err
		}
		if len(members) > 0 {
			shown := members
			if len(shown) > 5 {
				shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(members)-5))
			}
			return nil, errf(KindConflict, "", "group %q still has %d nodes (%s): move them to another group first", name, len(members), strings.Join(shown, ", "))
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, key, s.membersKey(name))
			pipe.ZRem(ctx, s.key("idx", "group"), name)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "group", Method: "delete", Refs: []string{"group/" + name},
				Msg: fmt.Sprintf("deleted group %s", name)})
			return nil
		}, nil
	})
}
