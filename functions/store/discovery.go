package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Machines that boot with a MAC no node has are discovery entries:
//
//	disc:<mac>    hash: the entry's fields (see discoveredFields)
//	disc:idx      sorted set: MACs by last seen (ms), newest last
//	disc:evicted  counter: entries dropped to keep the list under its cap
//
// Entries have no TTL: a machine waiting for an admin stays listed until
// it is assigned or forgotten, or until newer machines push it out.

// DefaultDiscoveryCap is how many entries the list holds unless the caller
// says otherwise; a burst of unknown MACs beyond it evicts the least
// recently seen.
const DefaultDiscoveryCap = 10000

func (s *Store) discKey(m model.MAC) string { return s.key("disc", string(m)) }
func (s *Store) discIdxKey() string         { return s.key("disc", "idx") }
func (s *Store) discEvictedKey() string     { return s.key("disc", "evicted") }

// discoveredFields are the metadata fields of an entry; empty ones are not
// written, so a later request without them keeps what an earlier one told.
func discoveredFields(d model.Discovered) map[string]any {
	out := map[string]any{"mac": string(d.MAC), "last_seen": d.LastSeen.Format(time.RFC3339Nano)}
	for k, v := range map[string]string{
		"arch": d.Arch, "platform": d.Platform, "client_addr": d.ClientAddr, "vendor_class": d.VendorClass,
		"uuid": d.UUID, "manufacturer": d.Manufacturer, "product": d.Product, "serial": d.Serial, "asset": d.Asset,
	} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

func discoveredFromHash(h map[string]string) model.Discovered {
	d := model.Discovered{
		MAC: model.MAC(h["mac"]), Arch: h["arch"], Platform: h["platform"], ClientAddr: h["client_addr"],
		VendorClass: h["vendor_class"], UUID: h["uuid"], Manufacturer: h["manufacturer"], Product: h["product"],
		Serial: h["serial"], Asset: h["asset"],
	}
	d.FirstSeen, _ = time.Parse(time.RFC3339Nano, h["first_seen"])
	d.LastSeen, _ = time.Parse(time.RFC3339Nano, h["last_seen"])
	d.Count, _ = strconv.ParseInt(h["count"], 10, 64)
	return d
}

// dropDiscovered queues the removal of a MAC's discovery entry.
func (s *Store) dropDiscovered(ctx context.Context, pipe redis.Pipeliner, m model.MAC) {
	pipe.Del(ctx, s.discKey(m))
	pipe.ZRem(ctx, s.discIdxKey(), string(m))
}

// Discover records that a machine with an unknown MAC asked for its boot
// script: it creates or refreshes its entry (first seen kept, count
// increased, text cleaned and capped) and evicts the least recently seen
// entries beyond limit (0 means DefaultDiscoveryCap).
func (s *Store) Discover(ctx context.Context, d model.Discovered, limit int) (model.Discovered, error) {
	if limit <= 0 {
		limit = DefaultDiscoveryCap
	}
	d.Clean()
	now := s.now()
	d.LastSeen = now
	key := s.discKey(d.MAC)
	var (
		all  *redis.MapStringStringCmd
		card *redis.IntCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSetNX(ctx, key, "first_seen", now.Format(time.RFC3339Nano))
		pipe.HIncrBy(ctx, key, "count", 1)
		pipe.HSet(ctx, key, discoveredFields(d))
		pipe.ZAdd(ctx, s.discIdxKey(), redis.Z{Score: float64(now.UnixMilli()), Member: string(d.MAC)})
		all = pipe.HGetAll(ctx, key)
		card = pipe.ZCard(ctx, s.discIdxKey())
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("record discovered MAC %s: %w", d.MAC, err)
	}
	if over := card.Val() - int64(limit); over > 0 {
		if err := s.evictDiscovered(ctx, over); err != nil {
			return d, err
		}
	}
	return discoveredFromHash(all.Val()), nil
}

// evictDiscovered drops the n least recently seen entries. ZPOPMIN hands
// each MAC to one caller only, so concurrent evictions never count twice.
func (s *Store) evictDiscovered(ctx context.Context, n int64) error {
	popped, err := s.rdb.ZPopMin(ctx, s.discIdxKey(), n).Result()
	if err != nil {
		return fmt.Errorf("evict discovery entries: %w", err)
	}
	if len(popped) == 0 {
		return nil
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, z := range popped {
			m, _ := z.Member.(string)
			pipe.Del(ctx, s.discKey(model.MAC(m)))
		}
		pipe.IncrBy(ctx, s.discEvictedKey(), int64(len(popped)))
		return nil
	})
	if err != nil {
		return fmt.Errorf("evict discovery entries: %w", err)
	}
	return nil
}

