package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Boot sessions live apart from inventory, each key with the session's TTL:
//
//	boot:session:<id>  hash: the session's fields (see sessionFields)
//	boot:events:<id>   stream: its timeline, one JSON event per entry in "e"
//	boot:token:<sha256 of the boot token, hex>  string: the session id
//	boot:node:<node>   sorted set: the node's recent session ids by start (ms)
//	boot:recent        sorted set: every node's recent session ids by start (ms)
//
// Nothing here is audited: sessions are what nodes do, not what admins
// change.
const (
	// MaxBootEvents caps a session's timeline (approximately: Redis trims
	// whole stream nodes).
	MaxBootEvents = 1000
	// RecentBootsPerNode is how many sessions a node's list keeps.
	RecentBootsPerNode = 50
	// RecentBoots is how many sessions the cluster-wide list keeps.
	RecentBoots = 1000
)

func (s *Store) bootSessionKey(id string) string { return s.key("boot", "session", id) }
func (s *Store) bootEventsKey(id string) string  { return s.key("boot", "events", id) }
func (s *Store) bootTokenKey(hash string) string { return s.key("boot", "token", hash) }
func (s *Store) bootNodeKey(node string) string  { return s.key("boot", "node", node) }
func (s *Store) bootRecentKey() string           { return s.key("boot", "recent") }

func sessionFields(b model.BootSession) map[string]any {
	arts, _ := json.Marshal(b.Artifacts)
	return map[string]any{
		"id": b.ID, "node": b.Node, "mac": string(b.MAC), "arch": b.Arch, "platform": b.Platform,
		"client_addr": b.ClientAddr, "image": b.Image, "branch": b.Branch, "state": string(b.State),
		"step": b.Step, "reason": b.Reason, "artifacts": string(arts),
		"started": b.Started.Format(time.RFC3339Nano), "updated": b.Updated.Format(time.RFC3339Nano),
		"expires": b.Expires.Format(time.RFC3339Nano),
	}
}

func sessionFromHash(h map[string]string) model.BootSession {
	b := model.BootSession{
		ID: h["id"], Node: h["node"], MAC: model.MAC(h["mac"]), Arch: h["arch"], Platform: h["platform"],
		ClientAddr: h["client_addr"], Image: h["image"], Branch: h["branch"], State: model.BootState(h["state"]),
		Step: h["step"], Reason: h["reason"],
	}
	_ = json.Unmarshal([]byte(h["artifacts"]), &b.Artifacts)
	b.Started, _ = time.Parse(time.RFC3339Nano, h["started"])
	b.Updated, _ = time.Parse(time.RFC3339Nano, h["updated"])
	b.Expires, _ = time.Parse(time.RFC3339Nano, h["expires"])
	return b
}

func decodeBootEvent(m redis.XMessage) (model.BootEvent, error) {
	var ev model.BootEvent
	raw, _ := m.Values["e"].(string)
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return ev, fmt.Errorf("decode boot event %s: %w", m.ID, err)
	}
	ev.ID = m.ID
	return ev, nil
}

// addBootEvent queues ev on the session's timeline; the command's value
// is its stream id once the transaction ran.
func (s *Store) addBootEvent(ctx context.Context, pipe redis.Pipeliner, id string, ev model.BootEvent, expires time.Time) *redis.StringCmd {
	ev.ID = ""
	cmd := pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.bootEventsKey(id), MaxLen: MaxBootEvents, Approx: true, Values: []string{"e", mustJSON(ev)}})
	pipe.ExpireAt(ctx, s.bootEventsKey(id), expires)
	return cmd
}

// OpenBootSession stores a new session, its first event and, when
// tokenHash is set, its boot token for tokenTTL. It lists the session
// among the node's and the cluster's recent ones, and drops any discovery
// entry left for its MAC. The session expires at sess.Expires.
func (s *Store) OpenBootSession(ctx context.Context, sess model.BootSession, tokenHash string, tokenTTL time.Duration, first model.BootEvent) error {
	now := s.now()
	sess.Started, sess.Updated = now, now
	if !sess.Expires.After(now) {
		return fmt.Errorf("open boot session %s: it expires at %s, before it starts", sess.ID, sess.Expires)
	}
	first.Time = now
	key := s.bootSessionKey(sess.ID)
	score := float64(now.UnixMilli())
	err := s.txn(ctx, []string{s.nodeKey(sess.Node)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		node, err := s.nodeForState(ctx, tx, sess.Node)
		if err != nil {
			return nil, err
		}
		return func(pipe redis.Pipeliner) error {
			s.openSession(ctx, pipe, sess, key, tokenHash, tokenTTL, first, score)
			s.setNodeState(ctx, pipe, node, nodeStateFor(sess.State))
			return nil
		}, nil
	})
	if err != nil {
		return fmt.Errorf("open boot session for %s: %w", sess.Node, err)
	}
	return nil
}

