// Package pivot hands the machine over from bootenv to the node's own
// operating system the way switch_root does: move /proc, /sys, /dev and
// /run into the new root, delete the initramfs's files to give its memory
// back (never crossing into another filesystem, so the new root and the
// moved mounts are safe), move the new root onto /, chroot into it and
// exec the image's init.
package pivot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrNoInit is returned when the new root has no init to run.
var ErrNoInit = errors.New("no init in the new root")

// Mounts are the API filesystems moved into the new root, in order.
func Mounts() []string { return []string{"/dev", "/proc", "/sys", "/run"} }

// initCandidates are tried in order when no init is named.
func initCandidates() []string {
	return []string{"/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd", "/bin/init"}
}

// ChooseInit returns the init to exec in root: want (init= of the kernel
// command line or the node's settings) when it is set, else the first of
// /sbin/init, /usr/sbin/init and systemd found. Symlinks are resolved
// inside root. The result must be an executable regular file: pivoting
// into a root with nothing to run would leave a dead machine.
func ChooseInit(root, want string) (string, error) {
	cands := initCandidates()
	if want != "" {
		if !path.IsAbs(want) {
			return "", fmt.Errorf("init %q is not an absolute path", want)
		}
		cands = []string{want}
	}
	for _, c := range cands {
		if executableIn(root, c) {
			return c, nil
		}
	}
	if want != "" {
		return "", fmt.Errorf("%w: %s is not an executable file in %s", ErrNoInit, want, root)
	}
	return "", fmt.Errorf("%w: none of %v is an executable file in %s", ErrNoInit, cands, root)
}

// executableIn reports whether p, resolved inside root, is an executable
// regular file.
func executableIn(root, p string) bool {
	rfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, "."+path.Clean(p), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0
}

// Clean removes everything below dir that lives on dir's own filesystem.
// Directories on another filesystem (mount points: the new root, the
// moved API filesystems) are left whole, and nothing is followed through
// a symlink. It returns how many entries it removed; entries it could
// not remove are reported together but do not stop it, since freeing
// most of the memory beats freeing none.
func Clean(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	var errs []error
	n := cleanDir(fd, dir, st.Dev, &errs)
	return n, errors.Join(errs...)
}

// cleanDir empties the directory open as fd (and closes it).
func cleanDir(fd int, name string, dev uint64, errs *[]error) int {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("list %s: %w", name, err))
	}
	n := 0
	for _, e := range names {
		p := filepath.Join(name, e)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, e, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			*errs = append(*errs, fmt.Errorf("stat %s: %w", p, err))
			continue
		}
		if st.Dev != dev {
			continue // another filesystem mounted here: not ours to empty
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := unix.Openat(fd, e, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("open %s: %w", p, err))
				continue
			}
			var sst unix.Stat_t
			if unix.Fstat(sub, &sst) == nil && sst.Dev != dev {
				unix.Close(sub) // a mount appeared between the two looks
				continue
			}
			n += cleanDir(sub, p, dev, errs)
			if err := unix.Unlinkat(fd, e, unix.AT_REMOVEDIR); err != nil {
				// A directory holding a mount point cannot go; that is fine.
				if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EBUSY) {
					*errs = append(*errs, fmt.Errorf("remove %s: %w", p, err))
				}
				continue
			}
			n++
			continue
		}
		if err := unix.Unlinkat(fd, e, 0); err != nil {
			*errs = append(*errs, fmt.Errorf("remove %s: %w", p, err))
			continue
		}
		n++
	}
	return n
}

// Options say how to pivot.
type Options struct {
	// NewRoot is the mounted root of the node's operating system.
	NewRoot string
	// Init is the program to exec there; empty lets ChooseInit look.
	Init string
	// Args are passed after the init's name: the arguments the kernel gave
	// bootenv, meant for the real init (single, systemd.unit=…).
	Args []string
	// Env is the environment; the kernel's, as bootenv received it.
	Env []string
}

// Pivot switches to the new root and execs its init. It returns only on
// failure; before the point of no return (deleting the initramfs) it
// checks everything it can, so a failure there leaves bootenv running.
func Pivot(o Options) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("pivot into %s: bootenv is not PID 1", o.NewRoot)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/", &fs); err != nil {
		return fmt.Errorf("pivot: stat /: %w", err)
	}
	if fs.Type != unix.RAMFS_MAGIC && fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("pivot: / is not an initramfs (filesystem %#x): refusing to delete it", fs.Type)
	}
	var rootSt, newSt unix.Stat_t
	if err := unix.Stat("/", &rootSt); err != nil {
		return fmt.Errorf("pivot: %w", err)
	}
	if err := unix.Stat(o.NewRoot, &newSt); err != nil {
		return fmt.Errorf("pivot: %w", err)
	}
	if rootSt.Dev == newSt.Dev {
		return fmt.Errorf("pivot: %s is not a mounted filesystem", o.NewRoot)
	}
	prog, err := ChooseInit(o.NewRoot, o.Init)
	if err != nil {
		return fmt.Errorf("pivot: %w", err)
	}
	for _, m := range Mounts() {
		dst := filepath.Join(o.NewRoot, m)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("pivot: make %s: %w", dst, err)
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			// Not mounted in the initramfs (run may not be): the image's
			// init mounts it itself.
			if !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("pivot: move %s to %s: %w", m, dst, err)
			}
		}
	}
	if err := unix.Chdir(o.NewRoot); err != nil {
		return fmt.Errorf("pivot: %w", err)
	}
	// From here on the initramfs is going away; errors are printed by
	// the caller on a console that still works (/dev moved along).
	Clean("/") //nolint:errcheck // best effort, as switch_root does
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("pivot: move %s onto /: %w", o.NewRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("pivot: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot: %w", err)
	}
	argv := append([]string{prog}, o.Args...)
	return fmt.Errorf("pivot: exec %s: %w", prog, unix.Exec(prog, argv, o.Env))
}
