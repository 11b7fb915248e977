package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// NodeFilter narrows a node list beyond a noderange.
type NodeFilter struct {
	Group string
	Tag   string
	State model.NodeState
	// Query keeps nodes whose name, a MAC, an address or a tag contains it.
	Query string
}

func (f NodeFilter) match(n model.Node) bool {
	if f.Group != "" && n.Group != f.Group {
		return false
	}
	if f.Tag != "" && !slices.Contains(n.Tags, f.Tag) {
		return false
	}
	if f.State != "" && n.State != f.State {
		return false
	}
	if f.Query != "" {
		q := strings.ToLower(f.Query)
		hay := []string{n.Name, n.Group, n.Image, n.BMC.Address}
		hay = append(hay, n.Tags...)
		for _, i := range n.Interfaces {
			hay = append(hay, string(i.MAC), i.Address)
		}
		for _, h := range hay {
			if strings.Contains(strings.ToLower(h), q) {
				return true
			}
		}
		return false
	}
	return true
}

func (s *Store) nodeKey(name string) string   { return s.key("node", name) }
func (s *Store) macKey(m model.MAC) string    { return s.key("mac", string(m)) }
func (s *Store) membersKey(g string) string   { return s.key("members", g) }
func (s *Store) nodeConnsKey(n string) string { return s.key("conns", "node", n) }

func macKeys(s *Store, n model.Node) []string {
	var keys []string
	for _, i := range n.Interfaces {
		if i.MAC != "" {
			keys = append(keys, s.macKey(i.MAC))
		}
	}
	return keys
}

// GetNode reads one node with its effective (inherited) settings.
func (s *Store) GetNode(ctx context.Context, name string) (model.Node, error) {
	n, ok, err := getJSON[model.Node](ctx, s.rdb, s.nodeKey(name))
	if err != nil {
		return n, err
	}
	if !ok {
		return n, notFound("node", name)
	}
	if err := s.resolveNodes(ctx, []*model.Node{&n}); err != nil {
		return n, err
	}
	return n, nil
}

// NodeByMAC finds the node that owns a MAC address.
func (s *Store) NodeByMAC(ctx context.Context, mac model.MAC) (model.Node, error) {
	name, err := s.rdb.Get(ctx, s.macKey(mac)).Result()
	if err == redis.Nil {
		return model.Node{}, errf(KindNotFound, "", "no node has MAC %s", mac)
	}
	if err != nil {
		return model.Node{}, fmt.Errorf("look up MAC %s: %w", mac, err)
	}
	return s.GetNode(ctx, name)
}

// resolveNodes fills in each node's effective settings from its group.
func (s *Store) resolveNodes(ctx context.Context, nodes []*model.Node) error {
	var keys []string
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.Group != "" && !seen[n.Group] {
			seen[n.Group] = true
			keys = append(keys, s.groupKey(n.Group))
		}
	}
	groups, err := mgetJSON[model.Group](ctx, s.rdb, keys)
	if err != nil {
		return err
	}
	byName := map[string]*model.Group{}
	for i := range groups {
		byName[groups[i].Name] = &groups[i]
	}
	for _, n := range nodes {
		eff := model.Resolve(n.Settings, byName[n.Group])
		n.Effective = &eff
	}
	return nil
}

// ListNodes returns one page of nodes, sorted by name.
func (s *Store) ListNodes(ctx context.Context, opts ListOptions, f NodeFilter) (model.Page[model.Node], error) {
	items, next, total, err := listObjects(ctx, s, "node", opts, func(n model.Node) string { return n.Name }, f.match)
	if err != nil {
		return model.Page[model.Node]{}, err
	}
	ptrs := make([]*model.Node, len(items))
	for i := range items {
		ptrs[i] = &items[i]
	}
	if err := s.resolveNodes(ctx, ptrs); err != nil {
		return model.Page[model.Node]{}, err
	}
	if items == nil {
		items = []model.Node{}
	}
	return model.Page[model.Node]{Items: items, Next: next, Total: total}, nil
}

