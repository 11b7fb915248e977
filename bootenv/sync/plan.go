// Package sync makes a directory tree match an image manifest: Plan compares
// the tree with the manifest and lists what must change, Apply fetches only
// the content that is missing and writes it, and a journal under the root
// lets an interrupted run resume and tells the pivot whether the root is
// complete.
//
// Plan and Apply never follow a symlink of the existing tree and never leave
// the root: paths are resolved with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) and every entry is read and changed relative to its
// parent directory.
package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/chunk"
	"github.com/herd-hpc/herd/functions/image/manifest"
)

// JournalDir is the directory under the root where Apply keeps its journal
// and completion marker. Plan and Apply never compare or remove it; a scan
// of the synced root for any other purpose should skip it.
const JournalDir = ".herd-sync"

// Verify says when Plan reads a file's content to compare it.
type Verify uint8

// Verification policies.
const (
	// VerifyUnsure hashes a file only when the fast path cannot decide: same
	// size but another mtime, mode or owner. The default.
	VerifyUnsure Verify = iota
	// VerifyNever never hashes: a file of the right size and mtime is taken
	// as equal, one with another mtime is rewritten.
	VerifyNever
	// VerifyAlways hashes every file, except those this sync wrote itself
	// and nobody touched since (the journal says so).
	VerifyAlways
)

func (v Verify) String() string {
	switch v {
	case VerifyUnsure:
		return "unsure"
	case VerifyNever:
		return "never"
	case VerifyAlways:
		return "always"
	}
	return fmt.Sprintf("Verify(%d)", uint8(v))
}

// ParseVerify reads a policy written as never, unsure or always.
func ParseVerify(s string) (Verify, error) {
	for _, v := range []Verify{VerifyNever, VerifyUnsure, VerifyAlways} {
		if s == v.String() {
			return v, nil
		}
	}
	return 0, fmt.Errorf("verify policy %q: want never, unsure or always", s)
}

// Policy says how carefully Plan compares and what it leaves alone.
type Policy struct {
	Verify Verify
	// Preserve lists globs of absolute paths that are never removed even
	// though the image lacks them, such as "/var/log/**", "/home/**" or
	// "/etc/ssh/ssh_host_*". "**" matches any number of path elements. A
	// path the image has is still made as the image says: the image wins.
	Preserve []string
	// Owned lists globs of absolute paths whose regular files the node's
	// config plugins write (/etc/hosts, /etc/hostname): where one exists as
	// a regular file it is left as it is, even though the image has it, so
	// the sync does not undo the plugin's file on every boot only for the
	// plugin to write it again. A missing one is made as the image says.
	Owned []string
}

// Piece is one part of a file's new content and where it comes from.
type Piece struct {
	Digest manifest.Digest
	Size   uint64
	// From is empty to fetch the piece, or a manifest path whose bytes at
	// Offset are expected to have Digest: the old version of the same file,
	// or another file with the same content. Apply checks the digest and
	// fetches if the local bytes are not what was expected.
	From   string
	Offset int64
	// After says From is itself written by this plan, so it is read only
	// once that write is done.
	After bool
}

// Item is one manifest entry that Apply makes, rewrites or adjusts.
type Item struct {
	Entry *manifest.Entry // points into SyncPlan.Want
	// What differs from the entry found; zero for a path that is new.
	What   manifest.What
	Pieces []Piece // a file's content, in order; nil for other types
}

