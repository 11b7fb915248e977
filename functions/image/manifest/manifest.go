// Package manifest defines an image version: an immutable, sorted list of
// filesystem entries with a canonical binary encoding, so equal manifests have
// equal bytes and therefore equal digests.
package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// FormatVersion is the only Manifest.Version this package encodes and decodes.
const FormatVersion = 1

// Limits the decoder enforces; they bound memory for hostile input and match
// Linux limits where there is one.
const (
	MaxPathLen       = 4096     // PATH_MAX
	MaxLinkTargetLen = 4096     // PATH_MAX
	MaxXattrNameLen  = 255      // XATTR_NAME_MAX
	MaxXattrValueLen = 64 << 10 // XATTR_SIZE_MAX
	MaxXattrs        = 1024     // per entry
	MaxEntries       = 1 << 24  // per manifest
	MaxChunks        = 1 << 24  // per file
	PermMask         = 0o7777   // Entry.Mode bits: rwx for all, setuid, setgid, sticky
	ModeSetuid       = 0o4000   // Entry.Mode set-user-ID bit
	ModeSetgid       = 0o2000   // Entry.Mode set-group-ID bit
	ModeSticky       = 0o1000   // Entry.Mode sticky bit
	rootPath         = "."      // the tree's top directory
)

// Type is the kind of a filesystem entry.
type Type uint8

// Entry types. The zero Type is invalid so a forgotten field is caught.
const (
	TypeFile     Type = iota + 1 // regular file; Size, Digest, optional Chunks
	TypeDir                      // directory
	TypeSymlink                  // symbolic link; LinkTarget is the link text
	TypeHardlink                 // another name of an earlier regular file; LinkTarget is that file's path
	TypeChar                     // character device; DevMajor, DevMinor
	TypeBlock                    // block device; DevMajor, DevMinor
	TypeFifo                     // named pipe
	TypeSocket                   // unix socket
	typeEnd
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFifo:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Chunk is one piece of a file stored as several blobs.
type Chunk struct {
	Digest Digest
	Size   uint64
}

// Entry is one path of an image.
//
// Mode holds Unix permission bits as chmod(2) and tar write them (0o7777:
// rwx, setuid 0o4000, setgid 0o2000, sticky 0o1000), not fs.FileMode, whose
// setuid/sticky bits sit elsewhere and whose type bits would duplicate Type.
//
// Fields that do not apply to the Type must be zero: Size, Digest and Chunks
// are for files; LinkTarget for symlinks and hardlinks; DevMajor/DevMinor for
// devices. A hardlink carries only Path and LinkTarget: its inode's metadata
// is the target's.
type Entry struct {
	Path       string // clean, relative, "/"-separated; "." is the root directory
	Type       Type
	Mode       uint32
	UID, GID   uint32
	Size       uint64
	MTime      int64   // nanoseconds since the Unix epoch
	Digest     Digest  // SHA-256 of the whole file content
	Chunks     []Chunk // optional split of the content; sizes add up to Size
	LinkTarget string
	DevMajor   uint32
	DevMinor   uint32
	Xattrs     map[string][]byte
}

// Manifest is an image version: entries sorted by ComparePaths, unique paths.
type Manifest struct {
	Version int
	Entries []Entry
}

// ComparePaths orders manifest paths: the root "." first, then byte order.
func ComparePaths(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == rootPath:
		return -1
	case b == rootPath:
		return 1
	}
	return strings.Compare(a, b)
}

// Sort puts the entries in canonical order.
func (m *Manifest) Sort() {
	slices.SortFunc(m.Entries, func(a, b Entry) int { return ComparePaths(a.Path, b.Path) })
}