// GetDiscovered reads the discovery entry of a MAC.
func (s *Store) GetDiscovered(ctx context.Context, m model.MAC) (model.Discovered, error) {
	h, err := s.rdb.HGetAll(ctx, s.discKey(m)).Result()
	if err != nil {
		return model.Discovered{}, fmt.Errorf("read discovered MAC %s: %w", m, err)
	}
	if len(h) == 0 {
		return model.Discovered{}, errf(KindNotFound, "", "no machine with MAC %s is waiting to be assigned", m)
	}
	return discoveredFromHash(h), nil
}

// discCursor is where a page of the discovery list starts: after the entry
// last seen at ms with that MAC (entries seen in the same millisecond come
// in reverse MAC order, as Redis sorts them).
type discCursor struct {
	ms  int64
	mac string
}

func parseDiscCursor(c string) (discCursor, error) {
	ms, mac, ok := strings.Cut(c, ",")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return discCursor{}, errf(KindInvalid, "cursor", "%q is not a cursor this list sent", c)
	}
	return discCursor{n, mac}, nil
}

func (c discCursor) String() string { return strconv.FormatInt(c.ms, 10) + "," + c.mac }

// ListDiscovered returns one page of discovery entries, most recently seen
// first. Entries whose MAC a node has meanwhile got are left out and
// dropped.
func (s *Store) ListDiscovered(ctx context.Context, opts ListOptions) (model.DiscoveredPage, error) {
	limit := opts.limit()
	var cur *discCursor
	max := "+inf"
	if opts.Cursor != "" {
		c, err := parseDiscCursor(opts.Cursor)
		if err != nil {
			return model.DiscoveredPage{}, err
		}
		cur, max = &c, strconv.FormatInt(c.ms, 10)
	}
	type entry struct {
		d  model.Discovered
		ms int64
	}
	var (
		items []entry
		stale []model.MAC
	)
	const batch = 500
	for offset := int64(0); len(items) <= limit; {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.discIdxKey(), Start: max, Stop: "-inf",
			ByScore: true, Rev: true, Offset: offset, Count: batch}).Result()
		if err != nil {
			return model.DiscoveredPage{}, fmt.Errorf("list discovered: %w", err)
		}
		offset += int64(len(zs))
		var macs []string
		var scores []int64
		for _, z := range zs {
			m, _ := z.Member.(string)
			ms := int64(z.Score)
			if cur != nil && ms == cur.ms && m >= cur.mac {
				continue
			}
			macs = append(macs, m)
			scores = append(scores, ms)
		}
		found, gone, err := s.discoveredUnassigned(ctx, macs)
		if err != nil {
			return model.DiscoveredPage{}, err
		}
		stale = append(stale, gone...)
		for i, d := range found {
			if d != nil {
				items = append(items, entry{*d, scores[i]})
			}
		}
		if len(zs) < batch {
			break
		}
	}
	if len(stale) > 0 {
		// Dropped only now, so the offsets above stay true. Best effort:
		// the next list tries again.
		_, _ = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, m := range stale {
				s.dropDiscovered(ctx, pipe, m)
			}
			return nil
		})
	}
	page := model.DiscoveredPage{Items: make([]model.Discovered, 0, min(len(items), limit))}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		page.Next = discCursor{last.ms, string(last.d.MAC)}.String()
	}
	for _, e := range items {
		page.Items = append(page.Items, e.d)
	}
	total, err := s.rdb.ZCard(ctx, s.discIdxKey()).Result()
	if err != nil {
		return page, fmt.Errorf("count discovered: %w", err)
	}
	page.Total = int(total)
	evicted, err := s.rdb.Get(ctx, s.discEvictedKey()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return page, fmt.Errorf("count evicted discovery entries: %w", err)
	}
	page.Evicted = evicted
	return page, nil
}