// SyncPlan is what Apply must do to make a tree match a manifest.
type SyncPlan struct {
	Target manifest.Digest    // digest of Want's encoding
	Want   *manifest.Manifest // the manifest planned for
	Policy Policy
	// Remove lists found paths to remove with everything below them:
	// paths the image lacks, and paths whose type changes (these are made
	// again in Create).
	Remove []string
	// Create lists paths to make, in manifest order: missing ones and
	// those of a changed type.
	Create []Item
	// Replace lists existing paths made anew in place: files whose content
	// changes (or whose hardlink set must be split), symlinks whose target
	// changes, devices whose numbers change, hardlinks to re-link.
	Replace []Item
	// Meta lists existing paths whose owner, mode, xattrs or mtime only
	// change.
	Meta []Item
	// Kept lists paths the image lacks that Policy.Preserve keeps, and
	// files the image has that Policy.Owned leaves to the plugins.
	Kept []string
	// FetchBlobs and FetchBytes count the pieces to fetch.
	FetchBlobs int
	FetchBytes uint64
	// Hashed and HashedBytes count the files Plan read to compare.
	Hashed      int
	HashedBytes uint64
	// dirs are directories whose metadata Apply sets last, deepest first:
	// created ones, changed ones and parents of every change.
	dirs []*manifest.Entry
}

// Empty reports whether the tree already matches the manifest.
func (p *SyncPlan) Empty() bool {
	return len(p.Remove) == 0 && len(p.Create) == 0 && len(p.Replace) == 0 && len(p.Meta) == 0
}

// Summary is one line of counts, for logs and the console.
func (p *SyncPlan) Summary() string {
	if p.Empty() {
		return fmt.Sprintf("sync %s: nothing to do (hashed %d files)", p.Target, p.Hashed)
	}
	return fmt.Sprintf("sync %s: remove %d, create %d, replace %d, metadata %d; fetch %d blobs (%d bytes); hashed %d files",
		p.Target, len(p.Remove), len(p.Create), len(p.Replace), len(p.Meta), p.FetchBlobs, p.FetchBytes, p.Hashed)
}

// String prints the plan for a human: the summary, then one path a line,
// "-" removed, "+" created, "~" replaced, "m" metadata only.
func (p *SyncPlan) String() string {
	var b strings.Builder
	b.WriteString(p.Summary())
	b.WriteByte('\n')
	for _, r := range p.Remove {
		fmt.Fprintf(&b, "- %q\n", r)
	}
	for _, it := range p.Create {
		fmt.Fprintf(&b, "+ %q (%s%s)\n", it.Entry.Path, it.Entry.Type, sizeNote(it))
	}
	for _, it := range p.Replace {
		fmt.Fprintf(&b, "~ %q (%s%s)\n", it.Entry.Path, it.What, sizeNote(it))
	}
	for _, it := range p.Meta {
		fmt.Fprintf(&b, "m %q (%s)\n", it.Entry.Path, it.What)
	}
	return b.String()
}

func sizeNote(it Item) string {
	if it.Entry.Type != manifest.TypeFile {
		return ""
	}
	var fetch uint64
	seen := map[manifest.Digest]bool{}
	for _, pc := range it.Pieces {
		if pc.From == "" && !seen[pc.Digest] {
			fetch += pc.Size
		}
		seen[pc.Digest] = true
	}
	return fmt.Sprintf(", %d bytes, %d to fetch", it.Entry.Size, fetch)
}

// found is what the walk saw at one path.
type found struct {
	typ          manifest.Type
	mode         uint32
	uid, gid     uint32
	size         uint64
	mtime, ctime int64
	ino, nlink   uint64
	major, minor uint32
	link         string
	xattrs       map[string][]byte
}

