package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

func (s *Store) deviceKey(name string) string      { return s.key("device", name) }
func (s *Store) deviceConnsKey(name string) string { return s.key("conns", "device", name) }
func (s *Store) connKey(id string) string          { return s.key("connection", id) }

// DeviceFilter narrows a device list.
type DeviceFilter struct {
	Kind model.DeviceKind
}

// GetDevice reads one device.
func (s *Store) GetDevice(ctx context.Context, name string) (model.Device, error) {
	d, ok, err := getJSON[model.Device](ctx, s.rdb, s.deviceKey(name))
	if err != nil {
		return d, err
	}
	if !ok {
		return d, notFound("device", name)
	}
	return d, nil
}

// ListDevices returns one page of devices, sorted by name.
func (s *Store) ListDevices(ctx context.Context, opts ListOptions, f DeviceFilter) (model.Page[model.Device], error) {
	items, next, total, err := listObjects(ctx, s, "device", opts, func(d model.Device) string { return d.Name },
		func(d model.Device) bool { return f.Kind == "" || d.Kind == f.Kind })
	if items == nil {
		items = []model.Device{}
	}
	return model.Page[model.Device]{Items: items, Next: next, Total: total}, err
}

// CreateDevice adds a switch or PDU.
func (s *Store) CreateDevice(ctx context.Context, a Actor, d model.Device) (model.Device, error) {
	if err := d.Validate(); err != nil {
		return d, err
	}
	key := s.deviceKey(d.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		if exists, err := tx.Exists(ctx, key).Result(); err != nil {
			return nil, err
		} else if exists == 1 {
			return nil, errf(KindConflict, "name", "device %q already exists", d.Name)
		}
		now := s.now()
		d.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(d), 0)
			pipe.ZAdd(ctx, s.key("idx", "device"), redis.Z{Member: d.Name})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "device", Method: "create", Refs: []string{"device/" + d.Name},
				Msg: fmt.Sprintf("created %s %s", d.Kind, d.Name)})
			return nil
		}, nil
	})
	return d, err
}

// ReplaceDevice stores a new version of a device. A version that drops a
// port or outlet something is plugged into, or changes the kind of a device
// with connections, is refused.
func (s *Store) ReplaceDevice(ctx context.Context, a Actor, d model.Device, ifMatch int64) (model.Device, error) {
	if err := d.Validate(); err != nil {
		return d, err
	}
	key := s.deviceKey(d.Name)
	err := s.txn(ctx, []string{key, s.deviceConnsKey(d.Name)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Device](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("device", d.Name)
		}
		if err := checkRevision("device", d.Name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		conns, err := s.connsOf(ctx, tx, s.deviceConnsKey(d.Name))
		if err != nil {
			return nil, err
		}
		for _, c := range conns {
			if err := deviceAccepts(d, c); err != nil {
				return nil, errf(KindConflict, err.Field, "%s; node %s %s is connected there: delete connection %s first", err.Msg, c.Node, c.End, c.ID)
			}
		}
		d.Meta = model.Meta{Revision: old.Revision + 1, Created: old.Created, Updated: s.now()}
		changed := changedFields(old, d)
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(d), 0)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "device", Method: "update", Refs: []string{"device/" + d.Name},
				Msg: fmt.Sprintf("changed %s %s", d.Kind, d.Name), Extras: map[string]string{"changed": changed}})
			return nil
		}, nil
	})
	return d, err
}

// deviceAccepts says whether connection c can end at device d.
func deviceAccepts(d model.Device, c model.Connection) *Error {
	switch c.Kind {
	case model.ConnPower:
		if d.Kind != model.DevicePDU {
			return errf(KindInvalid, "device", "%s is a %s, not a PDU", d.Name, d.Kind)
		}
		if !slices.Contains(d.Outlets, c.Port) {
			return errf(KindInvalid, "port", "PDU %s has no outlet %q (it has %s)", d.Name, c.Port, listOrNone(d.Outlets))
		}
	case model.ConnNetwork:
		if d.Kind != model.DeviceSwitch {
			return errf(KindInvalid, "device", "%s is a %s, not a switch", d.Name, d.Kind)
		}
		if len(d.Ports) > 0 && !slices.Contains(d.Ports, c.Port) {
			return errf(KindInvalid, "port", "switch %s has no port %q", d.Name, c.Port)
		}
	}
	return nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// DeleteDevice removes a device nothing is connected to.
func (s *Store) DeleteDevice(ctx context.Context, a Actor, name string, ifMatch int64) error {
	key := s.deviceKey(name)
	return s.txn(ctx, []string{key, s.deviceConnsKey(name)}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.Device](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("device", name)
		}
		if err := checkRevision("device", name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		n, err := tx.SCard(ctx, s.deviceConnsKey(name)).Result()
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, errf(KindConflict, "", "%d connections end at %s %s: delete them first (herd connect list --device %s)", n, old.Kind, name, name)
		}
		return func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, key, s.deviceConnsKey(name))
			pipe.ZRem(ctx, s.key("idx", "device"), name)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "device", Method: "delete", Refs: []string{"device/" + name},
				Msg: fmt.Sprintf("deleted %s %s", old.Kind, name)})
			return nil
		}, nil
	})
}

