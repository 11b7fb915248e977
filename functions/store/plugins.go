package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// Plugin settings are cluster-wide (plugin:<name>, JSON), one object per
// known plugin; a plugin never set reads as its default (DefaultPlugin).
// They are not overridden per group or node.

func (s *Store) pluginKey(name string) string { return s.key("plugin", name) }

// DefaultPlugin is a plugin's settings before an admin set any: the
// plugins every node needs to be reachable (hostname, hosts, interfaces,
// fstab) run, the others wait to be configured. Revision 0 marks it as
// never stored.
func DefaultPlugin(name string) model.PluginSettings {
	on := name == model.PluginSync || slices.Contains([]string{"hostname", "hosts", "interfaces", "fstab"}, name)
	return model.PluginSettings{Name: name, Enabled: on}
}

func unknownPlugin(name string) error {
	return errf(KindNotFound, "", "there is no plugin %q (plugins: %s, and %s for the image sync policy)",
		model.CleanText(name, 64), strings.Join(model.Plugins(), ", "), model.PluginSync)
}

// GetPlugin reads one plugin's settings.
func (s *Store) GetPlugin(ctx context.Context, name string) (model.PluginSettings, error) {
	if !model.KnownPlugin(name) {
		return model.PluginSettings{}, unknownPlugin(name)
	}
	p, ok, err := getJSON[model.PluginSettings](ctx, s.rdb, s.pluginKey(name))
	if err != nil {
		return p, err
	}
	if !ok {
		return DefaultPlugin(name), nil
	}
	return p, nil
}

// ListPlugins returns every plugin's settings, in the order bootenv runs
// them, then the sync settings.
func (s *Store) ListPlugins(ctx context.Context) ([]model.PluginSettings, error) {
	names := append(model.Plugins(), model.PluginSync)
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.pluginKey(n)
	}
	stored, err := mgetJSON[model.PluginSettings](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	byName := map[string]model.PluginSettings{}
	for _, p := range stored {
		byName[p.Name] = p
	}
	out := make([]model.PluginSettings, len(names))
	for i, n := range names {
		p, ok := byName[n]
		if !ok {
			p = DefaultPlugin(n)
		}
		out[i] = p
	}
	return out, nil
}

// PutPlugin stores a plugin's settings whole. ifMatch 0 sets them
// whatever they were; otherwise it must be the current revision (0 for a
// plugin never set cannot be asked for: send no If-Match).
func (s *Store) PutPlugin(ctx context.Context, a Actor, p model.PluginSettings, ifMatch int64) (model.PluginSettings, error) {
	if !model.KnownPlugin(p.Name) {
		return p, unknownPlugin(p.Name)
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	if len(p.Settings) == 0 {
		p.Settings = nil
	}
	key := s.pluginKey(p.Name)
	err := s.txn(ctx, []string{key}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		old, ok, err := getJSON[model.PluginSettings](ctx, tx, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			old = DefaultPlugin(p.Name)
		}
		if err := checkRevision("plugin", p.Name, old.Revision, ifMatch); err != nil {
			return nil, err
		}
		now := s.now()
		created := old.Created
		if !ok {
			created = now
		}
		p.Meta = model.Meta{Revision: old.Revision + 1, Created: created, Updated: now}
		ev := model.AuditEvent{Kind: "plugin", Method: "update", Refs: []string{"plugin/" + p.Name},
			Msg:    fmt.Sprintf("set plugin %s (%s)", p.Name, onOff(p.Enabled)),
			Extras: map[string]string{"changed": strings.Join(changedKeys(old, p), ",")}}
		return func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, mustJSON(p), 0)
			s.addAudit(ctx, pipe, a, ev)
			return nil
		}, nil
	})
	return p, err
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

// changedKeys names what differs between two versions of a plugin's
// settings: "enabled" and the keys added, removed or changed.
func changedKeys(old, p model.PluginSettings) []string {
	var out []string
	if old.Enabled != p.Enabled {
		out = append(out, "enabled")
	}
	keys := map[string]bool{}
	for k := range maps.Keys(old.Settings) {
		keys[k] = true
	}
	for k := range maps.Keys(p.Settings) {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		ov, had := old.Settings[k]
		nv, has := p.Settings[k]
		if had != has || ov != nv {
			out = append(out, "settings."+k)
		}
	}
	return out
}
