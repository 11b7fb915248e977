package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// userRecord is a user as stored: the public part and the password hash.
type userRecord struct {
	model.User
	Hash string `json:"hash"`
}

// credRecord is what a session or API token id resolves to.
type credRecord struct {
	Kind    string    `json:"kind"` // "session" or "token"
	ID      string    `json:"id"`   // token id (public); empty for sessions
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

func (s *Store) userKey(name string) string { return s.key("user", name) }

// credKey stores credentials under a hash of the secret, so a copy of the
// database does not hand out working tokens.
func (s *Store) credKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return s.key("cred", hex.EncodeToString(sum[:]))
}

// CreateUser adds an account with an already hashed password.
func (s *Store) CreateUser(ctx context.Context, a Actor, name string, role model.Role, hash string) (model.User, error) {
	var u model.User
	if err := model.CheckName(name); err != nil {
		return u, &model.ValidationError{Problems: []model.FieldProblem{{Field: "name", Message: err.Error()}}}
	}
	if role != model.RoleAdmin && role != model.RoleReadOnly {
		return u, &model.ValidationError{Problems: []model.FieldProblem{{Field: "role", Message: fmt.Sprintf("%q is not a role (want admin or readonly)", role)}}}
	}
	key := s.userKey(name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 1 {
			return nil, errf(KindConflict, "name", "user %q already exists", name)
		}
		// The uid counter is bumped even if the transaction is retried;
		// gaps in uids are harmless, reuse would not be.
		seq, err := s.rdb.Incr(ctx, s.key("seq", "uid")).Result()
		if err != nil {
			return nil, err
		}
		u = model.User{Name: name, UID: 999 + int(seq), Role: role, Created: s.now()}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(userRecord{User: u, Hash: hash}), 0)
			pipe.ZAdd(ctx, s.key("idx", "user"), redis.Z{Member: name})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "user", Method: "create", Refs: []string{"user/" + name},
				Msg: fmt.Sprintf("created %s user %s", role, name)})
			return nil
		}, nil
	})
	return u, err
}

// UserCount says how many accounts exist; zero means herd needs its first
// admin.
func (s *Store) UserCount(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.key("idx", "user")).Result()
}

// UserHash returns a user and the stored password hash, for login.
func (s *Store) UserHash(ctx context.Context, name string) (model.User, string, error) {
	r, ok, err := getJSON[userRecord](ctx, s.rdb, s.userKey(name))
	if err != nil {
		return model.User{}, "", err
	}
	if !ok {
		return model.User{}, "", notFound("user", name)
	}
	return r.User, r.Hash, nil
}

// GetUser reads one user.
func (s *Store) GetUser(ctx context.Context, name string) (model.User, error) {
	u, _, err := s.UserHash(ctx, name)
	return u, err
}

// ListUsers returns every user.
func (s *Store) ListUsers(ctx context.Context) ([]model.User, error) {
	items, _, _, err := listObjects(ctx, s, "user", ListOptions{Limit: 1000}, func(r userRecord) string { return r.Name }, nil)
	users := make([]model.User, len(items))
	for i, r := range items {
		users[i] = r.User
	}
	return users, err
}

// SetPassword replaces a user's password hash and ends their sessions.
func (s *Store) SetPassword(ctx context.Context, a Actor, name, hash string) error {
	key := s.userKey(name)
	return s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		r, ok, err := getJSON[userRecord](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("user", name)
		}
		r.Hash = hash
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(r), 0)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "user", Method: "password", Refs: []string{"user/" + name},
				Msg: fmt.Sprintf("changed the password of %s", name)})
			return nil
		}, nil
	})
}

// DeleteUser removes an account and every token it owns.
func (s *Store) DeleteUser(ctx context.Context, a Actor, name string) error {
	key := s.userKey(name)
	tokensKey := s.key("tokens", name)
	return s.txn(ctx, []string{key, tokensKey}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 0 {
			return nil, notFound("user", name)
		}
		tokens, err := tx.HGetAll(ctx, tokensKey).Result()
		if err != nil {
			return nil, err
		}
		return func(pipe redis.Pipeliner) error {
			for _, credKey := range tokens {
				pipe.Del(ctx, credKey)
			}
			pipe.Del(ctx, key, tokensKey)
			pipe.ZRem(ctx, s.key("idx", "user"), name)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "user", Method: "delete", Refs: []string{"user/" + name},
				Msg: fmt.Sprintf("deleted user %s and %d tokens", name, len(tokens))})
			return nil
		}, nil
	})
}

