package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// Fetcher reads blobs (whole small files or chunks of big ones) from
// wherever the image store keeps them. Apply checks every byte against the
// digest, so a Fetcher need not.
type Fetcher interface {
	Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error)
}

// OpenSized is a Fetcher's Open over a call that returns a blob and its
// length (-1 when unknown): a stated length other than the manifest's
// size is refused before a byte is read.
func OpenSized(d manifest.Digest, size uint64, open func() (io.ReadCloser, int64, error)) (io.ReadCloser, error) {
	rc, n, err := open()
	if err != nil {
		return nil, err
	}
	if n >= 0 && uint64(n) != size {
		rc.Close()
		return nil, fmt.Errorf("blob %s: %d bytes, want %d", d, n, size)
	}
	return rc, nil
}

// ApplyOptions tunes Apply. The zero value is ready to use.
type ApplyOptions struct {
	// Workers is how many files are written at once (each fetching its
	// pieces in turn); 0 means 8. Fetching is latency bound, so more
	// workers than cores pay off.
	Workers int
	// Log receives one line per phase; nil discards.
	Log *slog.Logger
}

// Stats is what an Apply did.
type Stats struct {
	Removed      int    // paths removed (directories count once)
	Written      int    // files written
	FetchedBlobs int    // pieces fetched
	FetchedBytes uint64 // their sizes
	CopiedBytes  uint64 // content taken from the tree itself
	Fallbacks    int    // local pieces whose bytes were not as planned, fetched instead
}

// maxPiece bounds one piece: small files are one blob below the chunking
// threshold, chunks are at most 1 MiB; a larger piece means a broken plan.
const maxPiece = 64 << 20

// Apply carries out plan on the tree at root: removes, creates, fetches
// and writes, then sets metadata, directories last. Every file is written
// under a temporary name in its directory, fsynced with its metadata, and
// renamed into place, and recorded in the journal, so a run that is
// killed can be planned and applied again without refetching what was
// finished. When every path it changed matches the manifest (Apply reads
// them back to check), it writes the completion marker that Complete
// reads; the paths the plan left alone were compared by Plan, so plan
// must be fresh. An empty plan over a root already marked complete for
// its target returns at once.
func Apply(ctx context.Context, plan SyncPlan, root string, fetcher Fetcher, opts ApplyOptions) (Stats, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 8
	}
	t, err := openTree(root)
	if err != nil {
		return Stats{}, fmt.Errorf("apply sync: %w", err)
	}
	defer t.close()
	// Every boot of a node whose image did not change ends here: the plan
	// just compared the whole tree, more strictly than the check below
	// would, and the root is already marked complete for the target, so
	// there is nothing to write, flush or check again.
	if plan.Empty() && strings.TrimSpace(readJournalFile(t, journalComplete)) == plan.Target.String() {
		log.Info("sync complete", "root", root, "target", plan.Target.String(), "changed", false)
		return Stats{}, nil
	}
	// Making the journal directory moves the root's mtime, which the plan
	// sets again only when it changes something in the root itself: a
	// first sync over a root without a journal (one installed otherwise,
	// or copied) must set it, or the check below finds it differs.
	var jst unix.Stat_t
	fresh := unix.Fstatat(t.fd, JournalDir, &jst, unix.AT_SYMLINK_NOFOLLOW) != nil
	j, err := startJournal(t, plan.Target)
	if err != nil {
		return Stats{}, fmt.Errorf("apply sync of %s to %s: %w", root, plan.Target, err)
	}
	defer j.close()
	a := &applier{t: t, j: j, fetcher: fetcher, workers: workers}
	if err := a.run(ctx, &plan, log); err != nil {
		return a.stats(), fmt.Errorf("apply sync of %s to %s: %w", root, plan.Target, err)
	}
	if fresh && !slices.ContainsFunc(plan.dirs, func(e *manifest.Entry) bool { return e.Path == "." }) {
		if err := a.meta(&plan.Want.Entries[0]); err != nil {
			return a.stats(), fmt.Errorf("apply sync of %s: set metadata of the root: %w", root, err)
		}
	}
	if err := unix.Syncfs(t.fd); err != nil {
		return a.stats(), fmt.Errorf("apply sync of %s: syncfs: %w", root, err)
	}
	if err := checkApplied(t, &plan, fresh); err != nil {
		return a.stats(), fmt.Errorf("check sync of %s to %s: still differs after applying: %w", root, plan.Target, err)
	}
	if err := j.complete(plan.Target); err != nil {
		return a.stats(), fmt.Errorf("apply sync of %s: %w", root, err)
	}
	log.Info("sync complete", "root", root, "target", plan.Target.String())
	return a.stats(), nil
}

