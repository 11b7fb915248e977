package sync

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"

	"github.com/herd-hpc/herd/functions/image/scan"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// tree is a directory opened once; every operation below it resolves paths
// with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a symlink in the
// existing tree (a loop, or one pointing out of the root) is never followed:
// the old root may hold anything.
type tree struct {
	root string
	fd   int
}

func openTree(root string) (*tree, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	return &tree{root: root, fd: fd}, nil
}

func (t *tree) close() { unix.Close(t.fd) }

// openDir opens the directory at manifest path p as an O_PATH descriptor.
func (t *tree) openDir(p string) (int, error) {
	if p == "." {
		return unix.Dup(t.fd)
	}
	return unix.Openat2(t.fd, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// parent opens the directory holding manifest path p and returns it with
// p's last element. The caller closes the descriptor.
func (t *tree) parent(p string) (int, string, error) {
	fd, err := t.openDir(path.Dir(p))
	if err != nil {
		return -1, "", fmt.Errorf("open parent of %q: %w", p, err)
	}
	return fd, path.Base(p), nil
}

// procPath names name in the directory dirfd for the xattr calls, which
// have no *at form; /proc/self/fd/N is the directory itself, not a path
// resolved again.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// removeAt removes name in dirfd and, for a directory, everything below it,
// never following a symlink.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			d.Close()
			return fmt.Errorf("%s/%s: %w", name, n, err)
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// tempName is a fresh name for a file being written beside its final path.
// The walk removes leftovers of a killed run by this prefix.
func tempName(n uint64) string {
	return tempPrefix + strconv.FormatUint(uint64(os.Getpid()), 36) + "-" + strconv.FormatUint(n, 36)
}

const tempPrefix = ".herd-tmp-"

// setMetaAt gives name in dirfd the entry's owner, mode, xattrs and mtime,
// in that order, because chown clears setuid, setgid and
// security.capability. Xattrs the entry does not have are removed.
func setMetaAt(dirfd int, name string, e *manifest.Entry) error {
	if err := unix.Fchownat(dirfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	pp := procPath(dirfd, name)
	if e.Type != manifest.TypeSymlink {
		// An O_PATH descriptor and its /proc link let chmod reach the inode
		// itself, never a symlink's target; a symlink's mode means nothing.
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		err = unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), e.Mode, 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := syncXattrs(pp, e.Xattrs); err != nil {
		return err
	}
	return setMTimeAt(dirfd, name, e.MTime)
}

func setMTimeAt(dirfd int, name string, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// syncXattrs makes the xattrs of the entry at pp (not followed) exactly want.
func syncXattrs(pp string, want map[string][]byte) error {
	have, err := readXattrs(pp)
	if err != nil {
		return err
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			if err := unix.Lremovexattr(pp, name); err != nil {
				return fmt.Errorf("remove xattr %s: %w", name, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := unix.Lsetxattr(pp, name, want[name], 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// readXattrs reads the extended attributes of pp without following it; a
// filesystem without xattrs has none.
func readXattrs(pp string) (map[string][]byte, error) { return scan.ReadXattrs(pp) }

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

// typeOf maps a stat mode to a manifest type; 0 for unknown.
func typeOf(mode uint32) manifest.Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return manifest.TypeFile
	case unix.S_IFDIR:
		return manifest.TypeDir
	case unix.S_IFLNK:
		return manifest.TypeSymlink
	case unix.S_IFCHR:
		return manifest.TypeChar
	case unix.S_IFBLK:
		return manifest.TypeBlock
	case unix.S_IFIFO:
		return manifest.TypeFifo
	case unix.S_IFSOCK:
		return manifest.TypeSocket
	}
	return 0
}

// nodeKind is the mknod type bits for a device, fifo or socket entry.
func nodeKind(t manifest.Type) uint32 {
	switch t {
	case manifest.TypeChar:
		return unix.S_IFCHR
	case manifest.TypeBlock:
		return unix.S_IFBLK
	case manifest.TypeFifo:
		return unix.S_IFIFO
	case manifest.TypeSocket:
		return unix.S_IFSOCK
	}
	return 0
}
