package plugins

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Systemd enables and disables units in the image the way systemctl
// enable and disable do, without running systemd: it reads the unit's
// [Install] section and makes (or removes) the symlinks in
// /etc/systemd/system/<target>.wants/ and .requires/ and the aliases.
//
// Settings: enable and disable, comma-separated unit names
// (chronyd.service, fstrim.timer, getty@ttyS0.service).
type Systemd struct{}

// Name is "systemd".
func (Systemd) Name() string { return "systemd" }

// unitDirs are where units are looked up, most specific first.
func unitDirs() []string {
	return []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
}

// InstallInfo is a unit's [Install] section.
type InstallInfo struct {
	WantedBy, RequiredBy, Alias, Also []string
}

// ParseInstall reads the [Install] section of a unit file.
func ParseInstall(text string) InstallInfo {
	var in InstallInfo
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if l[0] == '[' {
			section = l
			continue
		}
		if section != "[Install]" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		vals := strings.Fields(v)
		switch strings.TrimSpace(k) {
		case "WantedBy":
			in.WantedBy = append(in.WantedBy, vals...)
		case "RequiredBy":
			in.RequiredBy = append(in.RequiredBy, vals...)
		case "Alias":
			in.Alias = append(in.Alias, vals...)
		case "Also":
			in.Also = append(in.Also, vals...)
		}
	}
	return in
}

// Link is a symlink systemctl enable would make: Path -> Target.
type Link struct{ Path, Target string }

// EnableLinks returns the links that enable unit, whose file is at file
// (absolute in the root) and whose [Install] section is in. For an
// instance of a template (getty@ttyS0.service) the links carry the
// instance's name and point at the template.
func EnableLinks(unit, file string, in InstallInfo) []Link {
	var out []Link
	for _, t := range in.WantedBy {
		out = append(out, Link{Path: path.Join("/etc/systemd/system", t+".wants", unit), Target: file})
	}
	for _, t := range in.RequiredBy {
		out = append(out, Link{Path: path.Join("/etc/systemd/system", t+".requires", unit), Target: file})
	}
	for _, a := range in.Alias {
		out = append(out, Link{Path: path.Join("/etc/systemd/system", a), Target: file})
	}
	return out
}

// templateOf returns foo@.service for foo@bar.service, "" for others.
func templateOf(unit string) string {
	at := strings.IndexByte(unit, '@')
	dot := strings.LastIndexByte(unit, '.')
	if at < 0 || dot < at || at+1 == dot {
		return ""
	}
	return unit[:at+1] + unit[dot:]
}

// findUnit returns the unit's file in the root and its text.
func findUnit(r *Root, unit string) (string, string, error) {
	names := []string{unit}
	if t := templateOf(unit); t != "" {
		names = append(names, t)
	}
	for _, n := range names {
		for _, d := range unitDirs() {
			p := path.Join(d, n)
			if target, ok := r.Readlink(p); ok && target == "/dev/null" {
				return "", "", fmt.Errorf("unit %s is masked (%s -> /dev/null)", unit, p)
			}
			if !r.Exists(p) {
				continue
			}
			b, err := r.ReadFile(p)
			if err != nil {
				return "", "", err
			}
			return p, string(b), nil
		}
	}
	return "", "", fmt.Errorf("unit %s: no such unit file in %s", unit, strings.Join(unitDirs(), ", "))
}

func validUnit(u string) bool {
	return u != "" && !strings.ContainsAny(u, "/\\") && u != "." && u != ".." && strings.Contains(u, ".")
}

// enableUnits enables units (and what their Also= names).
func enableUnits(r *Root, units []string) error {
	seen := map[string]bool{}
	for len(units) > 0 {
		u := units[0]
		units = units[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		file, text, err := findUnit(r, u)
		if err != nil {
			return err
		}
		in := ParseInstall(text)
		for _, l := range EnableLinks(u, file, in) {
			if _, err := r.Symlink(l.Target, l.Path); err != nil {
				return err
			}
		}
		units = append(units, in.Also...)
	}
	return nil
}

// disableUnit removes every link to unit in /etc/systemd/system's .wants
// and .requires directories and its aliases there.
func disableUnit(r *Root, unit string) error {
	dirs, err := r.ReadDir("/etc/systemd/system")
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !strings.HasSuffix(d, ".wants") && !strings.HasSuffix(d, ".requires") {
			continue
		}
		p := path.Join("/etc/systemd/system", d, unit)
		if _, ok := r.Readlink(p); ok {
			if _, err := r.Remove(p); err != nil {
				return err
			}
		}
	}
	if file, text, err := findUnit(r, unit); err == nil {
		for _, a := range ParseInstall(text).Alias {
			p := path.Join("/etc/systemd/system", a)
			if target, ok := r.Readlink(p); ok && target == file {
				if _, err := r.Remove(p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Apply enables and disables the units of the settings.
func (Systemd) Apply(_ context.Context, root string, _ model.NodePlan, settings map[string]string) ([]string, error) {
	enable, disable := splitList(settings["enable"]), splitList(settings["disable"])
	for _, u := range append(slices.Clone(enable), disable...) {
		if !validUnit(u) {
			return nil, fmt.Errorf("systemd: %q is not a unit name", u)
		}
	}
	for _, u := range enable {
		if slices.Contains(disable, u) {
			return nil, fmt.Errorf("systemd: %s is both enabled and disabled", u)
		}
	}
	r := NewRoot(root)
	for _, u := range disable {
		if err := disableUnit(r, u); err != nil {
			return nil, fmt.Errorf("systemd: disable %s: %w", u, err)
		}
	}
	if err := enableUnits(r, enable); err != nil {
		return nil, fmt.Errorf("systemd: enable: %w", err)
	}
	return r.Changed(), nil
}