// connsOf reads the connections whose ids are in an index set.
func (s *Store) connsOf(ctx context.Context, c redis.Cmdable, setKey string) ([]model.Connection, error) {
	ids, err := c.SMembers(ctx, setKey).Result()
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.connKey(id)
	}
	return mgetJSON[model.Connection](ctx, c, keys)
}

// deleteConn queues the writes that remove one connection and its indexes.
func (s *Store) deleteConn(ctx context.Context, pipe redis.Pipeliner, c model.Connection) {
	pipe.Del(ctx, s.connKey(c.ID))
	pipe.SRem(ctx, s.nodeConnsKey(c.Node), c.ID)
	pipe.SRem(ctx, s.deviceConnsKey(c.Device), c.ID)
	pipe.ZRem(ctx, s.key("idx", "connection"), c.ID)
}

// ConnectionFilter narrows a connection list.
type ConnectionFilter struct {
	Kind   model.ConnectionKind
	Node   string
	Device string
}

// ListConnections returns one page of connections, sorted by id.
func (s *Store) ListConnections(ctx context.Context, opts ListOptions, f ConnectionFilter) (model.Page[model.Connection], error) {
	items, next, total, err := listObjects(ctx, s, "connection", opts, func(c model.Connection) string { return c.ID },
		func(c model.Connection) bool {
			return (f.Kind == "" || c.Kind == f.Kind) && (f.Node == "" || c.Node == f.Node) && (f.Device == "" || c.Device == f.Device)
		})
	if items == nil {
		items = []model.Connection{}
	}
	return model.Page[model.Connection]{Items: items, Next: next, Total: total}, err
}

// GetConnection reads one connection by id.
func (s *Store) GetConnection(ctx context.Context, id string) (model.Connection, error) {
	c, ok, err := getJSON[model.Connection](ctx, s.rdb, s.connKey(id))
	if err != nil {
		return c, err
	}
	if !ok {
		return c, notFound("connection", id)
	}
	return c, nil
}

// Connect records that a node's interface or power supply is plugged into
// a device's port or outlet. Sending the same connection again changes
// nothing and succeeds, so retries are safe; connecting an end that is
// already connected elsewhere is refused.
func (s *Store) Connect(ctx context.Context, a Actor, c model.Connection) (model.Connection, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	c.ID = model.ConnectionID(c.Kind, c.Node, c.End)
	key := s.connKey(c.ID)
	watch := []string{key, s.nodeKey(c.Node), s.deviceKey(c.Device)}
	err := s.txn(ctx, watch, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, exists, err := getJSON[model.Connection](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if exists {
			if old.Device == c.Device && old.Port == c.Port {
				c = old
				return nil, nil
			}
			return nil, errf(KindConflict, "end", "node %s %s is already connected to %s port %s: delete connection %s first", c.Node, c.End, old.Device, old.Port, c.ID)
		}
		n, ok, err := getJSON[model.Node](ctx, tx, s.nodeKey(c.Node))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errf(KindInvalid, "node", "node %q does not exist", c.Node)
		}
		if !nodeHasEnd(n, c.Kind, c.End) {
			what := "interface"
			if c.Kind == model.ConnPower {
				what = "power supply"
			}
			return nil, errf(KindInvalid, "end", "node %s has no %s %q", c.Node, what, c.End)
		}
		d, ok, err := getJSON[model.Device](ctx, tx, s.deviceKey(c.Device))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errf(KindInvalid, "device", "device %q does not exist", c.Device)
		}
		if err := deviceAccepts(d, c); err != nil {
			return nil, err
		}
		now := s.now()
		c.Meta = model.Meta{Revision: 1, Created: now, Updated: now}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(c), 0)
			pipe.SAdd(ctx, s.nodeConnsKey(c.Node), c.ID)
			pipe.SAdd(ctx, s.deviceConnsKey(c.Device), c.ID)
			pipe.ZAdd(ctx, s.key("idx", "connection"), redis.Z{Member: c.ID})
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "connection", Method: "create",
				Refs: []string{"node/" + c.Node, "device/" + c.Device, "connection/" + c.ID},
				Msg:  fmt.Sprintf("connected %s %s to %s %s", c.Node, c.End, c.Device, c.Port)})
			return nil
		}, nil
	})
	return c, err
}

// Disconnect removes a connection.
func (s *Store) Disconnect(ctx context.Context, a Actor, id string) error {
	key := s.connKey(id)
	return s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		c, ok, err := getJSON[model.Connection](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("connection", id)
		}
		return func(pipe redis.Pipeliner) error {
			s.deleteConn(ctx, pipe, c)
			s.addAudit(ctx, pipe, a, model.AuditEvent{Kind: "connection", Method: "delete",
				Refs: []string{"node/" + c.Node, "device/" + c.Device, "connection/" + c.ID},
				Msg:  fmt.Sprintf("disconnected %s %s from %s %s", c.Node, c.End, c.Device, c.Port)})
			return nil
		}, nil
	})
}