// Plan compares the tree under root with want and returns what Apply must
// do. It reads the tree (and, as policy says, file contents) but changes
// nothing. root must exist and be a directory.
func Plan(ctx context.Context, want *manifest.Manifest, root string, policy Policy) (SyncPlan, error) {
	p := SyncPlan{Want: want, Policy: policy}
	enc, err := manifest.Encode(want)
	if err != nil {
		return p, fmt.Errorf("plan sync of %s: %w", root, err)
	}
	p.Target = manifest.Sum(enc)
	if err := checkShape(want); err != nil {
		return p, fmt.Errorf("plan sync of %s to %s: %w", root, p.Target, err)
	}
	keep, err := newPreserver(policy.Preserve)
	if err != nil {
		return p, fmt.Errorf("plan sync of %s: %w", root, err)
	}
	owned, err := newPreserver(policy.Owned)
	if err != nil {
		return p, fmt.Errorf("plan sync of %s: %w", root, err)
	}
	t, err := openTree(root)
	if err != nil {
		return p, fmt.Errorf("plan sync: %w", err)
	}
	defer t.close()
	pl := &planner{
		p: &p, t: t, keep: keep, owned: owned, ctx: ctx,
		want:  make(map[string]*manifest.Entry, len(want.Entries)),
		found: make(map[string]*found, len(want.Entries)),
		links: map[string]int{},
	}
	for i := range want.Entries {
		e := &want.Entries[i]
		pl.want[e.Path] = e
		if e.Type == manifest.TypeHardlink {
			pl.links[e.LinkTarget]++
		}
	}
	pl.journal = readJournal(t, p.Target)
	if err := pl.walkRoot(); err != nil {
		return p, fmt.Errorf("plan sync of %s: %w", root, err)
	}
	if err := pl.decide(); err != nil {
		return p, fmt.Errorf("plan sync of %s: %w", root, err)
	}
	return p, nil
}

// checkShape refuses manifests Apply could not build: every path's parent
// must be a directory of the manifest, and the journal's name is reserved.
func checkShape(m *manifest.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if len(m.Entries) == 0 || m.Entries[0].Path != "." {
		return fmt.Errorf("manifest has no root directory")
	}
	dirs := map[string]bool{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Path == JournalDir || strings.HasPrefix(e.Path, JournalDir+"/") {
			return fmt.Errorf("%q: the path is reserved for the sync journal", e.Path)
		}
		if e.Path != "." && !dirs[path.Dir(e.Path)] {
			return fmt.Errorf("%q: parent is not a directory of the manifest", e.Path)
		}
		if e.Type == manifest.TypeDir {
			dirs[e.Path] = true
		}
	}
	return nil
}

type planner struct {
	ctx     context.Context
	p       *SyncPlan
	t       *tree
	keep    *preserver
	owned   *preserver
	want    map[string]*manifest.Entry
	found   map[string]*found
	links   map[string]int // file path → hardlink entries naming it
	journal map[string]journalMark
}

// walkOut is what one walker found, each list in the order it walked.
type walkOut struct {
	paths  []string
	found  []*found
	remove []string
	kept   []string
}

// walkRoot walks the tree, a subtree per walker, GOMAXPROCS×2 walkers at
// most: a walk is mostly system calls (lstat, listxattr, getdents) and
// waits on the disk when the caches are cold, so more walkers than cores
// still pay. The lists come out in the order one walker would make them.
func (pl *planner) walkRoot() error {
	fd, err := unix.Openat(pl.t.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), ".")
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	f, err := pl.record(fd, "", ".", &st)
	if err != nil {
		return err
	}
	pl.found["."] = f
	ctx, cancel := context.WithCancelCause(pl.ctx)
	defer cancel(nil)
	w := &walker{pl: pl, ctx: ctx, cancel: cancel, spare: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
	root := w.out()
	if err := w.walkDir(d, ".", root); err != nil {
		cancel(err)
	}
	w.wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	for _, o := range w.outs {
		for i, p := range o.paths {
			pl.found[p] = o.found[i]
		}
		pl.p.Remove = append(pl.p.Remove, o.remove...)
		pl.p.Kept = append(pl.p.Kept, o.kept...)
	}
	slices.SortFunc(pl.p.Remove, compareWalked)
	slices.SortFunc(pl.p.Kept, compareWalked)
	return nil
}

// compareWalked orders paths as a walk of sorted directory listings
// meets them: element by element ('/' sorts before any byte of a name).
func compareWalked(a, b string) int {
	for {
		ea, ra, _ := strings.Cut(a, "/")
		eb, rb, _ := strings.Cut(b, "/")
		if c := strings.Compare(ea, eb); c != 0 {
			return c
		}
		if ra == "" || rb == "" {
			return strings.Compare(ra, rb)
		}
		a, b = ra, rb
	}
}