// discoveredUnassigned reads the entries of macs, nil for those that are
// gone or whose MAC now belongs to a node, which it also returns as stale.
func (s *Store) discoveredUnassigned(ctx context.Context, macs []string) (out []*model.Discovered, stale []model.MAC, err error) {
	if len(macs) == 0 {
		return nil, nil, nil
	}
	hashes := make([]*redis.MapStringStringCmd, len(macs))
	owners := make([]*redis.StringCmd, len(macs))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, m := range macs {
			hashes[i] = pipe.HGetAll(ctx, s.discKey(model.MAC(m)))
			owners[i] = pipe.Get(ctx, s.macKey(model.MAC(m)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("list discovered: %w", err)
	}
	out = make([]*model.Discovered, len(macs))
	for i, m := range macs {
		if err := hashes[i].Err(); err != nil {
			return nil, nil, fmt.Errorf("list discovered: %w", err)
		}
		if err := owners[i].Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("list discovered: %w", err)
		}
		if len(hashes[i].Val()) == 0 || owners[i].Val() != "" {
			stale = append(stale, model.MAC(m))
			continue
		}
		d := discoveredFromHash(hashes[i].Val())
		out[i] = &d
	}
	return out, stale, nil
}

// AssignDiscovered gives a discovered MAC to a node: to an existing node's
// boot interface when it has no MAC yet, else to a new interface
// (model.BootInterface); or, with create, to a new node whose eth0 it
// becomes. The node write, the removal of the discovery entry and the
// audit event are one transaction. created tells whether the node is new.
func (s *Store) AssignDiscovered(ctx context.Context, a Actor, m model.MAC, req model.AssignRequest) (n model.Node, created bool, err error) {
	if err := req.Validate(); err != nil {
		return n, false, err
	}
	discKey, nodeKey := s.discKey(m), s.nodeKey(req.Node)
	watch := []string{discKey, s.macKey(m), nodeKey}
	if req.Group != "" {
		watch = append(watch, s.groupKey(req.Group))
	}
	var iface string
	err = s.txn(ctx, watch, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		h, err := tx.HGetAll(ctx, discKey).Result()
		if err != nil {
			return nil, err
		}
		if len(h) == 0 {
			return nil, errf(KindNotFound, "", "no machine with MAC %s is waiting to be assigned: it was assigned or forgotten already, or never booted; add the MAC to the node instead", m)
		}
		disc := discoveredFromHash(h)
		owner, err := tx.Get(ctx, s.macKey(m)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		if owner != "" {
			return nil, errf(KindConflict, "", "MAC %s already belongs to node %s", m, owner)
		}
		old, exists, err := getJSON[model.Node](ctx, tx, nodeKey)
		if err != nil {
			return nil, err
		}
		now := s.now()
		var prev *model.Node
		switch {
		case req.Create && exists:
			return nil, errf(KindConflict, "node", "node %q already exists: assign without create to add the MAC to it", req.Node)
		case req.Create:
			n = model.Node{Name: req.Node, Group: req.Group, State: model.StateNew,
				Interfaces: []model.Interface{{Name: "eth0", MAC: m, Boot: true}}}
			n.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
			iface = "eth0"
		case !exists:
			return nil, errf(KindNotFound, "", "node %q does not exist: create it, or assign with create", req.Node)
		default:
			prev = &old
			n = old
			n.Effective = nil
			n.Interfaces = slices.Clone(old.Interfaces)
			var isNew, boot bool
			iface, isNew, boot = model.BootInterface(old)
			if isNew {
				n.Interfaces = append(n.Interfaces, model.Interface{Name: iface, MAC: m, Boot: boot})
			} else {
				for i := range n.Interfaces {
					if n.Interfaces[i].Name == iface {
						n.Interfaces[i].MAC, n.Interfaces[i].Boot = m, true
					}
				}
			}
			n.Meta = model.Meta{Revision: old.Revision + 1, Created: old.Created, Updated: now}
			if n.Group != "" {
				if err := tx.Watch(ctx, s.groupKey(n.Group)).Err(); err != nil {
					return nil, err
				}
			}
		}
		if err := n.Validate(); err != nil {
			return nil, err
		}
		if err := s.checkNodeRefs(ctx, tx, n); err != nil {
			return nil, err
		}
		ev := model.AuditEvent{Kind: "node", Method: "assign", Refs: []string{"node/" + n.Name, "mac/" + string(m)},
			Msg:    fmt.Sprintf("assigned discovered MAC %s to node %s as %s", m, n.Name, iface),
			Extras: map[string]string{"interface": iface}}
		if req.Create {
			ev.Msg = fmt.Sprintf("created node %s from discovered MAC %s", n.Name, m)
			ev.Extras["created"] = "true"
		}
		for k, v := range map[string]string{"manufacturer": disc.Manufacturer, "product": disc.Product, "serial": disc.Serial} {
			if v != "" {
				ev.Extras[k] = v
			}
		}
		return func(pipe redis.Pipeliner) error {
			s.writeNode(ctx, pipe, prev, n)
			s.dropDiscovered(ctx, pipe, m)
			s.addAudit(ctx, pipe, a, ev)
			return nil
		}, nil
	})
	if err != nil {
		return n, false, err
	}
	n, err = s.GetNode(ctx, n.Name)
	return n, req.Create, err
}

// ForgetDiscovered deletes a MAC's discovery entry. The machine reappears
// when it asks for its boot script again.
func (s *Store) ForgetDiscovered(ctx context.Context, a Actor, m model.MAC) error {
	key := s.discKey(m)
	return s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errf(KindNotFound, "", "no machine with MAC %s is waiting to be assigned", m)
		}
		return func(pipe redis.Pipeliner) error {
			s.dropDiscovered(ctx, pipe, m)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "discovery", Method: "delete", Refs: []string{"mac/" + string(m)},
				Msg: fmt.Sprintf("forgot discovered MAC %s", m)})
			return nil
		}, nil
	})
}

