package plugins

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Root is the new root a plugin edits. Every path is resolved inside it as
// if it were "/" (openat2 RESOLVE_IN_ROOT): an image's absolute symlink
// such as /etc/resolv.conf -> /run/… points into the new root, never into
// the initramfs bootenv runs from. All writes go through WriteFile,
// Symlink and Remove, which change nothing when the tree already holds
// what is asked, and record what they changed.
type Root struct {
	Dir     string
	changed []string
}

// NewRoot opens dir for editing.
func NewRoot(dir string) *Root { return &Root{Dir: dir} }

// Changed lists the paths (absolute inside the root) changed so far.
func (r *Root) Changed() []string { return r.changed }

func (r *Root) record(p string) { r.changed = append(r.changed, p) }

// clean makes p an absolute, clean path inside the root.
func clean(p string) string { return path.Clean("/" + p) }

// openDir opens directory dir inside the root; create makes it and its
// parents (0755, owner root) when missing.
func (r *Root) openDir(dir string, create bool) (int, error) {
	rfd, err := unix.Open(r.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open root %s: %w", r.Dir, err)
	}
	defer unix.Close(rfd)
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(rfd, "."+dir, how)
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	// Walk down making what is missing, each step resolved in the root.
	cur := "."
	for _, el := range strings.Split(strings.Trim(dir, "/"), "/") {
		next := cur + "/" + el
		pfd, err := unix.Openat2(rfd, cur, how)
		if err != nil {
			return -1, err
		}
		restore := keepDirTime(pfd)
		err = unix.Mkdirat(pfd, el, 0o755)
		if err == nil {
			err = restore()
		}
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
		cur = next
	}
	return unix.Openat2(rfd, cur, how)
}

// ReadFile reads p inside the root; a missing file is fs.ErrNotExist.
func (r *Root) ReadFile(p string) ([]byte, error) {
	p = clean(p)
	dfd, err := r.openDir(path.Dir(p), false)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, path.Base(p), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ELOOP) {
		// A symlinked file (resolv.conf and the like): resolve it in the root.
		return r.readLink(p)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}

func (r *Root) readLink(p string) ([]byte, error) {
	rfd, err := unix.Open(r.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, "."+p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}

// Exists reports whether p exists inside the root (a symlink counts as
// itself, not its target).
func (r *Root) Exists(p string) bool {
	p = clean(p)
	dfd, err := r.openDir(path.Dir(p), false)
	if err != nil {
		return false
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	return unix.Fstatat(dfd, path.Base(p), &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// WriteFile makes p hold content. When it already does, nothing is
// touched (not even the mtime). Otherwise the content goes to a temporary
// file in the same directory, is synced, takes the old file's owner and
// mode (mode for a new file, owner root) and is renamed over p, so a
// reader sees the old or the new file, never half of one. A symlink at p
// is replaced by the file. It reports whether it wrote.
func (r *Root) WriteFile(p string, content []byte, mode fs.FileMode) (bool, error) {
	p = clean(p)
	changed, err := r.writeFile(p, content, mode)
	if err != nil {
		return false, fmt.Errorf("write %s in %s: %w", p, r.Dir, err)
	}
	if changed {
		r.record(p)
	}
	return changed, nil
}

func (r *Root) writeFile(p string, content []byte, mode fs.FileMode) (bool, error) {
	dfd, err := r.openDir(path.Dir(p), true)
	if err != nil {
		return false, err
	}
	defer unix.Close(dfd)
	name := path.Base(p)
	uid, gid, perm := 0, 0, uint32(mode.Perm())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			if same(dfd, name, content, st.Size) {
				return false, nil
			}
			uid, gid, perm = int(st.Uid), int(st.Gid), st.Mode&0o7777
		} else if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return false, fmt.Errorf("%s is a directory", p)
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return false, err
	}
	restore := keepDirTime(dfd) // before the temporary file changes it
	tmp := ".herd-tmp-" + name + "-" + strconv.Itoa(os.Getpid())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(fd), tmp)
	ok := false
	defer func() {
		if !ok {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return false, err
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return false, err
	}
	// Fchmod after Fchown: chown clears set-id bits.
	if err := unix.Fchmod(fd, perm); err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return false, err
	}
	ok = true
	if err := restore(); err != nil {
		return true, err
	}
	return true, unix.Fsync(dfd)
}

// keepDirTime notes the directory's times and returns what sets them back
// after a write into it. The image sync compares directories with the
// image's manifest: a directory whose mtime a plugin's write moved would
// differ on the next boot only for the sync to set it back, and a boot
// with nothing to do would not say so.
func keepDirTime(dfd int) func() error {
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return func() error { return err }
	}
	return func() error {
		ts := [2]unix.Timespec{st.Atim, st.Mtim}
		// utimensat with a NULL path sets the times of dfd itself.
		if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(dfd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
			return fmt.Errorf("set the directory's time back: %w", e)
		}
		return nil
	}
}