// NodeNames returns the names of every node, sorted.
func (s *Store) NodeNames(ctx context.Context) ([]string, error) {
	return s.listNames(ctx, "node", nil)
}

// CreateNode adds a node. Its name and MACs must be free and its group must
// exist.
func (s *Store) CreateNode(ctx context.Context, a Actor, n model.Node) (model.Node, error) {
	n.Effective = nil
	if n.State == "" {
		n.State = model.StateNew
	}
	if err := n.Validate(); err != nil {
		return n, err
	}
	key := s.nodeKey(n.Name)
	watch := append([]string{key}, macKeys(s, n)...)
	if n.Group != "" {
		watch = append(watch, s.groupKey(n.Group))
	}
	err := s.txn(ctx, watch, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 1 {
			return nil, errf(KindConflict, "name", "node %q already exists", n.Name)
		}
		if err := s.checkNodeRefs(ctx, tx, n); err != nil {
			return nil, err
		}
		now := s.now()
		n.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
		return func(pipe redis.Pipeliner) error {
			s.writeNode(ctx, pipe, nil, n)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "node", Method: "create", Refs: []string{"node/" + n.Name},
				Msg: fmt.Sprintf("created node %s", n.Name)})
			return nil
		}, nil
	})
	if err != nil {
		return n, err
	}
	return s.GetNode(ctx, n.Name)
}

// checkNodeRefs checks what a node refers to: its group exists and its MACs
// belong to no other node.
func (s *Store) checkNodeRefs(ctx context.Context, tx *redis.Tx, n model.Node) error {
	if n.Group != "" {
		exists, err := tx.Exists(ctx, s.groupKey(n.Group)).Result()
		if err != nil {
			return err
		}
		if exists == 0 {
			return errf(KindInvalid, "group", "group %q does not exist", n.Group)
		}
	}
	for i, itf := range n.Interfaces {
		if itf.MAC == "" {
			continue
		}
		owner, err := tx.Get(ctx, s.macKey(itf.MAC)).Result()
		if err != nil && err != redis.Nil {
			return err
		}
		if owner != "" && owner != n.Name {
			return errf(KindConflict, fmt.Sprintf("interfaces[%d].mac", i), "MAC %s already belongs to node %s", itf.MAC, owner)
		}
	}
	return nil
}

// writeNode queues the writes that store n and keep the indexes true; old
// is the stored version being replaced, nil on create.
func (s *Store) writeNode(ctx context.Context, pipe redis.Pipeliner, old *model.Node, n model.Node) {
	if old != nil {
		for _, k := range macKeys(s, *old) {
			pipe.Del(ctx, k)
		}
		if old.Group != "" && old.Group != n.Group {
			pipe.SRem(ctx, s.membersKey(old.Group), n.Name)
		}
	}
	pipe.Set(ctx, s.nodeKey(n.Name), mustJSON(n), 0)
	pipe.ZAdd(ctx, s.key("idx", "node"), redis.Z{Member: n.Name})
	for _, k := range macKeys(s, n) {
		pipe.Set(ctx, k, n.Name, 0)
	}
	if n.Group != "" {
		pipe.SAdd(ctx, s.membersKey(n.Group), n.Name)
	}
}

