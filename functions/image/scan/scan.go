// Package scan reads a directory tree (a chroot) into an image manifest. It
// never follows a symlink and never leaves the root: every directory is opened
// relative to its parent with O_NOFOLLOW, every entry is lstat'ed relative to
// its directory, and a directory or file that changes identity between the
// lstat and the open is reported instead of read.
package scan

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// Options tunes Tree. The zero value is ready to use.
type Options struct {
	// Skip reports whether to leave out a path (manifest form, e.g. "proc" or
	// "var/lib/x") and, for a directory, everything below it. The root is
	// never skipped.
	Skip func(path string) bool
	// Workers is how many files are hashed at once; 0 means GOMAXPROCS.
	// Memory stays bounded: each worker has one read buffer and at most
	// Workers files wait, open, in the queue.
	Workers int
}

// readBufSize is each hashing worker's read buffer.
const readBufSize = 256 << 10

// Tree scans the directory root and returns its manifest, with a SHA-256
// digest for every regular file. Files linked more than once become one file
// entry (the first path in manifest order) and hardlink entries for the other
// paths; hardlinked non-regular files are recorded separately. Errors name the
// path relative to root.
func Tree(ctx context.Context, root string, opts Options) (*manifest.Manifest, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	s := &scanner{
		root:   root,
		skip:   opts.Skip,
		jobs:   make(chan hashJob, workers),
		links:  make(map[devIno][]*manifest.Entry),
		procfs: procfsUsable(),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { s.hashFiles(ctx, cancel) })
	}
	walkErr := s.walkRoot(ctx)
	if walkErr != nil {
		cancel(walkErr)
	}
	close(s.jobs)
	wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	s.resolveHardlinks()
	m := &manifest.Manifest{Version: manifest.FormatVersion, Entries: make([]manifest.Entry, len(s.entries))}
	for i, e := range s.entries {
		m.Entries[i] = *e
	}
	m.Sort()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return m, nil
}

type devIno struct{ dev, ino uint64 }

type hashJob struct {
	f *os.File
	e *manifest.Entry // written only by the worker until all workers finish
}

type scanner struct {
	root    string
	skip    func(string) bool
	jobs    chan hashJob
	entries []*manifest.Entry
	// links groups the entries of regular files with more than one link;
	// the first is the one hashed.
	links  map[devIno][]*manifest.Entry
	procfs bool
}

func (s *scanner) walkRoot(ctx context.Context) error {
	fd, err := unix.Open(s.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("scan %s: open root: %w", s.root, err)
	}
	dir := os.NewFile(uintptr(fd), s.root)
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("scan %s: stat root: %w", s.root, err)
	}
	e := newEntry(".", &st)
	e.Type = manifest.TypeDir
	if e.Xattrs, err = s.xattrs(fd, "", "."); err != nil {
		return err
	}
	s.entries = append(s.entries, e)
	return s.walkDir(ctx, dir, ".")
}

// walkDir records the entries of the open directory dir, whose manifest path is rel.
func (s *scanner) walkDir(ctx context.Context, dir *os.File, rel string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return s.errorf(rel, "read directory: %w", err)
	}
	slices.Sort(names)
	dirfd := int(dir.Fd())
	for _, name := range names {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		p := name
		if rel != "." {
			p = rel + "/" + name
		}
		if s.skip != nil && s.skip(p) {
			continue
		}
		if err := s.visit(ctx, dirfd, name, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) visit(ctx context.Context, dirfd int, name, p string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return s.errorf(p, "lstat: %w", err)
	}
	e := newEntry(p, &st)
	id := devIno{uint64(st.Dev), st.Ino}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
		if group, ok := s.links[id]; ok {
			// Another name of a file already seen: resolveHardlinks decides
			// which path carries the content.
			*e = manifest.Entry{Path: p, Type: manifest.TypeHardlink, LinkTarget: group[0].Path}
			s.links[id] = append(group, e)
			s.entries = append(s.entries, e)
			return nil
		}
		s.links[id] = []*manifest.Entry{e}
	}
	var err error
	if e.Xattrs, err = s.xattrs(dirfd, name, p); err != nil {
		return err
	}
	s.entries = append(s.entries, e)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = manifest.TypeFile
		e.Size = uint64(st.Size)
		f, err := s.openAt(dirfd, name, p, unix.O_NONBLOCK, id)
		if err != nil {
			return err
		}
		select {
		case s.jobs <- hashJob{f: f, e: e}:
		case <-ctx.Done():
			f.Close()
			return context.Cause(ctx)
		}
	case unix.S_IFDIR:
		e.Type = manifest.TypeDir
		sub, err := s.openAt(dirfd, name, p, unix.O_DIRECTORY, id)
		if err != nil {
			return err
		}
		defer sub.Close()
		return s.walkDir(ctx, sub, p)
	case unix.S_IFLNK:
		e.Type = manifest.TypeSymlink
		if e.LinkTarget, err = readlinkAt(dirfd, name); err != nil {
			return s.errorf(p, "readlink: %w", err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = manifest.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Type = manifest.TypeBlock
		}
		e.DevMajor, e.DevMinor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	case unix.S_IFIFO:
		e.Type = manifest.TypeFifo
	case unix.S_IFSOCK:
		e.Type = manifest.TypeSocket
	default:
		return s.errorf(p, "unknown file type %#o", st.Mode&unix.S_IFMT)
	}
	return nil
}