// BootReservations lists every MAC a node has, with the node and the
// address of that interface, sorted by MAC: the table the edge's DHCP
// answers known machines from.
func (s *Store) BootReservations(ctx context.Context) ([]model.Reservation, error) {
	names, err := s.NodeNames(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.nodeKey(n)
	}
	// Only names, MACs and addresses: decoding whole nodes would cost
	// most of the time of a poll.
	type iface struct {
		MAC     string `json:"mac"`
		Address string `json:"address"`
	}
	nodes, err := mgetJSON[struct {
		Name       string  `json:"name"`
		Interfaces []iface `json:"interfaces"`
	}](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("read reservations: %w", err)
	}
	out := []model.Reservation{}
	for _, n := range nodes {
		for _, i := range n.Interfaces {
			if i.MAC != "" {
				out = append(out, model.Reservation{MAC: model.MAC(i.MAC), Node: n.Name, Address: i.Address})
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Reservation) int { return strings.Compare(string(a.MAC), string(b.MAC)) })
	return out, nil
}

// DiscoveredCount is how many machines wait to be assigned, for a badge:
// one ZCARD, where a list would read entries. It may briefly count a MAC a
// node has just been given, until that machine boots again.
func (s *Store) DiscoveredCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.discIdxKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("count discovered machines: %w", err)
	}
	return n, nil
}