// ReplaceNode stores a new version of an existing node. ifMatch, when not
// zero, must equal the stored revision. The node's state and creation time
// are kept: clients cannot set them.
func (s *Store) ReplaceNode(ctx context.Context, a Actor, n model.Node, ifMatch int64) (model.Node, error) {
	n.Effective = nil
	key := s.nodeKey(n.Name)
	err := s.txn(ctx, []string{key, s.nodeConnsKey(n.Name)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Node](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("node", n.Name)
		}
		if err := checkRevision("node", n.Name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		n.State = old.State
		if err := n.Validate(); err != nil {
			return nil, err
		}
		watch := append(macKeys(s, n), macKeys(s, old)...)
		if n.Group != "" {
			watch = append(watch, s.groupKey(n.Group))
		}
		if len(watch) > 0 {
			if err := tx.Watch(ctx, watch...).Err(); err != nil {
				return nil, err
			}
		}
		if err := s.checkNodeRefs(ctx, tx, n); err != nil {
			return nil, err
		}
		if err := s.checkNodeEnds(ctx, tx, n); err != nil {
			return nil, err
		}
		n.Meta = model.Meta{Revision: old.Revision + 1, Created: old.Created, Updated: s.now()}
		changed := changedFields(old, n)
		return func(pipe redis.Pipeliner) error {
			s.writeNode(ctx, pipe, &old, n)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "node", Method: "update", Refs: []string{"node/" + n.Name},
				Msg: fmt.Sprintf("changed node %s", n.Name), Extras: map[string]string{"changed": changed}})
			return nil
		}, nil
	})
	if err != nil {
		return n, err
	}
	return s.GetNode(ctx, n.Name)
}

// checkNodeEnds refuses a node version that drops an interface or power
// supply still connected to a device.
func (s *Store) checkNodeEnds(ctx context.Context, tx *redis.Tx, n model.Node) error {
	ids, err := tx.SMembers(ctx, s.nodeConnsKey(n.Name)).Result()
	if err != nil {
		return err
	}
	for _, id := range ids {
		c, ok, err := getJSON[model.Connection](ctx, tx, s.connKey(id))
		if err != nil || !ok {
			continue
		}
		if !nodeHasEnd(n, c.Kind, c.End) {
			field := "interfaces"
			if c.Kind == model.ConnPower {
				field = "power_supplies"
			}
			return errf(KindConflict, field, "%s is connected to %s port %s: delete connection %s first", c.End, c.Device, c.Port, c.ID)
		}
	}
	return nil
}

func nodeHasEnd(n model.Node, kind model.ConnectionKind, end string) bool {
	if kind == model.ConnPower {
		return slices.Contains(n.PowerSupplies, end)
	}
	for _, i := range n.Interfaces {
		if i.Name == end {
			return true
		}
	}
	return false
}

// DeleteNode removes a node, its MACs and its connections.
func (s *Store) DeleteNode(ctx context.Context, a Actor, name string, ifMatch int64) error {
	key := s.nodeKey(name)
	return s.txn(ctx, []string{key, s.nodeConnsKey(name)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Node](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("node", name)
		}
		if err := checkRevision("node", name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		conns, err := s.connsOf(ctx, tx, s.nodeConnsKey(name))
		if err != nil {
			return nil, err
		}
		var removed []string
		for _, c := range conns {
			removed = append(removed, c.ID)
		}
		return func(pipe redis.Pipeliner) error {
			for _, k := range macKeys(s, old) {
				pipe.Del(ctx, k)
			}
			if old.Group != "" {
				pipe.SRem(ctx, s.membersKey(old.Group), name)
			}
			for _, c := range conns {
				s.deleteConn(ctx, pipe, c)
			}
			pipe.Del(ctx, key, s.nodeConnsKey(name))
			pipe.ZRem(ctx, s.key("idx", "node"), name)
			ev := model.AuditEvent{Kind: "node", Method: "delete", Refs: []string{"node/" + name}, Msg: fmt.Sprintf("deleted node %s", name)}
			if len(removed) > 0 {
				ev.Extras = map[string]string{"connections_removed": strings.Join(removed, ",")}
			}
			s.addAudit(ctx, pipe, a, ev)
			return nil
		}, nil
	})
}

// NodeStateCounts counts nodes by state, for the dashboard.
func (s *Store) NodeStateCounts(ctx context.Context) (map[model.NodeState]int, int, error) {
	names, err := s.NodeNames(ctx)
	if err != nil {
		return nil, 0, err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.nodeKey(n)
	}
	nodes, err := mgetJSON[model.Node](ctx, s.rdb, keys)
	if err != nil {
		return nil, 0, err
	}
	counts := map[model.NodeState]int{}
	for _, n := range nodes {
		counts[n.State]++
	}
	return counts, len(nodes), nil
}