type applier struct {
	t       *tree
	j       *journal
	fetcher Fetcher
	workers int
	tmpSeq  atomic.Uint64

	removed, written, fetched, fallbacks atomic.Int64
	fetchedBytes, copiedBytes            atomic.Uint64
}

func (a *applier) stats() Stats {
	return Stats{
		Removed: int(a.removed.Load()), Written: int(a.written.Load()),
		FetchedBlobs: int(a.fetched.Load()), FetchedBytes: a.fetchedBytes.Load(),
		CopiedBytes: a.copiedBytes.Load(), Fallbacks: int(a.fallbacks.Load()),
	}
}

func (a *applier) run(ctx context.Context, p *SyncPlan, log *slog.Logger) error {
	for _, r := range p.Remove {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.remove(r); err != nil {
			return fmt.Errorf("remove %q: %w", r, err)
		}
	}
	log.Info("sync removed", "paths", len(p.Remove))
	var files, first, later, links []*Item
	for _, list := range [][]Item{p.Create, p.Replace} {
		for i := range list {
			it := &list[i]
			switch it.Entry.Type {
			case manifest.TypeFile:
				files = append(files, it)
			case manifest.TypeHardlink:
				links = append(links, it)
			}
		}
	}
	// Directories and the small node types first, in manifest order, so
	// every file has its directory.
	for _, list := range [][]Item{p.Create, p.Replace} {
		for i := range list {
			it := &list[i]
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := a.makeNode(it); err != nil {
				return fmt.Errorf("make %q: %w", it.Entry.Path, err)
			}
		}
	}
	for _, it := range files {
		if slices.ContainsFunc(it.Pieces, func(pc Piece) bool { return pc.After }) {
			later = append(later, it)
		} else {
			first = append(first, it)
		}
	}
	if err := a.writeFiles(ctx, first); err != nil {
		return err
	}
	if err := a.writeFiles(ctx, later); err != nil {
		return err
	}
	log.Info("sync wrote files", "files", len(files), "fetched_bytes", a.fetchedBytes.Load())
	for _, it := range links {
		if err := a.link(it.Entry); err != nil {
			return fmt.Errorf("link %q: %w", it.Entry.Path, err)
		}
	}
	for i := range p.Meta {
		e := p.Meta[i].Entry
		if e.Type == manifest.TypeDir {
			continue // with the other directories, last
		}
		if err := a.meta(e); err != nil {
			return fmt.Errorf("set metadata of %q: %w", e.Path, err)
		}
	}
	for _, e := range p.dirs {
		if err := a.meta(e); err != nil {
			return fmt.Errorf("set metadata of %q: %w", e.Path, err)
		}
	}
	return nil
}

func (a *applier) remove(p string) error {
	dirfd, name, err := a.t.parent(p)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	if err := removeAt(dirfd, name); err != nil {
		return err
	}
	a.removed.Add(1)
	return nil
}