// openAt opens name in dirfd without following a symlink and checks it is
// still the inode that was lstat'ed.
func (s *scanner) openAt(dirfd int, name, p string, flags int, want devIno) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, s.errorf(p, "open: %w", err)
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, s.errorf(p, "stat: %w", err)
	}
	if (devIno{uint64(st.Dev), st.Ino}) != want {
		f.Close()
		return nil, s.errorf(p, "replaced during the scan")
	}
	return f, nil
}

func (s *scanner) hashFiles(ctx context.Context, cancel context.CancelCauseFunc) {
	buf := make([]byte, readBufSize)
	for j := range s.jobs {
		if ctx.Err() == nil {
			if err := s.hashFile(j, buf); err != nil {
				cancel(err)
			}
		}
		j.f.Close()
	}
}

func (s *scanner) hashFile(j hashJob, buf []byte) error {
	h := sha256.New()
	var n uint64
	for {
		k, err := j.f.Read(buf)
		h.Write(buf[:k])
		n += uint64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s.errorf(j.e.Path, "read: %w", err)
		}
	}
	if n != j.e.Size {
		return s.errorf(j.e.Path, "size changed during the scan: lstat said %d bytes, read %d", j.e.Size, n)
	}
	h.Sum(j.e.Digest[:0])
	return nil
}

// resolveHardlinks gives each linked file's content to its first path in
// manifest order, so a link always sorts after its target.
func (s *scanner) resolveHardlinks() {
	for _, group := range s.links {
		if len(group) < 2 {
			continue
		}
		full := *group[0]
		first := slices.MinFunc(group, func(a, b *manifest.Entry) int { return manifest.ComparePaths(a.Path, b.Path) }).Path
		for _, e := range group {
			if e.Path == first {
				*e = full
				e.Path = first
			} else {
				*e = manifest.Entry{Path: e.Path, Type: manifest.TypeHardlink, LinkTarget: first}
			}
		}
	}
}

func (s *scanner) errorf(p, format string, args ...any) error {
	return fmt.Errorf("scan %s: %q: %w", s.root, p, fmt.Errorf(format, args...))
}

func newEntry(p string, st *unix.Stat_t) *manifest.Entry {
	return &manifest.Entry{
		Path:  p,
		Mode:  st.Mode & manifest.PermMask,
		UID:   st.Uid,
		GID:   st.Gid,
		MTime: st.Mtim.Nano(),
	}
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// procfsUsable reports whether /proc/self/fd can name an open directory,
// which lets xattrs be read relative to a directory fd, race-free.
func procfsUsable() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// xattrs reads the extended attributes of name in dirfd (name "" is dirfd
// itself) without following a symlink. A filesystem without xattr support
// yields none.
func (s *scanner) xattrs(dirfd int, name, p string) (map[string][]byte, error) {
	path := s.root + "/" + p
	if s.procfs {
		path = fmt.Sprintf("/proc/self/fd/%d", dirfd)
		if name != "" {
			path += "/" + name
		}
	}
	xs, err := ReadXattrs(path)
	if err != nil {
		return nil, s.errorf(p, "%w", err)
	}
	return xs, nil
}

// ReadXattrs reads the extended attributes of path without following a
// symlink. A filesystem without xattr support yields none.
func ReadXattrs(path string) (map[string][]byte, error) {
	list, err := getList(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var xs map[string][]byte
	for attr := range strings.SplitSeq(strings.TrimSuffix(string(list), "\x00"), "\x00") {
		if attr == "" {
			continue
		}
		val, err := getList(func(b []byte) (int, error) { return unix.Lgetxattr(path, attr, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s: %w", attr, err)
		}
		if xs == nil {
			xs = make(map[string][]byte)
		}
		xs[attr] = val
	}
	return xs, nil
}

// getList calls a size-probing syscall wrapper until the buffer fits.
func getList(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the calls
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
