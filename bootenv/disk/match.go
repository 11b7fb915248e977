package disk

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Match assigns each disk of the layout (disk0…diskN) a detected disk by
// name. The most specific selectors go first (serial, then by-path, then
// the rest). Disks whose selectors are identical are interchangeable, so
// k of them take the k candidates in name order; any other choice between
// candidates is ambiguous and refused. A disk nothing fits is refused with
// what was found and why each one does not fit. Disks the layout does not
// name are left out.
func Match(l *model.Layout, found []Detected) (map[string]string, error) {
	type group struct {
		sel   model.DiskSelector
		names []string
	}
	var groups []*group
	for _, d := range l.Disks {
		i := slices.IndexFunc(groups, func(g *group) bool { return sameSelector(g.sel, d.Select) })
		if i < 0 {
			groups = append(groups, &group{sel: d.Select})
			i = len(groups) - 1
		}
		groups[i].names = append(groups[i].names, d.Name)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return cmp.Compare(specificity(b.sel), specificity(a.sel)) })
	taken := map[string]string{} // detected name → layout disk
	out := map[string]string{}
	for _, g := range groups {
		var cands []Detected
		var reasons []string
		for _, d := range found {
			if by, ok := taken[d.Name]; ok {
				reasons = append(reasons, fmt.Sprintf("%s %s (taken by %s)", d.Name, model.Bytes(d.Size), by))
				continue
			}
			if why := mismatch(g.sel, d); why != "" {
				reasons = append(reasons, fmt.Sprintf("%s %s (%s)", d.Name, model.Bytes(d.Size), why))
				continue
			}
			cands = append(cands, d)
		}
		slices.SortFunc(cands, func(a, b Detected) int { return naturalCompare(a.Name, b.Name) })
		who := strings.Join(g.names, " and ")
		switch {
		case len(cands) < len(g.names):
			for _, c := range cands {
				reasons = append(reasons, fmt.Sprintf("%s %s (fits, but %d disks are wanted)", c.Name, model.Bytes(c.Size), len(g.names)))
			}
			if len(found) == 0 {
				reasons = append(reasons, "no disks at all")
			}
			return nil, fmt.Errorf("%s %s %s; found %s", who, wantVerb(len(g.names)), describe(g.sel), strings.Join(reasons, ", "))
		case len(cands) > len(g.names):
			var names []string
			for _, c := range cands {
				names = append(names, fmt.Sprintf("%s %s", c.Name, model.Bytes(c.Size)))
			}
			return nil, fmt.Errorf("%s %s %s; %d disks fit (%s): ambiguous, pin the disk by serial or path",
				who, wantVerb(len(g.names)), describe(g.sel), len(cands), strings.Join(names, ", "))
		}
		for i, name := range g.names {
			out[name] = cands[i].Name
			taken[cands[i].Name] = name
		}
	}
	return out, nil
}

func wantVerb(n int) string {
	if n == 1 {
		return "wants"
	}
	return "want"
}

func sameSelector(a, b model.DiskSelector) bool {
	if (a.Size == nil) != (b.Size == nil) || a.Size != nil && *a.Size != *b.Size {
		return false
	}
	a.Size, b.Size = nil, nil
	return a == b
}

func specificity(s model.DiskSelector) int {
	n := 0
	if s.Serial != "" {
		n += 1000
	}
	if s.Path != "" {
		n += 100
	}
	for _, set := range []bool{s.Vendor != "", s.Model != "", s.Type != "", s.Size != nil} {
		if set {
			n++
		}
	}
	return n
}

// describe says what a selector wants: "an nvme of 960GB ± 5%".
func describe(s model.DiskSelector) string {
	var b strings.Builder
	switch {
	case s.Type == model.DiskNVMe:
		b.WriteString("an nvme")
	case s.Type != "":
		b.WriteString("an " + string(s.Type))
	default:
		b.WriteString("a disk")
	}
	if s.Vendor != "" || s.Model != "" {
		fmt.Fprintf(&b, " %s", strings.TrimSpace(s.Vendor+" "+s.Model))
	}
	if s.Size != nil {
		fmt.Fprintf(&b, " of %s", s.Size)
	}
	if s.Serial != "" {
		fmt.Fprintf(&b, " with serial %s", s.Serial)
	}
	if s.Path != "" {
		fmt.Fprintf(&b, " at %s", s.Path)
	}
	return b.String()
}

// mismatch says why d does not fit s, or "" if it fits.
func mismatch(s model.DiskSelector, d Detected) string {
	var why []string
	if s.Serial != "" && s.Serial != d.Serial {
		why = append(why, fmt.Sprintf("serial %s", orNone(d.Serial)))
	}
	if s.Path != "" && !globMatch(strings.TrimPrefix(s.Path, "/dev/disk/by-path/"), d.ByPath, false) {
		why = append(why, fmt.Sprintf("path %s", orNone(d.ByPath)))
	}
	if s.Type != "" && d.Type() != s.Type {
		why = append(why, fmt.Sprintf("%s, not %s", d.Type(), s.Type))
	}
	if s.Vendor != "" && !globMatch(s.Vendor, d.Vendor, true) {
		why = append(why, fmt.Sprintf("vendor %s", orNone(d.Vendor)))
	}
	if s.Model != "" && !globMatch(s.Model, d.Model, true) {
		why = append(why, fmt.Sprintf("model %s", orNone(d.Model)))
	}
	if s.Size != nil && !s.Size.Contains(d.Size) {
		why = append(why, "out of tolerance")
	}
	return strings.Join(why, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func globMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(strings.TrimSpace(pattern)), strings.ToLower(strings.TrimSpace(s))
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// naturalCompare orders nvme2n1 before nvme10n1.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			if c := cmp.Compare(len(strings.TrimLeft(da, "0")), len(strings.TrimLeft(db, "0"))); c != 0 {
				return c
			}
			if c := strings.Compare(strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
