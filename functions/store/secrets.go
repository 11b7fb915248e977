package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Secrets are the passwords herd logs into BMCs and PDUs with. They are
// write-only: nothing here returns a value except secretValues, which only
// the power queue calls to hand a claimed task to the edge.
//
//	secret:<name>  hash: value, updated (RFC 3339), user
//	idx:secret     sorted set: secret names
//
// Values are kept as given: Redis is the appliance's own, reached on
// loopback or a private link, and holds the accounts' hashes beside them.
// Encrypting at rest needs a key from the store's config, which is not
// wired yet.

func (s *Store) secretKey(name string) string { return s.key("secret", name) }
func (s *Store) secretIdxKey() string         { return s.key("idx", "secret") }

func checkSecretName(name string) error {
	if err := model.CheckSecretName(name); err != nil {
		return &model.ValidationError{Problems: []model.FieldProblem{{Field: "name", Message: err.Error()}}}
	}
	return nil
}

// SetSecret stores or replaces a secret. The audit event names the secret
// and never its value.
func (s *Store) SetSecret(ctx context.Context, a Actor, name string, v model.SecretValue) (model.SecretInfo, error) {
	if err := checkSecretName(name); err != nil {
		return model.SecretInfo{}, err
	}
	if err := v.Validate(); err != nil {
		return model.SecretInfo{}, err
	}
	info := model.SecretInfo{Name: name, Updated: s.now(), User: a.User}
	key := s.secretKey(name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		exists, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", name, err)
		}
		method, msg := "create", "secret "+name+" set"
		if exists == 1 {
			method, msg = "update", "secret "+name+" changed"
		}
		return func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, "value", v.Value, "updated", info.Updated.Format(time.RFC3339Nano), "user", a.User)
			pipe.ZAdd(ctx, s.secretIdxKey(), redis.Z{Member: name})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "secret", Method: method, Refs: []string{"secret/" + name}, Msg: msg})
			return nil
		}, nil
	})
	if err != nil {
		return model.SecretInfo{}, fmt.Errorf("set secret %s: %w", name, err)
	}
	return info, nil
}

// ListSecrets describes every secret, sorted by name, without values.
func (s *Store) ListSecrets(ctx context.Context) ([]model.SecretInfo, error) {
	names, err := s.rdb.ZRange(ctx, s.secretIdxKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	cmds := make([]*redis.SliceCmd, len(names))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pipe.HMGet(ctx, s.secretKey(n), "updated", "user")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	out := make([]model.SecretInfo, 0, len(names))
	for i, n := range names {
		vals := cmds[i].Val()
		updated, _ := vals[0].(string)
		if updated == "" {
			continue // deleted between the two reads
		}
		user, _ := vals[1].(string)
		info := model.SecretInfo{Name: n, User: user}
		info.Updated, _ = time.Parse(time.RFC3339Nano, updated)
		out = append(out, info)
	}
	return out, nil
}

// DeleteSecret removes a secret. Nodes and devices naming it keep the
// name; power jobs for them fail until it is set again.
func (s *Store) DeleteSecret(ctx context.Context, a Actor, name string) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	key := s.secretKey(name)
	return s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		exists, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", name, err)
		}
		if exists == 0 {
			return nil, notFound("secret", name)
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, key)
			pipe.ZRem(ctx, s.secretIdxKey(), name)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "secret", Method: "delete", Refs: []string{"secret/" + name},
				Msg: "secret " + name + " deleted"})
			return nil
		}, nil
	})
}

// secretsExist reports which of names are set.
func (s *Store) secretsExist(ctx context.Context, c redis.Cmdable, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	cmds := make([]*redis.IntCmd, len(names))
	_, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pipe.Exists(ctx, s.secretKey(n))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up secrets: %w", err)
	}
	for i, n := range names {
		out[n] = cmds[i].Val() == 1
	}
	return out, nil
}

// secretValues reads the values of names; absent ones are left out. Only
// the power queue calls it, to fill in a claimed task.
func (s *Store) secretValues(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(names))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pipe.HGet(ctx, s.secretKey(n), "value")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	for i, n := range names {
		if v, err := cmds[i].Result(); err == nil {
			out[n] = v
		}
	}
	return out, nil
}
