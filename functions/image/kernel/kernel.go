// Package kernel finds the Linux kernels in an image version and decides
// which of their modules a provisioner needs. It reads manifests only: no
// file content, no store, so every decision is a pure function and a table
// test.
//
// Paths are manifest paths: relative, "/"-separated, no leading slash
// ("boot/vmlinuz-6.1.0-28-amd64"). Symlinks are resolved inside the
// manifest, as the image's own root would resolve them, so a Debian image
// whose lib is a symlink to usr/lib finds its modules in usr/lib/modules.
package kernel

import (
	"cmp"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// maxHops bounds symlink resolution, as Linux's MAXSYMLINKS does.
const maxHops = 40

// Kernel is one kernel of an image version.
type Kernel struct {
	Version     string          // "6.1.0-28-amd64"
	Path        string          // where it was found: "boot/vmlinuz-<ver>" or "<modules dir>/vmlinuz"
	File        string          // the regular file Path resolves to through symlinks and hardlinks
	Digest      manifest.Digest // of File's content
	Size        uint64
	Initrd      string // the image's own initramfs (resolved), "" when it has none
	ModulesDir  string // lib/modules/<ver> resolved (often usr/lib/modules/<ver>), "" when none
	ModuleCount int    // module files (.ko, .ko.xz, .ko.zst, .ko.gz) under ModulesDir
}

// Find returns the kernels of m, newest version first (CompareVersions):
// every /boot/vmlinuz-<ver> that resolves to a regular file, and every
// /lib/modules/<ver>/vmlinuz or /usr/lib/modules/<ver>/vmlinuz of a
// version /boot does not have (distributions that keep the kernel beside
// its modules). Find(m)[0], if any, is the default kernel.
func Find(m *manifest.Manifest) []Kernel {
	t := NewTree(m)
	var ks []Kernel
	seen := map[string]bool{}
	add := func(ver, p string) {
		file, e, ok := t.Resolve(p)
		if !ok || e.Type != manifest.TypeFile || seen[ver] {
			return
		}
		seen[ver] = true
		k := Kernel{Version: ver, Path: p, File: file, Digest: e.Digest, Size: e.Size}
		for _, p := range []string{"boot/initrd.img-" + ver, "boot/initramfs-" + ver + ".img"} {
			if f, e, ok := t.Resolve(p); ok && e.Type == manifest.TypeFile {
				k.Initrd = f
				break
			}
		}
		k.ModulesDir = t.modulesDir(ver)
		if k.ModulesDir != "" {
			for _, e := range t.Under(k.ModulesDir) {
				if isModule(e.Path) && (e.Type == manifest.TypeFile || e.Type == manifest.TypeHardlink) {
					k.ModuleCount++
				}
			}
		}
		ks = append(ks, k)
	}
	if boot, e, ok := t.Resolve("boot"); ok && e.Type == manifest.TypeDir {
		for _, e := range t.Children(boot) {
			if ver, ok := strings.CutPrefix(path.Base(e.Path), "vmlinuz-"); ok && ver != "" {
				add(ver, e.Path)
			}
		}
	}
	for _, root := range t.modulesRoots() {
		for _, e := range t.Children(root) {
			add(path.Base(e.Path), e.Path+"/vmlinuz")
		}
	}
	slices.SortFunc(ks, func(a, b Kernel) int {
		return cmp.Or(-CompareVersions(a.Version, b.Version), strings.Compare(a.Path, b.Path))
	})
	return ks
}

// modulesRoots returns lib/modules and usr/lib/modules resolved, each once.
func (t *Tree) modulesRoots() []string {
	var roots []string
	for _, p := range []string{"lib/modules", "usr/lib/modules"} {
		if r, e, ok := t.Resolve(p); ok && e.Type == manifest.TypeDir && !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
	}
	return roots
}

func (t *Tree) modulesDir(ver string) string {
	for _, p := range []string{"lib/modules/" + ver, "usr/lib/modules/" + ver} {
		if r, e, ok := t.Resolve(p); ok && e.Type == manifest.TypeDir {
			return r
		}
	}
	return ""
}

// isModule reports whether p names a kernel module file.
func isModule(p string) bool {
	for _, s := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// Tree looks paths up in a manifest.
type Tree struct {
	m   *manifest.Manifest
	idx map[string]int
}

// NewTree indexes m, which must be sorted (valid).
func NewTree(m *manifest.Manifest) *Tree {
	t := &Tree{m: m, idx: make(map[string]int, len(m.Entries))}
	for i := range m.Entries {
		t.idx[m.Entries[i].Path] = i
	}
	return t
}

// Entry returns the entry at exactly p, without resolving anything.
func (t *Tree) Entry(p string) (*manifest.Entry, bool) {
	i, ok := t.idx[p]
	if !ok {
		return nil, false
	}
	return &t.m.Entries[i], true
}

// Resolve follows p through symlinks (absolute targets from the image's
// root, relative ones from the link's directory, ".." never above the
// root) and a final hardlink to the entry it names, and returns that
// entry's path. ok is false when a component is missing, a loop exceeds
// maxHops or a non-directory is walked through.
func (t *Tree) Resolve(p string) (string, *manifest.Entry, bool) {
	parts := strings.Split(p, "/")
	cur := "."
	hops := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		if dir, ok := t.Entry(cur); cur != "." && (!ok || dir.Type != manifest.TypeDir) {
			return "", nil, false
		}
		next := name
		if cur != "." {
			next = cur + "/" + name
		}
		e, ok := t.Entry(next)
		if !ok {
			return "", nil, false
		}
		if e.Type == manifest.TypeSymlink {
			if hops++; hops > maxHops {
				return "", nil, false
			}
			target := e.LinkTarget
			if strings.HasPrefix(target, "/") {
				cur = "."
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		cur = next
	}
	e, ok := t.Entry(cur)
	if !ok {
		return "", nil, false
	}
	if e.Type == manifest.TypeHardlink {
		cur = e.LinkTarget
		if e, ok = t.Entry(cur); !ok {
			return "", nil, false
		}
	}
	return cur, e, true
}

// Under returns the entries below directory dir at any depth, in manifest
// order.
func (t *Tree) Under(dir string) []manifest.Entry {
	if dir == "." {
		es := t.m.Entries
		if len(es) > 0 && es[0].Path == "." {
			es = es[1:]
		}
		return es
	}
	prefix := dir + "/"
	es := t.m.Entries
	i := sort.Search(len(es), func(i int) bool { return manifest.ComparePaths(es[i].Path, prefix) >= 0 })
	j := i
	for j < len(es) && strings.HasPrefix(es[j].Path, prefix) {
		j++
	}
	return es[i:j]
}

// Children returns the entries directly in directory dir.
func (t *Tree) Children(dir string) []manifest.Entry {
	var out []manifest.Entry
	for _, e := range t.Under(dir) {
		rel := e.Path
		if dir != "." {
			rel = e.Path[len(dir)+1:]
		}
		if !strings.Contains(rel, "/") {
			out = append(out, e)
		}
	}
	return out
}

// CompareVersions orders kernel versions as people read them: they split
// into runs of digits and runs of letters (everything else separates),
// digit runs compare as numbers and letter runs byte by byte, so
// 6.1.0-28-amd64 > 6.1.0-9-amd64 and 6.10 > 6.9. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	for {
		ta, ra := token(a)
		tb, rb := token(b)
		switch {
		case ta == "" || tb == "":
			return cmp.Compare(len(ta), len(tb))
		}
		da, db := isDigit(ta[0]), isDigit(tb[0])
		var c int
		switch {
		case da && db:
			na, nb := strings.TrimLeft(ta, "0"), strings.TrimLeft(tb, "0")
			c = cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb))
		case da:
			c = 1 // a number is newer than a word in its place: 6.1.0-28 over 6.1.0-rc7
		case db:
			c = -1
		default:
			c = strings.Compare(ta, tb)
		}
		if c != 0 {
			return c
		}
		a, b = ra, rb
	}
}

// token returns the first run of digits or of letters in s, skipping the
// separators before it, and the rest of s.
func token(s string) (string, string) {
	i := 0
	for i < len(s) && !isDigit(s[i]) && !isLetter(s[i]) {
		i++
	}
	if i == len(s) {
		return "", ""
	}
	d := isDigit(s[i])
	j := i + 1
	for j < len(s) && (d && isDigit(s[j]) || !d && isLetter(s[j])) {
		j++
	}
	return s[i:j], s[j:]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isLetter counts every byte of a non-ASCII character as a letter.
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80 }
