package noderange

import (
	"fmt"
	"strconv"
)

// DefaultLimit is how many names Expand generates at most.
const DefaultLimit = 100000

// maxLimit caps any limit so that counting never overflows an int, even on
// 32-bit platforms.
const maxLimit = 1 << 30

// Resolver returns the members of a group, for "@group" terms. Members must
// be node names; a group that does not exist is an error.
type Resolver func(group string) ([]string, error)

// LimitError reports a noderange that would generate more names than
// allowed. Pos is the byte offset of the term that crossed the limit.
type LimitError struct {
	Input string
	Pos   int
	Limit int
}

// Error names the input, the term and the limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("noderange %s: at %d: expands to more than %d names", excerpt(e.Input, e.Pos), e.Pos, e.Limit)
}

// Expand parses s and expands it with DefaultLimit.
func Expand(s string, resolve Resolver) ([]string, error) {
	r, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return r.Expand(resolve)
}

// Expand returns the node names r stands for, in order of first
// appearance, with exclusions applied left to right. It generates at most
// DefaultLimit names; resolve may be nil when r names no groups.
func (r Range) Expand(resolve Resolver) ([]string, error) {
	return r.ExpandLimit(resolve, DefaultLimit)
}

// ExpandLimit is Expand with a different limit. The limit counts every name
// the terms generate, including duplicates, names an exclusion removes and
// group members, so it bounds the work as well as the result. Ranges are
// counted before anything is resolved or generated. A limit of zero or less
// means DefaultLimit; limits above 1<<30 are treated as 1<<30.
func (r Range) ExpandLimit(resolve Resolver, limit int) ([]string, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, maxLimit)

	total, added := 0, 0
	for _, t := range r.terms {
		if t.group != "" {
			continue
		}
		n := t.size(limit - total)
		total += n
		if total > limit {
			return nil, &LimitError{Input: r.src, Pos: t.pos, Limit: limit}
		}
		if !t.exclude {
			added += n
		}
	}

	set := newOrderedSet(added)
	var groups map[string][]string // resolved once per expansion
	buf := make([]byte, 0, 64)
	for _, t := range r.terms {
		if t.group == "" {
			if t.exclude {
				t.each(buf, 0, set.removeBytes)
			} else {
				t.each(buf, 0, set.addBytes)
			}
			continue
		}
		members, ok := groups[t.group]
		if !ok {
			var err error
			members, err = r.resolve(resolve, t)
			if err != nil {
				return nil, err
			}
			if groups == nil {
				groups = make(map[string][]string)
			}
			groups[t.group] = members
		}
		total += len(members)
		if total > limit {
			return nil, &LimitError{Input: r.src, Pos: t.pos, Limit: limit}
		}
		for _, m := range members {
			if t.exclude {
				set.remove(m)
			} else {
				set.add(m)
			}
		}
	}
	return set.list(), nil
}

// resolve looks up the members of t's group and checks they are node
// names, so what Expand returns is always something Fold can fold.
func (r Range) resolve(resolve Resolver, t term) ([]string, error) {
	if resolve == nil {
		return nil, fmt.Errorf("noderange %s: at %d: group %q needs a group resolver, and none was given",
			excerpt(r.src, t.pos), t.pos, t.group)
	}
	members, err := resolve(t.group)
	if err != nil {
		return nil, fmt.Errorf("noderange %s: at %d: resolve group %q: %w", excerpt(r.src, t.pos), t.pos, t.group, err)
	}
	for _, m := range members {
		if !validName(m) {
			return nil, fmt.Errorf("noderange %s: at %d: group %q has member %q, which is not a node name",
				excerpt(r.src, t.pos), t.pos, t.group, m)
		}
	}
	return members, nil
}

// size is how many names t generates, or limit+1 if that is more than
// limit, so the product of big sets is never computed in full.
func (t term) size(limit int) int {
	n := 1
	for _, p := range t.parts {
		if p.items == nil {
			continue
		}
		c := 0
		for _, it := range p.items {
			c += it.hi - it.lo + 1
			if c > limit {
				return limit + 1
			}
		}
		if n > limit/c {
			return limit + 1
		}
		n *= c
	}
	if n > limit {
		return limit + 1
	}
	return n
}

// each calls yield with every name t generates, leftmost set slowest.
// buf is scratch space; yield must not keep it.
func (t term) each(buf []byte, i int, yield func([]byte)) {
	if i == len(t.parts) {
		yield(buf)
		return
	}
	p := t.parts[i]
	if p.items == nil {
		t.each(append(buf, p.lit...), i+1, yield)
		return
	}
	for _, it := range p.items {
		for v := it.lo; v <= it.hi; v++ {
			t.each(appendPadded(buf, v, it.width), i+1, yield)
		}
	}
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(buf []byte, v, width int) []byte {
	digits := 1
	for x := v; x >= 10; x /= 10 {
		digits++
	}
	for ; digits < width; digits++ {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, int64(v), 10)
}

// orderedSet keeps names in order of first appearance. A removed name
// leaves a hole ("" is never a node name) that list closes.
type orderedSet struct {
	names []string
	index map[string]int
}

func newOrderedSet(n int) *orderedSet {
	return &orderedSet{names: make([]string, 0, n), index: make(map[string]int, n)}
}

func (s *orderedSet) addBytes(b []byte) {
	if _, ok := s.index[string(b)]; ok { // no allocation for the lookup
		return
	}
	s.add(string(b))
}

func (s *orderedSet) add(name string) {
	if _, ok := s.index[name]; ok {
		return
	}
	s.index[name] = len(s.names)
	s.names = append(s.names, name)
}

func (s *orderedSet) removeBytes(b []byte) {
	if i, ok := s.index[string(b)]; ok {
		s.drop(i)
	}
}

func (s *orderedSet) remove(name string) {
	if i, ok := s.index[name]; ok {
		s.drop(i)
	}
}

func (s *orderedSet) drop(i int) {
	delete(s.index, s.names[i])
	s.names[i] = ""
}

func (s *orderedSet) list() []string {
	out := s.names[:0]
	for _, n := range s.names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
