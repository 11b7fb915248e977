// Package initramfs builds bootenv's initramfs: our static binary as /init,
// the tools it runs copied from this machine's Debian packages with every
// shared library they load, and the kernel modules it needs from a modules
// directory with their dependencies. The output is a gzip'd newc cpio
// archive and is reproducible: entries sorted by name, mtime 0, uid and
// gid 0, a fixed gzip header, so the same inputs give the same bytes.
package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/image/newc"
)

// Spec says what goes into the initramfs.
type Spec struct {
	// Init is the program run as /init: a static binary.
	Init []byte
	// Tools are commands looked up in ToolDirs (or absolute paths); each
	// is copied with the symlinks that lead to it and its libraries.
	Tools []string
	// ToolDirs are searched in order for Tools; DefaultToolDirs if empty.
	ToolDirs []string
	// LibDirs are searched for DT_NEEDED libraries; DefaultLibDirs if empty.
	LibDirs []string
	// ModulesDir is lib/modules/<version> of the kernel the initramfs boots
	// with; empty for no modules.
	ModulesDir string
	// Modules are module names (virtio_blk, raid1); each comes with what
	// modules.dep says it needs. Modules built into the kernel are skipped.
	Modules []string
	// Files are extra files by archive path (etc/lvm/lvm.conf).
	Files map[string][]byte
	// Root is the directory tools and libraries are read from; "/" if
	// empty. Paths inside the archive are the same as under Root.
	Root string
}

// DefaultToolDirs are where Debian installs commands.
func DefaultToolDirs() []string {
	return []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}
}

// DefaultLibDirs are where Debian's x86-64 loader finds libraries.
func DefaultLibDirs() []string {
	return []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// ErrNotFound is returned when a tool, library or module is missing.
var ErrNotFound = errors.New("not found")

type kind int

const (
	kindDir kind = iota
	kindFile
	kindLink
	kindChar
)

type entry struct {
	kind   kind
	perm   fs.FileMode
	data   []byte // file contents or link target
	source string // host path a file is read from at write time
	major  uint32
	minor  uint32
}

// tree is the archive being assembled, by path without a leading slash.
type tree struct {
	root    string
	entries map[string]*entry
}

func (t *tree) dirs(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = &entry{kind: kindDir, perm: 0o755}
		}
	}
}

func (t *tree) put(p string, e *entry) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	t.dirs(p)
	t.entries[p] = e
}

func (t *tree) host(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }

// addPath copies the host path p (absolute, inside Root) with every
// symlink met on the way, component by component, so /lib64/ld-linux…
// arrives as the same chain of links the host has. It returns the path of
// the regular file reached.
func (t *tree) addPath(p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0; {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		fi, err := os.Lstat(t.host(next))
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > 40 {
				return "", fmt.Errorf("%s: too many symlinks", p)
			}
			target, err := os.Readlink(t.host(next))
			if err != nil {
				return "", err
			}
			t.put(next, &entry{kind: kindLink, data: []byte(target)})
			abs := target
			if !path.IsAbs(target) {
				abs = path.Join(cur, target)
			}
			rest = append(strings.Split(strings.Trim(path.Clean(abs), "/"), "/"), rest...)
			cur = "/"
		case fi.IsDir():
			if _, ok := t.entries[strings.TrimPrefix(next, "/")]; !ok {
				t.put(next, &entry{kind: kindDir, perm: 0o755})
			}
			cur = next
		case fi.Mode().IsRegular():
			if len(rest) > 0 {
				return "", fmt.Errorf("%s: %s is not a directory", p, next)
			}
			t.put(next, &entry{kind: kindFile, perm: fi.Mode().Perm(), source: t.host(next)})
			return next, nil
		default:
			return "", fmt.Errorf("%s: %s is not a file", p, next)
		}
	}
	return "", fmt.Errorf("%s is a directory", p)
}

// Build writes the initramfs spec describes to w.
func Build(ctx context.Context, spec Spec, w io.Writer) error {
	t := &tree{root: spec.Root, entries: map[string]*entry{}}
	if t.root == "" {
		t.root = "/"
	}
	if len(spec.Init) == 0 {
		return errors.New("build initramfs: no /init program")
	}
	t.put("init", &entry{kind: kindFile, perm: 0o755, data: spec.Init})
	// The kernel opens /dev/console before /init runs; without it early
	// output is lost.
	t.put("dev/console", &entry{kind: kindChar, perm: 0o600, major: 5, minor: 1})
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "newroot", "etc"} {
		t.put(d, &entry{kind: kindDir, perm: 0o755})
	}
	if err := t.addTools(ctx, spec); err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	if spec.ModulesDir != "" {
		if err := t.addModules(spec.ModulesDir, spec.Modules); err != nil {
			return fmt.Errorf("build initramfs: %w", err)
		}
	}
	for name, data := range spec.Files {
		t.put(name, &entry{kind: kindFile, perm: 0o644, data: data})
	}
	return t.write(ctx, w)
}

