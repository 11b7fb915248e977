// Package tarcheck holds the checks an image import applies to every tar
// entry before it writes anything: an archive that could write outside the
// image root, say one path twice, or end early is refused, naming the entry.
//
// The checks are pure: a Checker sees headers, never the filesystem. Paths
// are judged lexically, which is sound because an import never follows a
// symlink while writing, and entries beneath a symlink are refused.
package tarcheck

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Linux limits a name must meet so the import can create it.
const (
	MaxPathLen    = 4096 // PATH_MAX, for names and link targets
	MaxSegmentLen = 255  // NAME_MAX, for one path element
)

// Error is a kind of refusal, constant so no package state can change it.
type Error string

func (e Error) Error() string { return string(e) }

// Errors a Checker or Verify wraps, mostly in an *EntryError; test with
// errors.Is.
const (
	ErrEmpty       Error = "empty name"
	ErrAbsolute    Error = "absolute path"
	ErrEscape      Error = "path has a \"..\" element"
	ErrControl     Error = "name has a NUL or control character"
	ErrTooLong     Error = "name too long"
	ErrDuplicate   Error = "duplicate path"
	ErrParent      Error = "parent is not a directory"
	ErrLinkTarget  Error = "bad link target"
	ErrType        Error = "unsupported entry type"
	ErrSize        Error = "bad size"
	ErrRange       Error = "id or device number out of range"
	ErrTooMany     Error = "too many entries"
	ErrTruncated   Error = "archive is truncated"
	ErrNoEntries   Error = "archive has no entries"
	ErrCompression Error = "unsupported compression"
)

// EntryError is a refused entry: its position in the archive (from 0) and
// its name as the archive spells it.
type EntryError struct {
	Index int
	Name  string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("tar entry %d %q: %v", e.Index, e.Name, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Limits bound what one archive may hold, and so the memory and time its
// checks take.
type Limits struct {
	MaxEntries   int   // entries in the archive
	MaxEntrySize int64 // bytes of one file's contents
}

// DefaultLimits returns the limits for real images: 16 Mi entries (the
// manifest's limit) and 1 TiB per file.
func DefaultLimits() Limits { return Limits{MaxEntries: 1 << 24, MaxEntrySize: 1 << 40} }

// kind is what a path is, as far as later entries care.
type kind uint8

const (
	kindImpliedDir kind = iota + 1 // parent of an entry, with no entry itself
	kindDir
	kindFile  // regular file or hardlink to one: a valid hardlink target
	kindOther // symlink, device, fifo: nothing may go beneath it
)

type seen struct {
	kind  kind
	index int      // entry that made or implied the path
	meta  [32]byte // directories: digest of their metadata, see dirMeta
}

// Checker checks the headers of one archive, in order. After it returns an
// error the archive is refused and the Checker must not be used further.
type Checker struct {
	lim   Limits
	next  int
	paths map[string]seen // cleaned path → what it is
}

// NewChecker returns a Checker for an archive with limits lim.
func NewChecker(lim Limits) *Checker {
	return &Checker{lim: lim, paths: map[string]seen{".": {kind: kindImpliedDir, index: -1}}}
}

// Check checks the next header of the archive and remembers its path.
//
// Decisions beyond the obvious: any ".." element in a name or hardlink target
// is refused, even one that stays inside, because no tar writer emits one.
// A directory may repeat only with identical mode, owner, mtime and xattrs
// (tar -c of overlapping arguments does that); any other repeat is refused
// because the result would depend on entry order. Absolute symlink targets
// are normal in an image (/usr/bin/python3) and mean the image root, so they
// are allowed; a relative target that climbs above the root is refused.
func (c *Checker) Check(h *tar.Header) error {
	i := c.next
	c.next++
	if err := c.check(i, h); err != nil {
		return &EntryError{Index: i, Name: h.Name, Err: err}
	}
	return nil
}

func (c *Checker) check(i int, h *tar.Header) error {
	if i >= c.lim.MaxEntries {
		return fmt.Errorf("%w: limit %d", ErrTooMany, c.lim.MaxEntries)
	}
	p, err := CleanPath(h.Name)
	if err != nil {
		return err
	}
	k, err := kindOf(h)
	if err != nil {
		return err
	}
	if err := c.checkFields(h); err != nil {
		return err
	}
	if p == "." && k != kindDir {
		return fmt.Errorf("%w: the root must be a directory", ErrType)
	}
	implied, err := c.checkParents(p)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		err = checkSymlink(p, h.Linkname)
	case tar.TypeLink:
		err = c.checkHardlink(p, h.Linkname)
	}
	if err != nil {
		return err
	}
	now := seen{kind: k, index: i}
	if k == kindDir {
		now.meta = dirMeta(h)
	}
	if prev, ok := c.paths[p]; ok {
		switch {
		case prev.kind == kindImpliedDir && k == kindDir:
		case prev.kind == kindDir && k == kindDir && prev.meta == now.meta:
			now.index = prev.index
		case prev.kind == kindImpliedDir:
			return fmt.Errorf("%w: entry %d needs %q to be a directory", ErrDuplicate, prev.index, p)
		default:
			return fmt.Errorf("%w: %q is also entry %d", ErrDuplicate, p, prev.index)
		}
	}
	for _, d := range implied {
		c.paths[d] = seen{kind: kindImpliedDir, index: i}
	}
	c.paths[p] = now
	return nil
}

// CleanPath returns name as a manifest path: "." for the root, else its
// elements joined by "/" without "." or empty elements ("./usr/" is "usr").
// It refuses what Check refuses about a name on its own.
func CleanPath(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if name[0] == '/' {
		return "", ErrAbsolute
	}
	var elems []string
	for e := range strings.SplitSeq(name, "/") {
		switch {
		case e == "" || e == ".":
			continue
		case e == "..":
			return "", ErrEscape
		case len(e) > MaxSegmentLen:
			return "", fmt.Errorf("%w: element of %d bytes, limit %d", ErrTooLong, len(e), MaxSegmentLen)
		}
		elems = append(elems, e)
	}
	if len(elems) == 0 {
		return ".", nil
	}
	return strings.Join(elems, "/"), nil
}

// checkName checks what names and link targets share: not empty, not too
// long, no control characters.
func checkName(s string) error {
	switch {
	case s == "":
		return ErrEmpty
	case len(s) > MaxPathLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLong, len(s), MaxPathLen)
	}
	for j := 0; j < len(s); j++ {
		if s[j] < 0x20 || s[j] == 0x7f {
			return fmt.Errorf("%w: byte %#02x at %d", ErrControl, s[j], j)
		}
	}
	return nil
}