// same reports whether the regular file name holds exactly content.
func same(dfd int, name string, content []byte, size int64) bool {
	if size != int64(len(content)) {
		return false
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	got, err := io.ReadAll(io.LimitReader(f, size+1))
	return err == nil && bytes.Equal(got, content)
}

// Symlink makes p a symbolic link to target, replacing what is there
// unless it already is that link. It reports whether it changed.
func (r *Root) Symlink(target, p string) (bool, error) {
	p = clean(p)
	changed, err := r.symlink(target, p)
	if err != nil {
		return false, fmt.Errorf("link %s to %s in %s: %w", p, target, r.Dir, err)
	}
	if changed {
		r.record(p)
	}
	return changed, nil
}

func (r *Root) symlink(target, p string) (bool, error) {
	dfd, err := r.openDir(path.Dir(p), true)
	if err != nil {
		return false, err
	}
	defer unix.Close(dfd)
	name := path.Base(p)
	buf := make([]byte, 4096)
	if n, err := unix.Readlinkat(dfd, name, buf); err == nil && string(buf[:n]) == target {
		return false, nil
	}
	restore := keepDirTime(dfd)
	tmp := ".herd-tmp-" + name + "-" + strconv.Itoa(os.Getpid())
	unix.Unlinkat(dfd, tmp, 0)
	if err := unix.Symlinkat(target, dfd, tmp); err != nil {
		return false, err
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return false, err
	}
	return true, restore()
}

// ReadDir lists the names in directory p, sorted; a missing directory
// lists nothing.
func (r *Root) ReadDir(p string) ([]string, error) {
	p = clean(p)
	fd, err := r.openDir(p, false)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", p, r.Dir, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", p, r.Dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// Readlink reads the symbolic link p; ok is false when p is no link.
func (r *Root) Readlink(p string) (target string, ok bool) {
	p = clean(p)
	dfd, err := r.openDir(path.Dir(p), false)
	if err != nil {
		return "", false
	}
	defer unix.Close(dfd)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dfd, path.Base(p), buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// MkdirAll makes directory p and its parents (0755, owner root) where
// missing. It reports whether it made p.
func (r *Root) MkdirAll(p string) (bool, error) {
	p = clean(p)
	if r.Exists(p) {
		return false, nil
	}
	fd, err := r.openDir(p, true)
	if err != nil {
		return false, fmt.Errorf("make directory %s in %s: %w", p, r.Dir, err)
	}
	unix.Close(fd)
	r.record(p)
	return true, nil
}

// Remove removes the file or symlink p if it is there. It reports whether
// it removed something.
func (r *Root) Remove(p string) (bool, error) {
	p = clean(p)
	dfd, err := r.openDir(path.Dir(p), false)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove %s in %s: %w", p, r.Dir, err)
	}
	defer unix.Close(dfd)
	err = unix.Unlinkat(dfd, path.Base(p), 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove %s in %s: %w", p, r.Dir, err)
	}
	r.record(p)
	return true, nil
}