func (t *tree) addTools(ctx context.Context, spec Spec) error {
	dirs := spec.ToolDirs
	if len(dirs) == 0 {
		dirs = DefaultToolDirs()
	}
	libDirs := spec.LibDirs
	if len(libDirs) == 0 {
		libDirs = DefaultLibDirs()
	}
	seen := map[string]bool{}
	var queue []string
	for _, tool := range spec.Tools {
		p, err := t.lookTool(tool, dirs)
		if err != nil {
			return err
		}
		queue = append(queue, p)
	}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		file, err := t.addPath(p)
		if err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
		needs, err := t.elfNeeds(file, libDirs)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		queue = append(queue, needs...)
	}
	return nil
}

func (t *tree) lookTool(tool string, dirs []string) (string, error) {
	if path.IsAbs(tool) {
		return tool, nil
	}
	for _, d := range dirs {
		p := path.Join(d, tool)
		if fi, err := os.Stat(t.host(p)); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("tool %s in %s: %w (is its Debian package installed?)", tool, strings.Join(dirs, ":"), ErrNotFound)
}

// elfNeeds returns the loader and the libraries an ELF file loads (none for
// scripts and static binaries), as host paths.
func (t *tree) elfNeeds(p string, libDirs []string) ([]string, error) {
	f, err := elf.Open(t.host(p))
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, nil // not ELF: a script or data
		}
		return nil, err
	}
	defer f.Close()
	var out []string
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, err
			}
			out = append(out, strings.TrimRight(string(b), "\x00"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	rpath, _ := f.DynString(elf.DT_RPATH)
	search := slices.Concat(splitPaths(rpath, p), splitPaths(runpath, p), libDirs)
	for _, lib := range libs {
		found := ""
		for _, d := range search {
			c := path.Join(d, lib)
			if _, err := os.Stat(t.host(c)); err == nil {
				found = c
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("library %s needed by %s: %w", lib, p, ErrNotFound)
		}
		out = append(out, found)
	}
	return out, nil
}

func splitPaths(list []string, origin string) []string {
	var out []string
	for _, l := range list {
		for _, d := range strings.Split(l, ":") {
			if d != "" {
				out = append(out, strings.ReplaceAll(d, "$ORIGIN", path.Dir(origin)))
			}
		}
	}
	return out
}

// addModules copies the named modules and their dependencies from dir,
// with the modules.* index files so modprobe works in the initramfs.
func (t *tree) addModules(dir string, names []string) error {
	version := filepath.Base(dir)
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("read modules of %s: %w", version, err)
	}
	deps := map[string][]string{} // module file → files it needs
	byName := map[string]string{} // normalised name → module file
	sc := bufio.NewScanner(bytes.NewReader(dep))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		file, needs, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(needs)
		byName[moduleName(file)] = file
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[moduleName(l)] = true
		}
	}
	want := map[string]bool{}
	var add func(file string)
	add = func(file string) {
		if want[file] {
			return
		}
		want[file] = true
		for _, d := range deps[file] {
			add(d)
		}
	}
	for _, n := range names {
		key := strings.ReplaceAll(n, "-", "_")
		file, ok := byName[key]
		switch {
		case ok:
			add(file)
		case builtin[key]:
		default:
			return fmt.Errorf("module %s of kernel %s: %w", n, version, ErrNotFound)
		}
	}
	base := path.Join("usr/lib/modules", version)
	for file := range want {
		t.put(path.Join(base, file), &entry{kind: kindFile, perm: 0o644, source: filepath.Join(dir, file)})
	}
	// The index files describe every module of the kernel; modprobe only
	// loads what is present, and a small index is not worth regenerating.
	idx, err := filepath.Glob(filepath.Join(dir, "modules.*"))
	if err != nil {
		return err
	}
	for _, f := range idx {
		t.put(path.Join(base, filepath.Base(f)), &entry{kind: kindFile, perm: 0o644, source: f})
	}
	return nil
}

// moduleName turns kernel/drivers/block/virtio_blk.ko.xz into virtio_blk.
func moduleName(file string) string {
	n := path.Base(file)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

func (t *tree) write(ctx context.Context, w io.Writer) error {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	// Header fields zero: no name, mtime 0, OS "unknown" is fixed by the
	// package, so the bytes depend on the contents only. The default level:
	// the best one takes four times as long for under 1% less.
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	cw := newc.NewWriter(zw)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := t.entries[n]
		switch e.kind {
		case kindDir:
			cw.Dir(n, e.perm)
		case kindLink:
			cw.Symlink(n, string(e.data))
		case kindChar:
			cw.CharDevice(n, e.perm, e.major, e.minor)
		case kindFile:
			data := e.data
			if e.source != "" {
				if data, err = os.ReadFile(e.source); err != nil {
					return fmt.Errorf("build initramfs: %w", err)
				}
			}
			cw.File(n, e.perm, data)
		}
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	return nil
}
