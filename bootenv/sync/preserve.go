package sync

import (
	"fmt"
	"path"
	"strings"
)

// preserver matches manifest paths against Policy.Preserve globs, written
// as absolute paths ("/var/log/**", "/etc/ssh/ssh_host_*"): "*", "?" and
// "[...]" match within one path element as in path.Match, and an element
// "**" matches any number of elements, none included.
type preserver struct {
	globs [][]string // split into elements
}

func newPreserver(globs []string) (*preserver, error) {
	p := &preserver{}
	for _, g := range globs {
		if !strings.HasPrefix(g, "/") {
			return nil, fmt.Errorf("preserve %q: want an absolute path such as /var/log/**", g)
		}
		elems := strings.Split(strings.Trim(g, "/"), "/")
		for _, e := range elems {
			if _, err := path.Match(e, ""); err != nil {
				return nil, fmt.Errorf("preserve %q: %w", g, err)
			}
		}
		p.globs = append(p.globs, elems)
	}
	return p, nil
}

// keep reports whether the manifest path p is preserved.
func (p *preserver) keep(mp string) bool {
	elems := strings.Split(mp, "/")
	for _, g := range p.globs {
		if matchElems(g, elems, false) {
			return true
		}
	}
	return false
}

// mayKeepBelow reports whether something below the directory mp could be
// preserved, so an extra directory is walked instead of removed whole.
func (p *preserver) mayKeepBelow(mp string) bool {
	elems := strings.Split(mp, "/")
	for _, g := range p.globs {
		if matchElems(g, elems, true) {
			return true
		}
	}
	return false
}

// matchElems matches path elements against glob elements; with prefix, it
// reports whether some longer path starting with elems could match.
func matchElems(g, elems []string, prefix bool) bool {
	if len(elems) == 0 {
		if prefix {
			return len(g) > 0
		}
		for _, e := range g {
			if e != "**" {
				return false
			}
		}
		return true
	}
	if len(g) == 0 {
		return false
	}
	if g[0] == "**" {
		return matchElems(g[1:], elems, prefix) || matchElems(g, elems[1:], prefix)
	}
	if ok, _ := path.Match(g[0], elems[0]); !ok {
		return false
	}
	return matchElems(g[1:], elems[1:], prefix)
}
