package manifest

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
)

// What is a set of attributes that differ between two versions of a path.
type What uint16

// Attributes Diff compares.
const (
	ChangedType    What = 1 << iota // entry type
	ChangedContent                  // size or digest (chunking alone is not a change)
	ChangedMode                     // permission, setuid, setgid, sticky bits
	ChangedOwner                    // uid or gid
	ChangedMTime                    // modification time
	ChangedXattrs                   // any extended attribute
	ChangedLink                     // symlink or hardlink target
	ChangedDevice                   // device major or minor
)

func (w What) String() string {
	names := [...]string{"type", "content", "mode", "owner", "mtime", "xattrs", "link", "device"}
	var parts []string
	for i, n := range names {
		if w&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, ",")
}

// Change is one path present in both versions with different attributes.
type Change struct {
	Path string
	What What
}

// Changes is the difference from one manifest to another, each list in
// manifest order.
type Changes struct {
	Added   []string
	Changed []Change
	Removed []string
}

// Empty reports whether the manifests were equal.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Changed) == 0 && len(c.Removed) == 0
}

// Summary returns counts such as "+12 ~3 -1", for audit messages.
func (c Changes) Summary() string {
	return fmt.Sprintf("+%d ~%d -%d", len(c.Added), len(c.Changed), len(c.Removed))
}

// String lists the changes one path per line: "+ path", "~ path (what)", "- path".
func (c Changes) String() string {
	var b strings.Builder
	for _, p := range c.Added {
		fmt.Fprintf(&b, "+ %q\n", p)
	}
	for _, ch := range c.Changed {
		fmt.Fprintf(&b, "~ %q (%s)\n", ch.Path, ch.What)
	}
	for _, p := range c.Removed {
		fmt.Fprintf(&b, "- %q\n", p)
	}
	return b.String()
}

// Diff returns what changed from a to b. Both must be sorted (valid)
// manifests; Diff only reads them.
func Diff(a, b *Manifest) Changes {
	var c Changes
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		var cmp int
		switch {
		case i == len(a.Entries):
			cmp = 1
		case j == len(b.Entries):
			cmp = -1
		default:
			cmp = ComparePaths(a.Entries[i].Path, b.Entries[j].Path)
		}
		switch {
		case cmp < 0:
			c.Removed = append(c.Removed, a.Entries[i].Path)
			i++
		case cmp > 0:
			c.Added = append(c.Added, b.Entries[j].Path)
			j++
		default:
			if w := compare(&a.Entries[i], &b.Entries[j]); w != 0 {
				c.Changed = append(c.Changed, Change{Path: a.Entries[i].Path, What: w})
			}
			i++
			j++
		}
	}
	return c
}

func compare(x, y *Entry) What {
	var w What
	if x.Type != y.Type {
		w |= ChangedType
	}
	if x.Size != y.Size || x.Digest != y.Digest {
		w |= ChangedContent
	}
	if x.Mode != y.Mode {
		w |= ChangedMode
	}
	if x.UID != y.UID || x.GID != y.GID {
		w |= ChangedOwner
	}
	if x.MTime != y.MTime {
		w |= ChangedMTime
	}
	if !maps.EqualFunc(x.Xattrs, y.Xattrs, bytes.Equal) {
		w |= ChangedXattrs
	}
	if x.LinkTarget != y.LinkTarget {
		w |= ChangedLink
	}
	if x.DevMajor != y.DevMajor || x.DevMinor != y.DevMinor {
		w |= ChangedDevice
	}
	return w
}