// CreateSession stores a login session for secret that expires after ttl.
func (s *Store) CreateSession(ctx context.Context, user, secret string, ttl time.Duration) (time.Time, error) {
	now := s.now()
	rec := credRecord{Kind: "session", User: user, Created: now, Expires: now.Add(ttl)}
	if err := s.rdb.Set(ctx, s.credKey(secret), mustJSON(rec), ttl).Err(); err != nil {
		return time.Time{}, fmt.Errorf("store session: %w", err)
	}
	return rec.Expires, nil
}

// DeleteSession ends a login session; ending one that is gone is fine.
func (s *Store) DeleteSession(ctx context.Context, secret string) error {
	return s.rdb.Del(ctx, s.credKey(secret)).Err()
}

// CreateToken stores an API token for a user. ttl 0 means it never expires.
func (s *Store) CreateToken(ctx context.Context, a Actor, user, name, id, secret string, ttl time.Duration) (model.Token, error) {
	now := s.now()
	rec := credRecord{Kind: "token", ID: id, User: user, Name: name, Created: now}
	if ttl > 0 {
		rec.Expires = now.Add(ttl)
	}
	t := model.Token{ID: id, User: user, Name: name, Created: now, Expires: rec.Expires}
	err := s.txn(ctx, []string{s.userKey(user)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, s.userKey(user)).Result(); err != nil {
			return nil, err
		} else if exists == 0 {
			return nil, notFound("user", user)
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, s.credKey(secret), mustJSON(rec), ttl)
			pipe.HSet(ctx, s.key("tokens", user), id, s.credKey(secret))
			pipe.Set(ctx, s.key("tokeninfo", id), mustJSON(t), ttl)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "token", Method: "create", Refs: []string{"user/" + user, "token/" + id},
				Msg: fmt.Sprintf("created API token %s (%s) for %s", id, name, user)})
			return nil
		}, nil
	})
	return t, err
}

// ListTokens lists a user's API tokens (never their secrets).
func (s *Store) ListTokens(ctx context.Context, user string) ([]model.Token, error) {
	ids, err := s.rdb.HKeys(ctx, s.key("tokens", user)).Result()
	if err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", user, err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key("tokeninfo", id)
	}
	return mgetJSON[model.Token](ctx, s.rdb, keys)
}

// DeleteToken revokes an API token of a user.
func (s *Store) DeleteToken(ctx context.Context, a Actor, user, id string) error {
	tokensKey := s.key("tokens", user)
	return s.txn(ctx, []string{tokensKey}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		credKey, err := tx.HGet(ctx, tokensKey, id).Result()
		if errors.Is(err, redis.Nil) {
			return nil, notFound("token", id)
		}
		if err != nil {
			return nil, err
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, credKey, s.key("tokeninfo", id))
			pipe.HDel(ctx, tokensKey, id)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "token", Method: "delete", Refs: []string{"user/" + user, "token/" + id},
				Msg: fmt.Sprintf("revoked API token %s of %s", id, user)})
			return nil
		}, nil
	})
}

// Authenticate resolves a session or token secret to its user. An unknown,
// expired or revoked secret is KindUnauthorized.
func (s *Store) Authenticate(ctx context.Context, secret string) (model.User, error) {
	rec, ok, err := getJSON[credRecord](ctx, s.rdb, s.credKey(secret))
	if err != nil {
		return model.User{}, err
	}
	if !ok || (!rec.Expires.IsZero() && s.now().After(rec.Expires)) {
		return model.User{}, errf(KindUnauthorized, "", "the session or token is unknown or expired: log in again")
	}
	u, err := s.GetUser(ctx, rec.User)
	if IsKind(err, KindNotFound) {
		return u, errf(KindUnauthorized, "", "the account %q no longer exists", rec.User)
	}
	return u, err
}
