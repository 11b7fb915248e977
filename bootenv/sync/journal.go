package sync

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// Files of the journal directory.
const (
	journalTarget   = "target"   // digest of the manifest being synced to
	journalDone     = "done"     // one line per file written: inode, ctime, quoted path
	journalComplete = "complete" // digest of the manifest the root fully matches
)

// journalMark is how a finished file looked right after Apply wrote it; the
// same inode with the same ctime means nobody touched it since.
type journalMark struct {
	ino   uint64
	ctime int64
}

// openJournalDir opens root/.herd-sync, creating it, refusing a symlink.
func openJournalDir(t *tree) (int, error) {
	if err := unix.Mkdirat(t.fd, JournalDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("make journal directory: %w", err)
	}
	fd, err := unix.Openat(t.fd, JournalDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open journal directory: %w", err)
	}
	return fd, nil
}

// readJournalFile reads a small file of the journal; "" if it is missing.
func readJournalFile(t *tree, name string) string {
	fd, err := unix.Openat2(t.fd, JournalDir+"/"+name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return ""
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	return b.String()
}

// readJournal returns the files a previous run toward target finished. A
// journal for another target, or an unreadable line, counts for nothing:
// the journal only spares hashing, it never decides content on its own.
func readJournal(t *tree, target manifest.Digest) map[string]journalMark {
	if strings.TrimSpace(readJournalFile(t, journalTarget)) != target.String() {
		return nil
	}
	marks := map[string]journalMark{}
	for line := range strings.SplitSeq(readJournalFile(t, journalDone), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			continue
		}
		ino, err1 := strconv.ParseUint(f[0], 10, 64)
		ctime, err2 := strconv.ParseInt(f[1], 10, 64)
		p, err3 := strconv.Unquote(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		marks[p] = journalMark{ino: ino, ctime: ctime}
	}
	return marks
}

// journal records finished files of one Apply.
type journal struct {
	dirfd int
	mu    sync.Mutex
	done  *os.File
}

// startJournal removes the completion marker (the root is about to change)
// and points the journal at target, keeping the finished list if it was
// already for target.
func startJournal(t *tree, target manifest.Digest) (*journal, error) {
	dirfd, err := openJournalDir(t)
	if err != nil {
		return nil, err
	}
	j := &journal{dirfd: dirfd}
	if err := unix.Unlinkat(dirfd, journalComplete, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		j.close()
		return nil, fmt.Errorf("remove completion marker: %w", err)
	}
	if err := unix.Fsync(dirfd); err != nil {
		j.close()
		return nil, fmt.Errorf("sync journal directory: %w", err)
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if strings.TrimSpace(readJournalFile(t, journalTarget)) != target.String() {
		if err := writeSmall(dirfd, journalTarget, target.String()+"\n"); err != nil {
			j.close()
			return nil, err
		}
		flags |= unix.O_TRUNC
	}
	fd, err := unix.Openat(dirfd, journalDone, flags, 0o600)
	if err != nil {
		j.close()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.done = os.NewFile(uintptr(fd), journalDone)
	return j, nil
}

// finished appends one written file; one write per line, so a killed run
// loses at most the line being written, which the reader skips.
func (j *journal) finished(p string, ino uint64, ctime int64) error {
	line := strconv.FormatUint(ino, 10) + " " + strconv.FormatInt(ctime, 10) + " " + strconv.Quote(p) + "\n"
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.done.WriteString(line); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

// complete writes the marker for target and empties the finished list.
func (j *journal) complete(target manifest.Digest) error {
	if err := writeSmall(j.dirfd, journalComplete, target.String()+"\n"); err != nil {
		return err
	}
	if err := j.done.Truncate(0); err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	return nil
}

func (j *journal) close() {
	if j.done != nil {
		j.done.Close()
	}
	unix.Close(j.dirfd)
}

// writeSmall replaces name in dirfd with content durably: temp file, fsync,
// rename, fsync of the directory.
func writeSmall(dirfd int, name, content string) error {
	tmp := name + ".tmp"
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err == nil {
		err = unix.Fsync(dirfd)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Complete reports whether the tree at root was fully synced to the
// manifest with digest d and not changed by a sync since. The pivot checks
// it so a node never boots a half-synced root.
func Complete(root string, d manifest.Digest) bool {
	t, err := openTree(root)
	if err != nil {
		return false
	}
	defer t.close()
	return strings.TrimSpace(readJournalFile(t, journalComplete)) == d.String()
}