// Validate checks everything the decoder checks; the error names the entry.
func (m *Manifest) Validate() error {
	if m.Version != FormatVersion {
		return fmt.Errorf("manifest version %d: want %d", m.Version, FormatVersion)
	}
	if len(m.Entries) > MaxEntries {
		return fmt.Errorf("manifest has %d entries: limit %d", len(m.Entries), MaxEntries)
	}
	v := newValidator(len(m.Entries))
	for i := range m.Entries {
		if err := v.check(i, &m.Entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// EntryError is a problem with one entry; Path is empty if it could not be read.
type EntryError struct {
	Index int
	Path  string
	Err   error
}

func (e *EntryError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("manifest entry %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("manifest entry %d %q: %v", e.Index, e.Path, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// validator checks entries in order; it remembers earlier types to resolve
// hardlink targets.
type validator struct {
	prev  string
	types map[string]Type
}

func newValidator(n int) *validator {
	return &validator{types: make(map[string]Type, n)}
}

func (v *validator) check(i int, e *Entry) error {
	if err := v.checkEntry(i, e); err != nil {
		return &EntryError{Index: i, Path: e.Path, Err: err}
	}
	v.prev = e.Path
	v.types[e.Path] = e.Type
	return nil
}

func (v *validator) checkEntry(i int, e *Entry) error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	if i > 0 {
		switch c := ComparePaths(v.prev, e.Path); {
		case c == 0:
			return fmt.Errorf("duplicate path")
		case c > 0:
			return fmt.Errorf("not sorted: follows %q", v.prev)
		}
	}
	if e.Path == rootPath && e.Type != TypeDir {
		return fmt.Errorf("root is a %s, want dir", e.Type)
	}
	if e.Type == 0 || e.Type >= typeEnd {
		return fmt.Errorf("unknown type %d", uint8(e.Type))
	}
	if e.Type == TypeHardlink {
		if !e.isBareHardlink() {
			return fmt.Errorf("hardlink has fields besides path and link target")
		}
		t, ok := v.types[e.LinkTarget]
		switch {
		case !ok:
			return fmt.Errorf("hardlink target %q missing (a target sorts before its links)", e.LinkTarget)
		case t != TypeFile:
			return fmt.Errorf("hardlink target %q is a %s, want file", e.LinkTarget, t)
		}
		return nil
	}
	if e.Mode&^PermMask != 0 {
		return fmt.Errorf("mode %#o has bits outside %#o", e.Mode, PermMask)
	}
	if e.Type != TypeFile && (e.Size != 0 || !e.Digest.IsZero() || len(e.Chunks) != 0) {
		return fmt.Errorf("%s has size, digest or chunks", e.Type)
	}
	if e.Type == TypeFile {
		if e.Digest.IsZero() {
			return fmt.Errorf("file has no digest")
		}
		if err := checkChunks(e.Chunks, e.Size); err != nil {
			return err
		}
	}
	if e.Type == TypeSymlink {
		if err := checkLinkTarget(e.LinkTarget); err != nil {
			return err
		}
	} else if e.LinkTarget != "" {
		return fmt.Errorf("%s has a link target", e.Type)
	}
	if e.Type != TypeChar && e.Type != TypeBlock && (e.DevMajor != 0 || e.DevMinor != 0) {
		return fmt.Errorf("%s has device numbers", e.Type)
	}
	if len(e.Xattrs) > MaxXattrs {
		return fmt.Errorf("%d xattrs: limit %d", len(e.Xattrs), MaxXattrs)
	}
	for name, val := range e.Xattrs {
		if err := checkXattr(name, val); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) isBareHardlink() bool {
	return e.Mode == 0 && e.UID == 0 && e.GID == 0 && e.Size == 0 && e.MTime == 0 &&
		e.Digest.IsZero() && len(e.Chunks) == 0 && e.DevMajor == 0 && e.DevMinor == 0 && len(e.Xattrs) == 0
}

func checkChunks(cs []Chunk, size uint64) error {
	if len(cs) == 0 {
		return nil
	}
	if len(cs) > MaxChunks {
		return fmt.Errorf("%d chunks: limit %d", len(cs), MaxChunks)
	}
	var sum uint64
	for j, c := range cs {
		if c.Size == 0 || c.Digest.IsZero() {
			return fmt.Errorf("chunk %d is empty or has no digest", j)
		}
		if sum+c.Size < sum {
			return fmt.Errorf("chunk sizes overflow")
		}
		sum += c.Size
	}
	if sum != size {
		return fmt.Errorf("chunks add up to %d bytes, file size is %d", sum, size)
	}
	return nil
}

// CheckPath reports whether p is a valid manifest path: "." for the root, or
// a clean relative "/"-separated path with no "." or ".." element, no empty
// element and no NUL byte.
func CheckPath(p string) error {
	if p == rootPath {
		return nil
	}
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("path is %d bytes: limit %d", len(p), MaxPathLen)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path has a NUL byte")
	}
	if p[0] == '/' {
		return fmt.Errorf("path is absolute")
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "":
			return fmt.Errorf("path has an empty element")
		case ".", "..":
			return fmt.Errorf("path has a %q element", elem)
		}
	}
	return nil
}

func checkLinkTarget(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("symlink has no target")
	case len(t) > MaxLinkTargetLen:
		return fmt.Errorf("link target is %d bytes: limit %d", len(t), MaxLinkTargetLen)
	case strings.IndexByte(t, 0) >= 0:
		return fmt.Errorf("link target has a NUL byte")
	}
	return nil
}

func checkXattr(name string, val []byte) error {
	switch {
	case name == "" || len(name) > MaxXattrNameLen:
		return fmt.Errorf("xattr name %q: want 1..%d bytes", name, MaxXattrNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("xattr name %q has a NUL byte", name)
	case len(val) > MaxXattrValueLen:
		return fmt.Errorf("xattr %q value is %d bytes: limit %d", name, len(val), MaxXattrValueLen)
	}
	return nil
}
