package plugins

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// LimitsFile is the pam_limits drop-in the limits plugin owns.
const LimitsFile = "/etc/security/limits.d/90-herd.conf"

// Limits writes resource limits for every user into LimitsFile. Each
// setting is an item of limits.conf(5) with its value: "memlock" =
// "unlimited" sets both the soft and the hard limit, "soft.nofile" or
// "hard.nofile" just one. An optional "domain" setting replaces "*" (for
// example "@users"). No limit settings removes the file.
type Limits struct{}

// Name is "limits".
func (Limits) Name() string { return "limits" }

// limitItems are the items pam_limits knows.
func limitItems() []string {
	return []string{"core", "data", "fsize", "memlock", "nofile", "rss", "stack", "cpu", "nproc",
		"as", "maxlogins", "maxsyslogins", "priority", "locks", "sigpending", "msgqueue", "nice", "rtprio", "chroot"}
}

// LimitsText renders the file, "" when there is nothing to limit.
func LimitsText(settings map[string]string) (string, error) {
	domain := "*"
	if d := strings.TrimSpace(settings["domain"]); d != "" {
		if strings.ContainsAny(d, " \t") {
			return "", fmt.Errorf("limits: domain %q has blanks", d)
		}
		domain = d
	}
	var lines []string
	for k, v := range settings {
		if k == "domain" {
			continue
		}
		kinds, item := []string{"soft", "hard"}, k
		if kind, it, ok := strings.Cut(k, "."); ok {
			if kind != "soft" && kind != "hard" {
				return "", fmt.Errorf("limits: %q: want item, soft.item or hard.item", k)
			}
			kinds, item = []string{kind}, it
		}
		if !slices.Contains(limitItems(), item) {
			return "", fmt.Errorf("limits: %q is not a limits.conf item (want one of %s)", item, strings.Join(limitItems(), ", "))
		}
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsAny(v, " \t") {
			return "", fmt.Errorf("limits: %s: value %q must be one word", k, v)
		}
		for _, kind := range kinds {
			lines = append(lines, fmt.Sprintf("%s\t%s\t%s\t%s", domain, kind, item, v))
		}
	}
	if len(lines) == 0 {
		return "", nil
	}
	// Settings are a map: sort so the file, and whether it changes, does
	// not depend on iteration order.
	slices.Sort(lines)
	return "# Written by herd on every boot (plugin limits).\n" + strings.Join(lines, "\n") + "\n", nil
}

// Apply writes or removes LimitsFile.
func (Limits) Apply(_ context.Context, root string, _ model.NodePlan, settings map[string]string) ([]string, error) {
	text, err := LimitsText(settings)
	if err != nil {
		return nil, err
	}
	r := NewRoot(root)
	if text == "" {
		_, err = r.Remove(LimitsFile)
	} else {
		_, err = r.WriteFile(LimitsFile, []byte(text), 0o644)
	}
	if err != nil {
		return nil, err
	}
	return r.Changed(), nil
}