// walker runs the walk's goroutines; each walks a subtree into an out of
// its own.
type walker struct {
	pl     *planner
	ctx    context.Context
	cancel context.CancelCauseFunc
	spare  chan struct{} // a token per walker that may start
	wg     sync.WaitGroup
	mu     sync.Mutex
	outs   []*walkOut
}

func (w *walker) out() *walkOut {
	o := &walkOut{}
	w.mu.Lock()
	w.outs = append(w.outs, o)
	w.mu.Unlock()
	return o
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// walkDir records the entries of the open directory d (manifest path rel)
// that the manifest names, lists the others for removal or keeping, and
// descends only into directories the manifest also has as directories:
// in another goroutine if one may start, else itself.
func (w *walker) walkDir(d *os.File, rel string, out *walkOut) error {
	pl := w.pl
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%q: read directory: %w", rel, err)
	}
	slices.Sort(names)
	dirfd := int(d.Fd())
	for _, name := range names {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		p := join(rel, name)
		if rel == "." && name == JournalDir {
			continue
		}
		if strings.HasPrefix(name, tempPrefix) {
			out.remove = append(out.remove, p) // left by a killed Apply
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%q: lstat: %w", p, err)
		}
		e, ok := pl.want[p]
		if !ok {
			if err := pl.extra(dirfd, name, p, &st, out); err != nil {
				return err
			}
			continue
		}
		f, err := pl.record(dirfd, name, p, &st)
		if err != nil {
			return err
		}
		out.paths = append(out.paths, p)
		out.found = append(out.found, f)
		if f.typ != manifest.TypeDir || e.Type != manifest.TypeDir {
			continue
		}
		select {
		case w.spare <- struct{}{}:
			sub, err := openSubdir(dirfd, name, p)
			if err != nil {
				<-w.spare
				return err
			}
			o := w.out()
			w.wg.Go(func() {
				defer func() { <-w.spare }()
				defer sub.Close()
				if err := w.walkDir(sub, p, o); err != nil {
					w.cancel(err)
				}
			})
		default:
			if err := pl.descend(dirfd, name, p, func(sub *os.File) error { return w.walkDir(sub, p, out) }); err != nil {
				return err
			}
		}
	}
	return nil
}

func openSubdir(dirfd int, name, p string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%q: open directory: %w", p, err)
	}
	return os.NewFile(uintptr(fd), p), nil
}

func (pl *planner) descend(dirfd int, name, p string, walk func(*os.File) error) error {
	sub, err := openSubdir(dirfd, name, p)
	if err != nil {
		return err
	}
	defer sub.Close()
	return walk(sub)
}