func (a *applier) meta(e *manifest.Entry) error {
	if e.Path == "." {
		return setMetaAt(a.t.fd, ".", e)
	}
	dirfd, name, err := a.t.parent(e.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	return setMetaAt(dirfd, name, e)
}

// makeNode makes a directory, symlink, device, fifo or socket; files and
// hardlinks are made later.
func (a *applier) makeNode(it *Item) error {
	e := it.Entry
	switch e.Type {
	case manifest.TypeFile, manifest.TypeHardlink:
		return nil
	}
	dirfd, name, err := a.t.parent(e.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	if e.Type == manifest.TypeDir {
		// Metadata comes at the end; 0700 keeps it private until then.
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		return nil
	}
	tmp := tempName(a.tmpSeq.Add(1))
	if e.Type == manifest.TypeSymlink {
		err = unix.Symlinkat(e.LinkTarget, dirfd, tmp)
	} else {
		err = unix.Mknodat(dirfd, tmp, nodeKind(e.Type)|0o600, int(unix.Mkdev(e.DevMajor, e.DevMinor)))
	}
	if err != nil {
		return err
	}
	if err := setMetaAt(dirfd, tmp, e); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return err
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// link makes e.Path another name of its target, replacing what is there.
func (a *applier) link(e *manifest.Entry) error {
	tdir, tname, err := a.t.parent(e.LinkTarget)
	if err != nil {
		return err
	}
	defer unix.Close(tdir)
	dirfd, name, err := a.t.parent(e.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	tmp := tempName(a.tmpSeq.Add(1))
	if err := unix.Linkat(tdir, tname, dirfd, tmp, 0); err != nil {
		return err
	}
	err = unix.Renameat(dirfd, tmp, dirfd, name)
	// rename between two names of one inode does nothing and leaves tmp.
	if uerr := unix.Unlinkat(dirfd, tmp, 0); uerr != nil && !errors.Is(uerr, unix.ENOENT) && err == nil {
		err = uerr
	}
	return err
}

// writeFiles writes files with a bounded number of workers; the first
// error stops the rest.
func (a *applier) writeFiles(ctx context.Context, items []*Item) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan *Item)
	var wg sync.WaitGroup
	for range a.workers {
		wg.Go(func() {
			buf := make([]byte, 0, 1<<20)
			for it := range jobs {
				if ctx.Err() != nil {
					continue
				}
				var err error
				if buf, err = a.writeFile(ctx, it.Entry, it.Pieces, buf); err != nil {
					cancel(fmt.Errorf("write %q: %w", it.Entry.Path, err))
				}
			}
		})
	}
	for _, it := range items {
		select {
		case jobs <- it:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// writeFile writes one file through a temporary name: each piece is read
// whole, checked against its digest and written sparse; then owner, mode,
// xattrs and mtime, fsync, rename, and a journal line.
func (a *applier) writeFile(ctx context.Context, e *manifest.Entry, pieces []Piece, buf []byte) ([]byte, error) {
	dirfd, name, err := a.t.parent(e.Path)
	if err != nil {
		return buf, err
	}
	defer unix.Close(dirfd)
	tmp := tempName(a.tmpSeq.Add(1))
	fd, err := unix.Openat(dirfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return buf, fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	renamed := false
	defer func() {
		f.Close()
		if !renamed {
			unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	// A file that is one piece (most are) has the piece's digest, which
	// piece or the copy above already checked: hashing it again as a
	// whole would only read it twice.
	one := len(pieces) == 1 && pieces[0].Digest == e.Digest && pieces[0].Size == e.Size
	whole := sha256.New()
	var off int64
	written := map[manifest.Digest]int64{} // pieces of this file, by offset
	for _, pc := range pieces {
		if pc.Size > maxPiece {
			return buf, fmt.Errorf("piece %s of %d bytes: larger than %d", pc.Digest, pc.Size, maxPiece)
		}
		if at, ok := written[pc.Digest]; ok && pc.From == "" {
			buf = slices.Grow(buf[:0], int(pc.Size))[:pc.Size]
			// Skipped zeros are not yet part of the file: extend it first.
			if err := f.Truncate(off); err != nil {
				return buf, err
			}
			if _, err := f.ReadAt(buf, at); err != nil || manifest.Sum(buf) != pc.Digest {
				return buf, fmt.Errorf("reread piece %s at %d: %v", pc.Digest, at, err)
			}
			a.copiedBytes.Add(pc.Size)
		} else if buf, err = a.piece(ctx, pc, buf); err != nil {
			return buf, err
		}
		written[pc.Digest] = off
		if !one {
			whole.Write(buf)
		}
		if err := writeSparse(f, buf, off); err != nil {
			return buf, err
		}
		off += int64(len(buf))
	}
	if uint64(off) != e.Size || !one && manifest.Digest(whole.Sum(nil)) != e.Digest {
		return buf, fmt.Errorf("content is %d bytes with digest %x, want %d bytes with %s", off, whole.Sum(nil), e.Size, e.Digest)
	}
	// Trailing zeros were skipped, not written: the size comes from here.
	if err := f.Truncate(off); err != nil {
		return buf, err
	}
	if err := setFileMeta(fd, e); err != nil {
		return buf, err
	}
	if err := f.Sync(); err != nil {
		return buf, fmt.Errorf("fsync: %w", err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		return buf, fmt.Errorf("rename: %w", err)
	}
	renamed = true
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return buf, err
	}
	a.written.Add(1)
	return buf, a.j.finished(e.Path, st.Ino, st.Ctim.Nano())
}

// piece reads one piece into buf and checks it: from the tree when the
// plan says so and the bytes are right there, otherwise from the fetcher.
func (a *applier) piece(ctx context.Context, pc Piece, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(pc.Size))[:pc.Size]
	if pc.From != "" {
		if a.readLocal(pc, buf) {
			a.copiedBytes.Add(pc.Size)
			return buf, nil
		}
		a.fallbacks.Add(1)
	}
	rc, err := a.fetcher.Open(ctx, pc.Digest, pc.Size)
	if err != nil {
		return buf, fmt.Errorf("fetch %s: %w", pc.Digest, err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, buf); err != nil {
		return buf, fmt.Errorf("fetch %s: %w", pc.Digest, err)
	}
	if n, _ := rc.Read(make([]byte, 1)); n != 0 {
		return buf, fmt.Errorf("fetch %s: more than %d bytes", pc.Digest, pc.Size)
	}
	if manifest.Sum(buf) != pc.Digest {
		return buf, fmt.Errorf("fetch %s: content has digest %s", pc.Digest, manifest.Sum(buf))
	}
	a.fetched.Add(1)
	a.fetchedBytes.Add(pc.Size)
	return buf, nil
}

// readLocal reads a piece from a file in the tree, never following a
// symlink, and reports whether the bytes have the piece's digest.
func (a *applier) readLocal(pc Piece, buf []byte) bool {
	dirfd, name, err := a.t.parent(pc.From)
	if err != nil {
		return false
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), pc.From)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	if _, err := f.ReadAt(buf, pc.Offset); err != nil {
		return false
	}
	return manifest.Sum(buf) == pc.Digest
}

// sparseBlock is the granularity of holes: an all-zero block of this size
// is skipped, not written, so sparse files stay sparse.
const sparseBlock = 4096

func writeSparse(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		n := min(len(b), sparseBlock)
		// Align blocks to the file so holes fall on filesystem blocks.
		if r := int((off) % sparseBlock); r != 0 {
			n = min(len(b), sparseBlock-r)
		}
		if !allZero(b[:n]) {
			if _, err := f.WriteAt(b[:n], off); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// setFileMeta sets a new file's owner, mode, xattrs and mtime through its
// descriptor, in the order setMetaAt explains.
func setFileMeta(fd int, e *manifest.Entry) error {
	if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, e.Mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(e.Xattrs)) {
		if err := unix.Fsetxattr(fd, name, e.Xattrs[name], 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.MTime), unix.NsecToTimespec(e.MTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// checkApplied reads back every path the plan made, replaced or adjusted,
// every directory it set last (with the root when the journal was made in
// it), and every path it removed, and returns an error naming the first
// that differs from the manifest, compared as Plan compares with
// VerifyNever: content was checked against its digest as it was written.
// Reading back only these, not the whole tree, halves the cost of a small
// update; the rest of the tree is as Plan just found it.
func checkApplied(t *tree, p *SyncPlan, root bool) error {
	links := map[string]int{}
	for i := range p.Want.Entries {
		if e := &p.Want.Entries[i]; e.Type == manifest.TypeHardlink {
			links[e.LinkTarget]++
		}
	}
	var entries []*manifest.Entry
	seen := map[string]bool{}
	add := func(e *manifest.Entry) {
		if !seen[e.Path] {
			seen[e.Path] = true
			entries = append(entries, e)
		}
	}
	for _, list := range [][]Item{p.Create, p.Replace, p.Meta} {
		for i := range list {
			add(list[i].Entry)
		}
	}
	for _, e := range p.dirs {
		add(e)
	}
	if root {
		add(&p.Want.Entries[0])
	}
	for _, r := range p.Remove {
		if seen[r] {
			continue // its type changed: made again, checked above
		}
		if _, err := lookup(t, r); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%q: still there after removing it (%v)", r, err)
		}
	}
	for _, e := range entries {
		f, err := lookup(t, e.Path)
		if err != nil {
			return fmt.Errorf("%q: %w", e.Path, err)
		}
		if w, err := differs(t, e, f, links); err != nil || w != 0 {
			return fmt.Errorf("%q: %s differs (%v)", e.Path, w, err)
		}
	}
	return nil
}

// lookup reads what is at manifest path p, never following a symlink.
func lookup(t *tree, p string) (*found, error) {
	var st unix.Stat_t
	if p == "." {
		if err := unix.Fstat(t.fd, &st); err != nil {
			return nil, err
		}
		return (&planner{}).record(t.fd, "", ".", &st)
	}
	dirfd, name, err := t.parent(p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	return (&planner{}).record(dirfd, name, p, &st)
}

// differs says what of e the found f lacks, as Plan's decide would see it
// with VerifyNever; links counts the hardlink entries naming each file.
func differs(t *tree, e *manifest.Entry, f *found, links map[string]int) (manifest.What, error) {
	if e.Type == manifest.TypeHardlink {
		target, err := lookup(t, e.LinkTarget)
		if err != nil {
			return 0, err
		}
		if f.typ != manifest.TypeFile || target.ino != f.ino {
			return manifest.ChangedLink, nil
		}
		return 0, nil
	}
	if f.typ != e.Type {
		return manifest.ChangedType, nil
	}
	w := metaDiff(e, f)
	switch e.Type {
	case manifest.TypeFile:
		if f.size != e.Size {
			w |= manifest.ChangedContent
		}
		if f.nlink != uint64(1+links[e.Path]) {
			w |= manifest.ChangedLink
		}
	case manifest.TypeSymlink:
		if f.link != e.LinkTarget {
			w |= manifest.ChangedLink
		}
	case manifest.TypeChar, manifest.TypeBlock:
		if f.major != e.DevMajor || f.minor != e.DevMinor {
			w |= manifest.ChangedDevice
		}
	}
	return w, nil
}
