package store

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/sparse"
)

// Export writes the version with digest d into dir, which must be an empty
// directory or not exist yet: every entry with its type, content, mode
// (setuid, setgid and sticky included), owner, mtime and xattrs. Files appear
// whole, through a temporary name and a rename. Restoring owners, devices
// and security xattrs needs root.
func (s *Store) Export(ctx context.Context, d manifest.Digest, dir string) error {
	m, err := s.Manifest(ctx, d)
	if err != nil {
		return fmt.Errorf("export %s: %w", d, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("export %s: %w", d, err)
	}
	if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
		return fmt.Errorf("export %s to %s: want an empty directory (%d entries, %v)", d, dir, len(names), err)
	}
	dirs := map[string]bool{}
	var dirEntries []*manifest.Entry
	for i := range m.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &m.Entries[i]
		if e.Path != "." && !dirs[path.Dir(e.Path)] {
			return fmt.Errorf("export %s: %q: parent is not a directory in the manifest", d, e.Path)
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		if err := s.exportEntry(ctx, e, p, dir); err != nil {
			return fmt.Errorf("export %s: %q: %w", d, e.Path, err)
		}
		if e.Type == manifest.TypeDir {
			dirs[e.Path] = true
			dirEntries = append(dirEntries, e)
		}
	}
	// Directory metadata last, deepest first: creating children changes a
	// directory's mtime, and a read-only directory would refuse them.
	for _, e := range slices.Backward(dirEntries) {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		if err := setMeta(p, e); err != nil {
			return fmt.Errorf("export %s: %q: %w", d, e.Path, err)
		}
	}
	return nil
}

func (s *Store) exportEntry(ctx context.Context, e *manifest.Entry, p, root string) error {
	switch e.Type {
	case manifest.TypeDir:
		if e.Path == "." {
			return nil
		}
		return os.Mkdir(p, 0o700)
	case manifest.TypeFile:
		return s.exportFile(ctx, e, p)
	case manifest.TypeHardlink:
		return os.Link(filepath.Join(root, filepath.FromSlash(e.LinkTarget)), p)
	case manifest.TypeSymlink:
		if err := os.Symlink(e.LinkTarget, p); err != nil {
			return err
		}
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		kind := map[manifest.Type]uint32{
			manifest.TypeChar: unix.S_IFCHR, manifest.TypeBlock: unix.S_IFBLK,
			manifest.TypeFifo: unix.S_IFIFO, manifest.TypeSocket: unix.S_IFSOCK,
		}[e.Type]
		if err := unix.Mknod(p, kind|0o600, int(unix.Mkdev(e.DevMajor, e.DevMinor))); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("unknown type %s", e.Type)
	}
	return setMeta(p, e)
}

// exportFile writes the file's blob or chunks to a temporary file beside p,
// sets its metadata and renames it to p.
func (s *Store) exportFile(ctx context.Context, e *manifest.Entry, p string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), ".herd-export-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Zero blocks become holes, so sparse files stay sparse.
	sw := sparse.NewWriter(f)
	switch {
	case e.Size == 0:
	case len(e.Chunks) == 0:
		if err := s.readBlob(ctx, e.Digest, sw, e.Size); err != nil {
			return err
		}
	default:
		for _, c := range e.Chunks {
			if err := s.readBlob(ctx, c.Digest, sw, c.Size); err != nil {
				return err
			}
		}
	}
	if err := sw.Finish(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := setMeta(f.Name(), e); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// setMeta gives the entry at p its owner, mode, xattrs and mtime, in that
// order: chown clears setuid, setgid and security.capability.
func setMeta(p string, e *manifest.Entry) error {
	if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
		return err
	}
	if e.Type != manifest.TypeSymlink {
		// chmod(2) follows symlinks, and a symlink's mode means nothing on Linux.
		if err := unix.Fchmodat(unix.AT_FDCWD, p, e.Mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.Xattrs)) {
		if err := unix.Lsetxattr(p, name, e.Xattrs[name], 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.MTime), unix.NsecToTimespec(e.MTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}
