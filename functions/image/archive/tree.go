package archive

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// node is one path of an image being assembled in memory. The names of one
// file (hardlinks) share one *manifest.Entry, so a later change of the inode
// through any name is seen through all, and the manifest gives the content to
// the first name in manifest order.
type node struct {
	e       *manifest.Entry  // nil only for a pending hardlink
	kids    map[string]*node // set exactly for directories
	implied bool             // a directory only implied by the paths beneath it
	link    string           // pending hardlink: the target, a path in a lower layer
	src     string           // the tar entry's name, for errors
}

func (n *node) isDir() bool { return n.kids != nil }

func newDir(e *manifest.Entry) *node { return &node{e: e, kids: map[string]*node{}} }

// impliedDir is what a directory gets when no entry gives its metadata.
func impliedDir() *node {
	n := newDir(&manifest.Entry{Type: manifest.TypeDir, Mode: 0o755})
	n.implied = true
	return n
}

// clone copies n and its subtree; the names of one file keep sharing its
// entry.
func (n *node) clone() *node {
	c := *n
	if n.kids != nil {
		c.kids = make(map[string]*node, len(n.kids))
		for name, k := range n.kids {
			c.kids[name] = k.clone()
		}
	}
	return &c
}

// tree is an image, or one layer of it, in memory.
type tree struct {
	root *node
}

func newTree() *tree { return &tree{root: impliedDir()} }

// lookup returns the node at the manifest path p, or nil.
func (t *tree) lookup(p string) *node {
	n := t.root
	if p == "." {
		return n
	}
	for elem := range strings.SplitSeq(p, "/") {
		if !n.isDir() {
			return nil
		}
		if n = n.kids[elem]; n == nil {
			return nil
		}
	}
	return n
}

// parent returns the directory that holds p, creating implied directories
// on the way, and p's last element. A parent that is not a directory is an
// error: tarcheck refuses that within one archive, so here it means a lower
// layer disagrees.
func (t *tree) parent(p string) (*node, string, error) {
	dir, name := ".", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, name = p[:i], p[i+1:]
	}
	n := t.root
	if dir == "." {
		return n, name, nil
	}
	walked := 0
	for elem := range strings.SplitSeq(dir, "/") {
		walked += len(elem) + 1
		k := n.kids[elem]
		switch {
		case k == nil:
			k = impliedDir()
			n.kids[elem] = k
		case !k.isDir():
			return nil, "", fmt.Errorf("%q is a %s, not a directory", p[:walked-1], k.typ())
		}
		n = k
	}
	return n, name, nil
}

func (n *node) typ() manifest.Type {
	if n.e == nil {
		return manifest.TypeHardlink
	}
	return n.e.Type
}

// put sets the node at p, which is not the root. A directory over a
// directory keeps the children and takes the new metadata; anything else
// replaces what was there with its subtree.
func (t *tree) put(p string, n *node) error {
	dir, name, err := t.parent(p)
	if err != nil {
		return err
	}
	if old := dir.kids[name]; old != nil && old.isDir() && n.isDir() {
		old.e, old.implied, old.src = n.e, n.implied, n.src
		return nil
	}
	dir.kids[name] = n
	return nil
}

// setRoot gives the root directory the metadata of e.
func (t *tree) setRoot(e *manifest.Entry, src string) {
	t.root.e, t.root.implied, t.root.src = e, false, src
}

// remove deletes p and everything beneath it; a path that is not there is
// no error, as an OCI whiteout may name a path no lower layer has.
func (t *tree) remove(p string) {
	dir, name := ".", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, name = p[:i], p[i+1:]
	}
	if d := t.lookup(dir); d != nil && d.isDir() {
		delete(d.kids, name)
	}
}

// manifest returns the tree as a sorted, validated manifest. Names sharing
// one file become a file entry at the first of them in manifest order and
// hardlink entries at the others.
func (t *tree) manifest() (*manifest.Manifest, error) {
	m := &manifest.Manifest{Version: manifest.FormatVersion}
	type named struct {
		path string
		n    *node
	}
	var all []named
	var walk func(p string, n *node)
	walk = func(p string, n *node) {
		all = append(all, named{p, n})
		for _, name := range slices.Sorted(maps.Keys(n.kids)) {
			q := name
			if p != "." {
				q = p + "/" + name
			}
			walk(q, n.kids[name])
		}
	}
	walk(".", t.root)
	slices.SortFunc(all, func(a, b named) int { return manifest.ComparePaths(a.path, b.path) })
	first := make(map[*manifest.Entry]string) // file → its first name
	m.Entries = make([]manifest.Entry, 0, len(all))
	for _, a := range all {
		if a.n.e == nil {
			return nil, fmt.Errorf("%q: hardlink to %q was never resolved", a.path, a.n.link)
		}
		if a.n.e.Type == manifest.TypeFile {
			if target, ok := first[a.n.e]; ok {
				m.Entries = append(m.Entries, manifest.Entry{Path: a.path, Type: manifest.TypeHardlink, LinkTarget: target})
				continue
			}
			first[a.n.e] = a.path
		}
		e := *a.n.e
		e.Path = a.path
		m.Entries = append(m.Entries, e)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
