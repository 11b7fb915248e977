// Package plugins holds bootenv's config plugins: small programs that make
// files of the new root say what herd says about the node (its name, the
// cluster's hosts, its network, mounts, limits, systemd units). Each
// plugin writes through Root, so a file is written only when its content
// would change and every run reports exactly what it changed; a second
// run on the same root changes nothing.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Plugin is one config plugin. Apply makes the tree at root match plan
// and settings and returns the paths (absolute inside root) it changed.
type Plugin interface {
	Name() string
	Apply(ctx context.Context, root string, plan model.NodePlan, settings map[string]string) (changed []string, err error)
}

// ErrUnknownPlugin is returned for a plan naming a plugin bootenv lacks.
var ErrUnknownPlugin = errors.New("unknown plugin")

// Set returns the plugins bootenv ships, in the order model.Plugins names
// them. fstab says how the layout's devices are named in /etc/fstab.
func Set(fstab Fstab) []Plugin {
	return []Plugin{Hostname{}, Hosts{}, Interfaces{}, fstab, Limits{}, Systemd{}}
}

// Result is what one plugin did.
type Result struct {
	Plugin  string
	Changed []string
}

// Run applies the plugins plan turns on, in the order of set (not the
// order of plan.Plugins, so a node's result does not depend on how its
// settings were listed). A plugin the plan names but set lacks is an
// error before anything runs. The first failing plugin stops the run.
func Run(ctx context.Context, root string, plan model.NodePlan, set []Plugin, log *slog.Logger) ([]Result, error) {
	settings := map[string]map[string]string{}
	for _, pc := range plan.Plugins {
		if pc.Name == model.PluginSync {
			continue // the sync policy arrives in plan.Sync
		}
		if !slices.ContainsFunc(set, func(p Plugin) bool { return p.Name() == pc.Name }) {
			return nil, fmt.Errorf("run plugin %q: %w", pc.Name, ErrUnknownPlugin)
		}
		s := pc.Settings
		if s == nil {
			s = map[string]string{}
		}
		settings[pc.Name] = s
	}
	var out []Result
	for _, p := range set {
		s, ok := settings[p.Name()]
		if !ok {
			continue
		}
		changed, err := p.Apply(ctx, root, plan, s)
		if err != nil {
			return out, fmt.Errorf("run plugin %s: %w", p.Name(), err)
		}
		if log != nil {
			if len(changed) == 0 {
				log.Info("plugin", "name", p.Name(), "changed", "nothing")
			} else {
				log.Info("plugin", "name", p.Name(), "changed", strings.Join(changed, " "))
			}
		}
		out = append(out, Result{Plugin: p.Name(), Changed: changed})
	}
	return out, nil
}

// Markers around the lines herd keeps in a file it shares with the image
// (/etc/hosts, /etc/fstab): what lies outside them is the image's.
const (
	BeginMarker = "# BEGIN herd: managed by herd on every boot, edits are replaced"
	EndMarker   = "# END herd"
)

// ReplaceBlock returns text with the lines between BeginMarker and
// EndMarker replaced by block (which ends in a newline unless empty); with
// no markers yet, the block goes at the end. Pure, for all plugins that
// share a file.
func ReplaceBlock(text, block string) string {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var before, after []string
	state := 0 // 0 before the block, 1 in it, 2 after it
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case state == 0 && t == BeginMarker:
			state = 1
		case state == 1 && t == EndMarker:
			state = 2
		case state == 0:
			before = append(before, l)
		case state == 2:
			after = append(after, l)
		}
	}
	var b strings.Builder
	for _, l := range before {
		b.WriteString(l)
	}
	if s := b.String(); s != "" && !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	b.WriteString(BeginMarker + "\n")
	b.WriteString(block)
	b.WriteString(EndMarker + "\n")
	for _, l := range after {
		b.WriteString(l)
	}
	return b.String()
}

// splitList splits a comma- or space-separated setting.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}
