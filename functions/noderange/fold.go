package noderange

import (
	"slices"
	"strconv"
	"strings"
)

// Fold returns a short noderange that expands to exactly the given names,
// for display: node001,node002,node003,gpu1 folds to gpu1,node[001-003].
// Names are grouped by what comes before and after their last number, and
// each group's numbers are written as ranges at the width they had, so
// node01 and node1 stay apart. Duplicates are dropped, and the output is
// the same whatever the order of names. Names that are not node names are
// written as given, so only node names round-trip through Expand.
func Fold(names []string) string {
	type number struct {
		foldKey
		text string
	}
	var plain []string
	var numbered []number
	padded := map[foldKey][]int{} // the padded widths seen for each key
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		prefix, digits, suffix := splitLastNumber(name)
		if digits == "" || len(digits) > maxDigits {
			plain = append(plain, name)
			continue
		}
		k := foldKey{prefix, suffix}
		numbered = append(numbered, number{k, digits})
		if isPadded(digits) && !slices.Contains(padded[k], len(digits)) {
			padded[k] = append(padded[k], len(digits))
		}
	}

	// An unpadded number at least as wide as a padded width reads the same
	// at that width, so it joins the widest such class: node[08-11], not
	// node[08-09,10-11].
	classes := map[foldClass][]int{}
	for _, n := range numbered {
		c := foldClass{foldKey: n.foldKey}
		if isPadded(n.text) {
			c.width = len(n.text)
		} else {
			for _, w := range padded[n.foldKey] {
				if w <= len(n.text) && w > c.width {
					c.width = w
				}
			}
		}
		v, _ := strconv.Atoi(n.text) // cannot fail: at most 9 digits
		classes[c] = append(classes[c], v)
	}

	type entry struct {
		foldClass
		text string
	}
	entries := make([]entry, 0, len(plain)+len(classes))
	for _, name := range plain {
		entries = append(entries, entry{foldClass{foldKey{prefix: name}, -1}, name})
	}
	for c, vs := range classes {
		entries = append(entries, entry{c, c.fold(vs)})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if d := compareNatural(a.prefix, b.prefix); d != 0 {
			return d
		}
		if d := compareNatural(a.suffix, b.suffix); d != 0 {
			return d
		}
		if a.width != b.width {
			return a.width - b.width
		}
		return strings.Compare(a.text, b.text)
	})
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.text)
	}
	return b.String()
}

// foldKey is what comes before and after a name's last number.
type foldKey struct{ prefix, suffix string }

// foldClass is the names that can share one bracket: same prefix and
// suffix, and every number written at width digits (0: unpadded).
type foldClass struct {
	foldKey
	width int
}

// fold writes the distinct numbers vs as prefix[runs]suffix, or as a plain
// name when there is only one.
func (c foldClass) fold(vs []int) string {
	slices.Sort(vs)
	var b []byte
	b = append(b, c.prefix...)
	if len(vs) == 1 {
		b = appendPadded(b, vs[0], c.width)
		return string(append(b, c.suffix...))
	}
	b = append(b, '[')
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPadded(b, vs[i], c.width)
		if j > i {
			b = append(b, '-')
			b = appendPadded(b, vs[j], c.width)
		}
		i = j + 1
	}
	b = append(b, ']')
	return string(append(b, c.suffix...))
}

// splitLastNumber splits name around its last run of digits.
func splitLastNumber(name string) (prefix, digits, suffix string) {
	end := len(name)
	for end > 0 && !isDigit(name[end-1]) {
		end--
	}
	start := end
	for start > 0 && isDigit(name[start-1]) {
		start--
	}
	return name[:start], name[start:end], name[end:]
}

// isPadded reports whether digits has a leading zero that sets a width.
func isPadded(digits string) bool {
	return len(digits) > 1 && digits[0] == '0'
}

// compareNatural orders strings with runs of digits compared by value, so
// rack2 sorts before rack10. Strings that differ only in leading zeros are
// ordered bytewise.
func compareNatural(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if !isDigit(a[i]) || !isDigit(b[j]) {
			if a[i] != b[j] {
				return int(a[i]) - int(b[j])
			}
			i++
			j++
			continue
		}
		si, sj := i, j
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		x := strings.TrimLeft(a[si:i], "0")
		y := strings.TrimLeft(b[sj:j], "0")
		if len(x) != len(y) {
			return len(x) - len(y)
		}
		if d := strings.Compare(x, y); d != 0 {
			return d
		}
	}
	switch {
	case i < len(a):
		return 1
	case j < len(b):
		return -1
	}
	return strings.Compare(a, b)
}