func kindOf(h *tar.Header) (kind, error) {
	switch h.Typeflag {
	// archive/tar expands GNU sparse files, so they read as regular files.
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeLink:
		return kindFile, nil
	case tar.TypeDir:
		return kindDir, nil
	case tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return kindOther, nil
	}
	return 0, fmt.Errorf("%w: type flag %q", ErrType, h.Typeflag)
}

// checkFields checks the numbers against what the manifest stores (uint32
// ids and device numbers) and the size against the limits.
func (c *Checker) checkFields(h *tar.Header) error {
	if h.Size < 0 || h.Size > c.lim.MaxEntrySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrSize, h.Size, c.lim.MaxEntrySize)
	}
	outside := func(v int64) bool { return v < 0 || v > math.MaxUint32 }
	if outside(int64(h.Uid)) || outside(int64(h.Gid)) {
		return fmt.Errorf("%w: uid %d gid %d", ErrRange, h.Uid, h.Gid)
	}
	if (h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock) && (outside(h.Devmajor) || outside(h.Devminor)) {
		return fmt.Errorf("%w: device %d,%d", ErrRange, h.Devmajor, h.Devminor)
	}
	return nil
}

// checkParents refuses p if one of its parents is something other than a
// directory, since writing p would then go through a symlink or fail, and
// returns the parents not seen so far, which p implies are directories.
func (c *Checker) checkParents(p string) ([]string, error) {
	var implied []string
	for j := 0; j < len(p); j++ {
		if p[j] != '/' {
			continue
		}
		dir := p[:j]
		prev, ok := c.paths[dir]
		switch {
		case !ok:
			implied = append(implied, dir)
		case prev.kind != kindDir && prev.kind != kindImpliedDir:
			return nil, fmt.Errorf("%w: %q is entry %d", ErrParent, dir, prev.index)
		}
	}
	return implied, nil
}

// checkSymlink refuses a relative target that, taken from the link's
// directory, climbs above the root. Absolute targets mean the image root.
func checkSymlink(p, target string) error {
	if err := checkName(target); err != nil {
		return fmt.Errorf("%w: %w", ErrLinkTarget, err)
	}
	if target[0] == '/' {
		return nil
	}
	depth := strings.Count(p, "/") // elements of the link's directory
	for e := range strings.SplitSeq(target, "/") {
		switch e {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return fmt.Errorf("%w: %q climbs above the root", ErrLinkTarget, target)
			}
		default:
			depth++
		}
	}
	return nil
}

// checkHardlink requires the target to be an earlier regular file: a link to
// anything else, or to a name not yet written, cannot be created in order.
func (c *Checker) checkHardlink(p, target string) error {
	t, err := CleanPath(target)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkTarget, err)
	}
	if t == p {
		return fmt.Errorf("%w: hardlink to itself", ErrLinkTarget)
	}
	prev, ok := c.paths[t]
	switch {
	case !ok:
		return fmt.Errorf("%w: hardlink to %q, which no earlier entry is", ErrLinkTarget, t)
	case prev.kind != kindFile:
		return fmt.Errorf("%w: hardlink to %q (entry %d), which is not a regular file", ErrLinkTarget, t, prev.index)
	}
	return nil
}

// dirMeta digests what a repeated directory entry must keep identical.
func dirMeta(h *tar.Header) [32]byte {
	d := sha256.New()
	fmt.Fprintf(d, "%o %d %d %d\x00", h.Mode, h.Uid, h.Gid, h.ModTime.UnixNano())
	keys := make([]string, 0, len(h.PAXRecords))
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") || strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(d, "%s\x00%s\x00", k, h.PAXRecords[k])
	}
	return [32]byte(d.Sum(nil))
}
