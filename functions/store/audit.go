package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// AuditQuery selects audit events. Zero fields do not filter.
type AuditQuery struct {
	Since, Until time.Time
	User         string
	Kind         string
	Method       string
	Ref          string // matches a reference exactly ("node/node001") or its name alone ("node001")
	Limit        int    // 0 means 100, at most 1000
	// Before is the cursor: only events older than this stream id.
	Before string
}

func (q AuditQuery) match(ev model.AuditEvent) bool {
	if q.User != "" && ev.User != q.User {
		return false
	}
	if q.Kind != "" && ev.Kind != q.Kind {
		return false
	}
	if q.Method != "" && ev.Method != q.Method {
		return false
	}
	if q.Ref != "" && !slices.ContainsFunc(ev.Refs, func(r string) bool {
		_, name, _ := strings.Cut(r, "/")
		return r == q.Ref || name == q.Ref
	}) {
		return false
	}
	return true
}

func decodeAudit(m redis.XMessage) (model.AuditEvent, error) {
	var ev model.AuditEvent
	raw, _ := m.Values["e"].(string)
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return ev, fmt.Errorf("decode audit event %s: %w", m.ID, err)
	}
	ev.ID = m.ID
	return ev, nil
}

// streamID turns a time into a stream id bound.
func streamID(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Audit returns audit events, newest first, one page at a time.
func (s *Store) Audit(ctx context.Context, q AuditQuery) (model.Page[model.AuditEvent], error) {
	limit := ListOptions{Limit: q.Limit}.limit()
	hi := "+"
	if !q.Until.IsZero() {
		hi = streamID(q.Until)
	}
	if q.Before != "" {
		hi = "(" + q.Before
	}
	lo := "-"
	if !q.Since.IsZero() {
		lo = streamID(q.Since)
	}
	var out []model.AuditEvent
	const batch = 500
	for len(out) <= limit {
		msgs, err := s.rdb.XRevRangeN(ctx, s.auditKey(), hi, lo, batch).Result()
		if err != nil {
			return model.Page[model.AuditEvent]{}, fmt.Errorf("read audit: %w", err)
		}
		for _, m := range msgs {
			ev, err := decodeAudit(m)
			if err != nil {
				return model.Page[model.AuditEvent]{}, err
			}
			if q.match(ev) {
				out = append(out, ev)
			}
		}
		if len(msgs) < batch {
			break
		}
		hi = "(" + msgs[len(msgs)-1].ID
	}
	page := model.Page[model.AuditEvent]{Items: out, Total: len(out)}
	if len(out) > limit {
		page.Items = out[:limit]
		page.Next = out[limit-1].ID
		page.Total = -1 // unknown without reading the whole stream
	}
	if page.Items == nil {
		page.Items = []model.AuditEvent{}
	}
	return page, nil
}

// AuditAfter waits up to wait for events newer than the stream id after
// ("$" or "" means only new ones from now) and returns those matching q,
// oldest first, with the id to pass next time. It is how `herd audit -f`
// and the page follow the stream without any state in functions.
func (s *Store) AuditAfter(ctx context.Context, q AuditQuery, after string, wait time.Duration) ([]model.AuditEvent, string, error) {
	if after == "" || after == "$" {
		last, err := s.rdb.XRevRangeN(ctx, s.auditKey(), "+", "-", 1).Result()
		if err != nil {
			return nil, "", fmt.Errorf("read audit: %w", err)
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
	streams, err := s.xread(ctx, redis.XReadArgs{Streams: []string{s.auditKey(), after}, Count: 1000}, block)
	if errors.Is(err, redis.Nil) {
		return []model.AuditEvent{}, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("follow audit: %w", err)
	}
	out := []model.AuditEvent{}
	for _, st := range streams {
		for _, m := range st.Messages {
			after = m.ID
			ev, err := decodeAudit(m)
			if err != nil {
				return nil, after, err
			}
			if q.match(ev) {
				out = append(out, ev)
			}
		}
	}
	return out, after, nil
}

// Record writes an audit event that goes with no stored change, such as a
// login.
func (s *Store) Record(ctx context.Context, a Actor, ev model.AuditEvent) error {
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		s.addAudit(ctx, pipe, a, ev)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write audit event: %w", err)
	}
	return nil
}

// AuditIn queues the audit event ev on pipe, a MULTI pipeline of the same
// Redis that another store (the image store) executes with its own change,
// so the change and its event are written together or not at all.
func (s *Store) AuditIn(ctx context.Context, pipe redis.Pipeliner, a Actor, ev model.AuditEvent) {
	s.addAudit(ctx, pipe, a, ev)
}