// extra handles a found path the manifest lacks: kept if preserved, walked
// if something below it may be, removed otherwise.
func (pl *planner) extra(dirfd int, name, p string, st *unix.Stat_t, out *walkOut) error {
	if pl.keep.keep(p) {
		out.kept = append(out.kept, p)
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || !pl.keep.mayKeepBelow(p) {
		out.remove = append(out.remove, p)
		return nil
	}
	removeBefore, keptBefore := len(out.remove), len(out.kept)
	err := pl.descend(dirfd, name, p, func(sub *os.File) error {
		names, err := sub.Readdirnames(-1)
		if err != nil {
			return fmt.Errorf("%q: read directory: %w", p, err)
		}
		slices.Sort(names)
		for _, n := range names {
			var cst unix.Stat_t
			if err := unix.Fstatat(int(sub.Fd()), n, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("%q: lstat: %w", join(p, n), err)
			}
			if err := pl.extra(int(sub.Fd()), n, join(p, n), &cst, out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(out.kept) == keptBefore {
		// Nothing below is kept after all: remove the directory whole.
		out.remove = append(out.remove[:removeBefore], p)
	}
	return nil
}

func (pl *planner) record(dirfd int, name, p string, st *unix.Stat_t) (*found, error) {
	f := &found{
		typ:   typeOf(st.Mode),
		mode:  st.Mode & manifest.PermMask,
		uid:   st.Uid,
		gid:   st.Gid,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		nlink: uint64(st.Nlink),
	}
	switch f.typ {
	case manifest.TypeFile:
		f.size = uint64(st.Size)
	case manifest.TypeSymlink:
		var err error
		if f.link, err = readlinkAt(dirfd, name); err != nil {
			return nil, fmt.Errorf("%q: readlink: %w", p, err)
		}
	case manifest.TypeChar, manifest.TypeBlock:
		f.major, f.minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	pp := "/proc/self/fd/" + fmt.Sprint(dirfd)
	if name != "" {
		pp = procPath(dirfd, name)
	}
	var err error
	if f.xattrs, err = readXattrs(pp); err != nil {
		return nil, fmt.Errorf("%q: %w", p, err)
	}
	return f, nil
}

// metaDiff compares what Meta steps fix.
func metaDiff(e *manifest.Entry, f *found) manifest.What {
	var w manifest.What
	if e.Type != manifest.TypeSymlink && e.Mode != f.mode {
		w |= manifest.ChangedMode
	}
	if e.UID != f.uid || e.GID != f.gid {
		w |= manifest.ChangedOwner
	}
	if e.MTime != f.mtime {
		w |= manifest.ChangedMTime
	}
	if len(e.Xattrs) != len(f.xattrs) || !maps.EqualFunc(e.Xattrs, f.xattrs, func(a, b []byte) bool { return string(a) == string(b) }) {
		w |= manifest.ChangedXattrs
	}
	return w
}

// fileState is Plan's view of one wanted file that exists as a file.
type fileState struct {
	e       *manifest.Entry
	f       *found
	meta    manifest.What
	hash    bool // content must be read to decide
	changed bool // content differs (known, or after hashing)
	split   bool // its hardlink set differs from the manifest's: rewrite it
	// old chunks of the found file, by digest: offsets to reuse.
	oldChunks map[manifest.Digest]int64
}

func (pl *planner) decide() error {
	p := pl.p
	var files []*fileState
	rewritten := map[string]bool{}
	for i := range p.Want.Entries {
		e := &p.Want.Entries[i]
		if e.Type == manifest.TypeHardlink {
			continue
		}
		f := pl.found[e.Path]
		switch {
		case f == nil:
			p.Create = append(p.Create, Item{Entry: e})
			rewritten[e.Path] = true
			continue
		case f.typ != e.Type:
			p.Remove = append(p.Remove, e.Path)
			p.Create = append(p.Create, Item{Entry: e, What: manifest.ChangedType})
			rewritten[e.Path] = true
			continue
		}
		if e.Type == manifest.TypeFile && pl.links[e.Path] == 0 && pl.owned.keep(e.Path) {
			p.Kept = append(p.Kept, e.Path)
			continue
		}
		meta := metaDiff(e, f)
		switch e.Type {
		case manifest.TypeFile:
			files = append(files, pl.fileState(e, f, meta))
			continue
		case manifest.TypeSymlink:
			if e.LinkTarget != f.link {
				p.Replace = append(p.Replace, Item{Entry: e, What: manifest.ChangedLink | meta})
				continue
			}
		case manifest.TypeChar, manifest.TypeBlock:
			if e.DevMajor != f.major || e.DevMinor != f.minor {
				p.Replace = append(p.Replace, Item{Entry: e, What: manifest.ChangedDevice | meta})
				continue
			}
		}
		if meta != 0 {
			p.Meta = append(p.Meta, Item{Entry: e, What: meta})
		}
	}
	if err := pl.hashFiles(files); err != nil {
		return err
	}
	pl.fileItems(files, rewritten)
	pl.hardlinks(rewritten)
	pl.collectDirs()
	return nil
}

func (pl *planner) fileState(e *manifest.Entry, f *found, meta manifest.What) *fileState {
	s := &fileState{e: e, f: f, meta: meta}
	s.split = f.nlink != uint64(1+pl.links[e.Path])
	mark, journaled := pl.journal[e.Path]
	trusted := journaled && mark.ino == f.ino && mark.ctime == f.ctime
	unsure := meta&(manifest.ChangedMTime|manifest.ChangedMode|manifest.ChangedOwner) != 0
	switch {
	case f.size != e.Size:
		s.changed = true
	case trusted:
	case pl.p.Policy.Verify == VerifyAlways:
		s.hash = true
	case !unsure:
	case pl.p.Policy.Verify == VerifyUnsure:
		s.hash = true
	case meta&manifest.ChangedMTime != 0: // VerifyNever
		s.changed = true
	}
	// A chunked file that changes is compared chunk by chunk so only the
	// chunks it lacks are fetched.
	if s.changed && len(e.Chunks) > 0 && f.size > 0 {
		s.hash = true
	}
	return s
}

// hashFiles reads the files that need it, GOMAXPROCS at a time.
func (pl *planner) hashFiles(files []*fileState) error {
	ctx, cancel := context.WithCancelCause(pl.ctx)
	defer cancel(nil)
	jobs := make(chan *fileState)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for s := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := pl.hashFile(s); err != nil {
					cancel(fmt.Errorf("%q: %w", s.e.Path, err))
					continue
				}
				mu.Lock()
				pl.p.Hashed++
				pl.p.HashedBytes += s.f.size
				mu.Unlock()
			}
		})
	}
	for _, s := range files {
		if s.hash {
			select {
			case jobs <- s:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// hashFile reads the found file: its digest decides whether it changed, and
// for a chunked wanted file its chunks say which pieces can be kept.
func (pl *planner) hashFile(s *fileState) error {
	dirfd, name, err := pl.t.parent(s.e.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), s.e.Path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != s.f.ino {
		return fmt.Errorf("replaced during the plan")
	}
	h := sha256.New()
	if len(s.e.Chunks) == 0 {
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("read: %w", err)
		}
	} else {
		c, err := chunk.NewChunker(io.TeeReader(f, h), chunk.DefaultParams())
		if err != nil {
			return err
		}
		s.oldChunks = map[manifest.Digest]int64{}
		for {
			ch, err := c.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			s.oldChunks[ch.Digest] = ch.Offset
		}
	}
	if manifest.Digest(h.Sum(nil)) != s.e.Digest || uint64(st.Size) != s.e.Size {
		s.changed = true
	}
	return nil
}

// fileItems turns the file states into items with their pieces. Content
// already in the tree (an unchanged file with the same digest, or one this
// plan writes first) is copied, not fetched again.
func (pl *planner) fileItems(files []*fileState, rewritten map[string]bool) {
	p := pl.p
	type source struct {
		path  string
		after bool
	}
	sources := map[manifest.Digest]source{}
	for _, s := range files {
		if !s.changed && len(s.e.Chunks) == 0 && s.e.Size > 0 {
			if _, ok := sources[s.e.Digest]; !ok {
				sources[s.e.Digest] = source{path: s.e.Path}
			}
		}
	}
	fetch := func(d manifest.Digest, size uint64) Piece {
		p.FetchBlobs++
		p.FetchBytes += size
		return Piece{Digest: d, Size: size}
	}
	pieces := func(e *manifest.Entry, old map[manifest.Digest]int64, self bool) []Piece {
		switch {
		case e.Size == 0:
			return nil
		case self:
			return []Piece{{Digest: e.Digest, Size: e.Size, From: e.Path}}
		case len(e.Chunks) > 0:
			ps := make([]Piece, len(e.Chunks))
			seen := map[manifest.Digest]bool{}
			for i, c := range e.Chunks {
				if off, ok := old[c.Digest]; ok {
					ps[i] = Piece{Digest: c.Digest, Size: c.Size, From: e.Path, Offset: off}
				} else if seen[c.Digest] {
					// Apply copies a repeated chunk (runs of zeros, often)
					// from where it already wrote it in the same file.
					ps[i] = Piece{Digest: c.Digest, Size: c.Size}
				} else {
					ps[i] = fetch(c.Digest, c.Size)
				}
				seen[c.Digest] = true
			}
			return ps
		}
		if src, ok := sources[e.Digest]; ok {
			return []Piece{{Digest: e.Digest, Size: e.Size, From: src.path, After: src.after}}
		}
		sources[e.Digest] = source{path: e.Path, after: true}
		return []Piece{fetch(e.Digest, e.Size)}
	}
	states := map[string]*fileState{}
	for _, s := range files {
		states[s.e.Path] = s
	}
	// Walk in manifest order so a copy's source is always an earlier path.
	for i := range p.Want.Entries {
		e := &p.Want.Entries[i]
		if e.Type != manifest.TypeFile {
			continue
		}
		s := states[e.Path]
		if s == nil { // created: pieces below
			continue
		}
		switch {
		case s.changed:
			p.Replace = append(p.Replace, Item{Entry: e, What: manifest.ChangedContent | s.meta, Pieces: pieces(e, s.oldChunks, false)})
			rewritten[e.Path] = true
		case s.split:
			p.Replace = append(p.Replace, Item{Entry: e, What: manifest.ChangedLink | s.meta, Pieces: pieces(e, nil, true)})
			rewritten[e.Path] = true
		case s.meta != 0:
			p.Meta = append(p.Meta, Item{Entry: e, What: s.meta})
		}
	}
	for i := range p.Create {
		it := &p.Create[i]
		if it.Entry.Type == manifest.TypeFile {
			it.Pieces = pieces(it.Entry, nil, false)
		}
	}
	slices.SortStableFunc(p.Replace, func(a, b Item) int { return manifest.ComparePaths(a.Entry.Path, b.Entry.Path) })
	slices.SortStableFunc(p.Meta, func(a, b Item) int { return manifest.ComparePaths(a.Entry.Path, b.Entry.Path) })
}

// hardlinks decides the hardlink entries once it is known which files are
// rewritten: a rewritten file is a new inode, so its links are made again.
func (pl *planner) hardlinks(rewritten map[string]bool) {
	p := pl.p
	for i := range p.Want.Entries {
		e := &p.Want.Entries[i]
		if e.Type != manifest.TypeHardlink {
			continue
		}
		f, ft := pl.found[e.Path], pl.found[e.LinkTarget]
		switch {
		case f == nil:
			p.Create = append(p.Create, Item{Entry: e})
		case f.typ != manifest.TypeFile:
			p.Remove = append(p.Remove, e.Path)
			p.Create = append(p.Create, Item{Entry: e, What: manifest.ChangedType})
		case rewritten[e.LinkTarget] || ft == nil || ft.ino != f.ino:
			p.Replace = append(p.Replace, Item{Entry: e, What: manifest.ChangedLink})
		}
	}
	slices.SortStableFunc(p.Create, func(a, b Item) int { return manifest.ComparePaths(a.Entry.Path, b.Entry.Path) })
	slices.SortStableFunc(p.Replace, func(a, b Item) int { return manifest.ComparePaths(a.Entry.Path, b.Entry.Path) })
}

// collectDirs lists the directories whose metadata Apply sets at the end:
// any change inside a directory moves its mtime.
func (pl *planner) collectDirs() {
	p := pl.p
	set := map[string]bool{}
	mark := func(q string) {
		if e, ok := pl.want[q]; ok && e.Type == manifest.TypeDir {
			set[q] = true
		}
	}
	for _, r := range p.Remove {
		mark(path.Dir(r))
	}
	for _, list := range [][]Item{p.Create, p.Replace, p.Meta} {
		for _, it := range list {
			if it.Entry.Path != "." {
				mark(path.Dir(it.Entry.Path))
			}
			mark(it.Entry.Path)
		}
	}
	for _, q := range slices.SortedFunc(maps.Keys(set), manifest.ComparePaths) {
		p.dirs = append(p.dirs, pl.want[q])
	}
	slices.Reverse(p.dirs)
}