// openSession queues the writes of OpenBootSession.
func (s *Store) openSession(ctx context.Context, pipe redis.Pipeliner, sess model.BootSession, key, tokenHash string, tokenTTL time.Duration, first model.BootEvent, score float64) {
	pipe.HSet(ctx, key, sessionFields(sess))
	pipe.ExpireAt(ctx, key, sess.Expires)
	if tokenHash != "" {
		pipe.Set(ctx, s.bootTokenKey(tokenHash), sess.ID, tokenTTL)
	}
	s.addBootEvent(ctx, pipe, sess.ID, first, sess.Expires)
	nodeKey := s.bootNodeKey(sess.Node)
	pipe.ZAdd(ctx, nodeKey, redis.Z{Score: score, Member: sess.ID})
	pipe.ZRemRangeByRank(ctx, nodeKey, 0, -RecentBootsPerNode-1)
	pipe.ExpireAt(ctx, nodeKey, sess.Expires)
	pipe.ZAdd(ctx, s.bootRecentKey(), redis.Z{Score: score, Member: sess.ID})
	pipe.ZRemRangeByRank(ctx, s.bootRecentKey(), 0, -RecentBoots-1)
	s.dropDiscovered(ctx, pipe, sess.MAC)
}

// ResumeBootSession replaces a waiting session with next (same id), as
// when the node asks again after waiting: only a session that still waits
// and belongs to the same MAC is resumed. ok is false when there is none,
// and then nothing was written.
func (s *Store) ResumeBootSession(ctx context.Context, next model.BootSession, tokenHash string, tokenTTL time.Duration, ev model.BootEvent) (ok bool, err error) {
	key := s.bootSessionKey(next.ID)
	err = s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		h, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		cur := sessionFromHash(h)
		if len(h) == 0 || cur.MAC != next.MAC || cur.Node != next.Node || cur.State != model.BootWaiting {
			ok = false
			return nil, nil
		}
		ok = true
		now := s.now()
		next.Started, next.Updated, next.Expires = cur.Started, now, cur.Expires
		ev.Time = now
		return func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, sessionFields(next))
			if tokenHash != "" {
				pipe.Set(ctx, s.bootTokenKey(tokenHash), next.ID, tokenTTL)
			}
			s.addBootEvent(ctx, pipe, next.ID, ev, next.Expires)
			return nil
		}, nil
	})
	if err != nil {
		return false, fmt.Errorf("resume boot session %s: %w", next.ID, err)
	}
	return ok, nil
}

// BootSession reads one session.
func (s *Store) BootSession(ctx context.Context, id string) (model.BootSession, error) {
	h, err := s.rdb.HGetAll(ctx, s.bootSessionKey(id)).Result()
	if err != nil {
		return model.BootSession{}, fmt.Errorf("read boot session %s: %w", id, err)
	}
	if len(h) == 0 {
		return model.BootSession{}, notFound("boot session", id)
	}
	return sessionFromHash(h), nil
}

// BootTokenSession returns the id of the session a boot token (given by
// its hash) belongs to, and when extend is positive keeps the token alive
// that much longer: a token lives as long as its node keeps using it.
func (s *Store) BootTokenSession(ctx context.Context, tokenHash string, extend time.Duration) (string, error) {
	var (
		id  string
		err error
	)
	if extend > 0 {
		id, err = s.rdb.GetEx(ctx, s.bootTokenKey(tokenHash), extend).Result()
	} else {
		id, err = s.rdb.Get(ctx, s.bootTokenKey(tokenHash)).Result()
	}
	if errors.Is(err, redis.Nil) {
		return "", errf(KindUnauthorized, "", "the boot token is unknown or expired: boot the node again for a new one")
	}
	if err != nil {
		return "", fmt.Errorf("check boot token: %w", err)
	}
	return id, nil
}

// AddBootEvent appends ev to a session's timeline and moves the session's
// state on (model.NextBootState). ev.Time is set here.
func (s *Store) AddBootEvent(ctx context.Context, id string, ev model.BootEvent) (model.BootSession, model.BootEvent, error) {
	key := s.bootSessionKey(id)
	var (
		sess  model.BootSession
		added *redis.StringCmd
	)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		h, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		if len(h) == 0 {
			return nil, notFound("boot session", id)
		}
		sess = sessionFromHash(h)
		node, err := s.nodeForState(ctx, tx, sess.Node)
		if err != nil {
			return nil, err
		}
		now := s.now()
		ev.Time = now
		sess.State = model.NextBootState(sess.State, ev)
		sess.Step, sess.Updated = ev.Step, now
		switch sess.State {
		case model.BootFailed:
			if ev.State == model.EventFail {
				sess.Reason = ev.Step + ": " + ev.Message
			}
		case model.BootRunning, model.BootDone:
			sess.Reason = ""
		}
		return func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, "state", string(sess.State), "step", sess.Step, "reason", sess.Reason,
				"updated", now.Format(time.RFC3339Nano))
			added = s.addBootEvent(ctx, pipe, id, ev, sess.Expires)
			s.setNodeState(ctx, pipe, node, nodeStateFor(sess.State))
			return nil
		}, nil
	})
	if err != nil {
		return sess, ev, fmt.Errorf("add event to boot session %s: %w", id, err)
	}
	ev.ID = added.Val()
	return sess, ev, nil
}

