package model

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Plugins names the config plugins bootenv runs, in the order it runs
// them. PluginSync is not a plugin but keeps the sync policy's settings
// the same way (SyncPolicyFrom).
func Plugins() []string {
	return []string{"hostname", "hosts", "interfaces", "fstab", "limits", "systemd"}
}

// PluginSync names the settings that override DefaultSyncPolicy.
const PluginSync = "sync"

// Limits of plugin settings.
const (
	MaxPluginKeys  = 100
	MaxPluginValue = 4096
)

// PluginSettings are one plugin's cluster-wide settings: INI-like
// key=value pairs and whether nodes run it at all.
type PluginSettings struct {
	Name     string            `json:"name"`
	Enabled  bool              `json:"enabled"`
	Settings map[string]string `json:"settings,omitempty"`
	Meta
}

var pluginKeyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// KnownPlugin reports whether name is a plugin or the sync settings.
func KnownPlugin(name string) bool { return name == PluginSync || slices.Contains(Plugins(), name) }

// Validate checks a plugin's settings: a known name, keys of lower-case
// letters, digits, '.', '_' or '-', and one-line values.
func (s *PluginSettings) Validate() error {
	var p problems
	if !KnownPlugin(s.Name) {
		p.add("name", "%q is not a plugin (want %s or %s)", s.Name, strings.Join(Plugins(), ", "), PluginSync)
	}
	if len(s.Settings) > MaxPluginKeys {
		p.add("settings", "has more than %d keys", MaxPluginKeys)
	}
	for k, v := range s.Settings {
		if !pluginKeyRe.MatchString(k) {
			p.add("settings", "key %q: want 1-64 lower-case letters, digits, '.', '_' or '-'", CleanText(k, 80))
		}
		switch {
		case len(v) > MaxPluginValue:
			p.add("settings."+k, "is longer than %d bytes", MaxPluginValue)
		case !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n\x00"):
			p.add("settings."+k, "must be one line of UTF-8 text")
		}
	}
	if s.Name == PluginSync {
		if _, err := SyncPolicyFrom(s.Settings); err != nil {
			p.add("settings", "%v", err)
		}
	}
	return p.err()
}

// DefaultSyncPolicy is how a node's root is compared with its image unless
// the sync settings say otherwise: hash only where metadata cannot tell,
// keep logs, home directories and the host's SSH keys, check every boot.
func DefaultSyncPolicy() SyncPolicy {
	return SyncPolicy{
		Verify:         "unsure",
		Preserve:       []string{"/var/log/**", "/home/**", "/etc/ssh/ssh_host_*"},
		CheckEveryBoot: true,
	}
}

// SyncPolicyFrom is DefaultSyncPolicy overridden by the sync settings:
// verify (unsure, never, always), preserve (comma-separated absolute
// globs; replaces the default list, empty keeps nothing) and
// check_every_boot (true or false).
func SyncPolicyFrom(settings map[string]string) (SyncPolicy, error) {
	pol := DefaultSyncPolicy()
	for k, v := range settings {
		v = strings.TrimSpace(v)
		switch k {
		case "verify":
			switch v {
			case "unsure", "never", "always":
				pol.Verify = v
			default:
				return pol, fieldErr("verify", "%q is not unsure, never or always", v)
			}
		case "preserve":
			pol.Preserve = nil
			for g := range strings.SplitSeq(v, ",") {
				if g = strings.TrimSpace(g); g == "" {
					continue
				}
				if !strings.HasPrefix(g, "/") {
					return pol, fieldErr("preserve", "%q is not an absolute path glob", g)
				}
				pol.Preserve = append(pol.Preserve, g)
			}
		case "check_every_boot":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return pol, fieldErr("check_every_boot", "%q is not true or false", v)
			}
			pol.CheckEveryBoot = b
		default:
			return pol, fieldErr(k, "is not a sync setting (want verify, preserve or check_every_boot)")
		}
	}
	return pol, nil
}

func fieldErr(field, format string, args ...any) error {
	var p problems
	p.add(field, format, args...)
	return p.err()
}

// ConsoleChunk is one answer of GET /api/v1/boot/sessions/{id}/console:
// the console output after a cursor.
type ConsoleChunk struct {
	Session string `json:"session"`
	// Data is the output after the cursor that was asked for (base64 in
	// JSON: a console carries any bytes).
	Data []byte `json:"data"`
	// Next is the cursor to ask with for what follows.
	Next string `json:"next"`
	// Ended is true once the session is done or failed and its console
	// archived: nothing more will come unless the node boots on.
	Ended bool `json:"ended"`
}