// BootEvents returns a session's whole timeline, oldest first.
func (s *Store) BootEvents(ctx context.Context, id string) ([]model.BootEvent, error) {
	msgs, err := s.rdb.XRange(ctx, s.bootEventsKey(id), "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("read events of boot session %s: %w", id, err)
	}
	out := make([]model.BootEvent, 0, len(msgs))
	for _, m := range msgs {
		ev, err := decodeBootEvent(m)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// BootEventsAfter waits up to wait for events of a session newer than the
// stream id after, and returns them, oldest first, with the id to pass
// next time. after "" means from the start of the timeline, "$" only
// events from now on.
func (s *Store) BootEventsAfter(ctx context.Context, id, after string, wait time.Duration) ([]model.BootEvent, string, error) {
	key := s.bootEventsKey(id)
	switch after {
	case "":
		after = "0-0"
	case "$":
		last, err := s.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil {
			return nil, "", fmt.Errorf("read events of boot session %s: %w", id, err)
		}
		after = "0-0"
		if len(last) == 1 {
			after = last[0].ID
		}
	}
	block := wait
	if block <= 0 {
		block = -1 // Redis reads BLOCK 0 as "forever"; no wait means no BLOCK
	}
	streams, err := s.xread(ctx, redis.XReadArgs{Streams: []string{key, after}, Count: MaxBootEvents}, block)
	if errors.Is(err, redis.Nil) {
		return []model.BootEvent{}, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("follow boot session %s: %w", id, err)
	}
	out := []model.BootEvent{}
	for _, st := range streams {
		for _, m := range st.Messages {
			after = m.ID
			ev, err := decodeBootEvent(m)
			if err != nil {
				return nil, after, err
			}
			out = append(out, ev)
		}
	}
	return out, after, nil
}

// BootSessions returns the recent sessions of a node, or of every node
// when node is "", newest first, at most limit (0 means all kept).
// Sessions that expired are left out and dropped from the list.
func (s *Store) BootSessions(ctx context.Context, node string, limit int) ([]model.BootSession, error) {
	key := s.bootRecentKey()
	if node != "" {
		key = s.bootNodeKey(node)
	}
	ids, err := s.rdb.ZRevRange(ctx, key, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list boot sessions: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, s.bootSessionKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list boot sessions: %w", err)
	}
	out := make([]model.BootSession, 0, len(ids))
	var gone []any
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			gone = append(gone, ids[i])
			continue
		}
		out = append(out, sessionFromHash(c.Val()))
	}
	if len(gone) > 0 {
		// Best effort: the next list tries again.
		_ = s.rdb.ZRem(ctx, key, gone...).Err()
	}
	return out, nil
}

// nodeStateFor is the node state a boot session's state implies; "" leaves
// the node as it is (a node told to wait has not started provisioning).
func nodeStateFor(b model.BootState) model.NodeState {
	switch b {
	case model.BootScriptSent, model.BootRunning:
		return model.StateProvisioning
	case model.BootDone:
		return model.StateUp
	case model.BootFailed:
		return model.StateError
	}
	return ""
}

// nodeForState watches and reads the node a boot session belongs to, so
// its state can move with the session in the same transaction. A node
// deleted meanwhile gives nil: the session goes on, no node is touched.
func (s *Store) nodeForState(ctx context.Context, tx *redis.Tx, name string) (*model.Node, error) {
	if err := tx.Watch(ctx, s.nodeKey(name)).Err(); err != nil {
		return nil, err
	}
	n, ok, err := getJSON[model.Node](ctx, tx, s.nodeKey(name))
	if err != nil || !ok {
		return nil, err
	}
	return &n, nil
}

// setNodeState queues the write of a node's new state. State is what herd
// observed, not what an admin set: it neither bumps the revision (the ETag
// guards admin edits) nor writes an audit event; the boot session records
// why it changed.
func (s *Store) setNodeState(ctx context.Context, pipe redis.Pipeliner, n *model.Node, state model.NodeState) {
	if n == nil || state == "" || n.State == state {
		return
	}
	n.State = state
	pipe.Set(ctx, s.nodeKey(n.Name), mustJSON(*n), 0)
}

// ArtifactMemo is how long a boot file found in the object store is taken
// to be there without asking again. A file removed meanwhile fails the
// node's download instead of its script, and the node retries.
const ArtifactMemo = 30 * time.Second

// BootArtifacts remembers which boot files exist; it fits boot.Presence.
type BootArtifacts struct{ S *Store }

// Present reports whether key was found in the object store recently. A
// Redis failure reads as "not known": the caller then asks the object store.
func (b BootArtifacts) Present(ctx context.Context, key string) bool {
	n, err := b.S.rdb.Exists(ctx, b.S.key("boot", "present", key)).Result()
	return err == nil && n == 1
}

// Saw records that key exists, for ArtifactMemo.
func (b BootArtifacts) Saw(ctx context.Context, key string) {
	_ = b.S.rdb.Set(ctx, b.S.key("boot", "present", key), "1", ArtifactMemo).Err()
}
