package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// The canonical encoding is binary, not JSON lines: paths and link targets
// are arbitrary bytes (newlines, invalid UTF-8) and xattr values are binary,
// which JSON can only carry escaped or base64'd; a binary form has one
// spelling per value by construction, and sorted paths share long prefixes,
// which it stores once.
//
//	manifest := magic uvarint(version) uvarint(count) entry*
//	entry    := uvarint(shared) uvarint(len) suffix   path = prev[:shared]+suffix
//	            byte(type)
//	            hardlink: string(target), nothing else
//	            otherwise: uvarint(mode) uvarint(uid) uvarint(gid) varint(mtime)
//	              file:    uvarint(size) digest[32] uvarint(n) (digest[32] uvarint(size))*n
//	              symlink: string(target)
//	              char, block: uvarint(major) uvarint(minor)
//	              uvarint(n) (string(name) string(value))*n   names ascending
//	string   := uvarint(len) bytes
//
// Every varint must be minimal, shared must be the whole common prefix with
// the previous path, and nothing may follow the last entry, so each manifest
// has exactly one encoding.
const magic = "HERDMF"

// Encode returns the canonical encoding of m after validating it.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 64*len(m.Entries)+16)
	buf = append(buf, magic...)
	buf = binary.AppendUvarint(buf, uint64(m.Version))
	buf = binary.AppendUvarint(buf, uint64(len(m.Entries)))
	prev := ""
	for i := range m.Entries {
		buf = appendEntry(buf, &m.Entries[i], prev)
		prev = m.Entries[i].Path
	}
	return buf, nil
}

// appendEntry appends e's encoding; prev is the previous entry's path.
func appendEntry(buf []byte, e *Entry, prev string) []byte {
	shared := commonPrefix(prev, e.Path)
	buf = binary.AppendUvarint(buf, uint64(shared))
	buf = appendString(buf, e.Path[shared:])
	buf = append(buf, byte(e.Type))
	if e.Type == TypeHardlink {
		return appendString(buf, e.LinkTarget)
	}
	buf = binary.AppendUvarint(buf, uint64(e.Mode))
	buf = binary.AppendUvarint(buf, uint64(e.UID))
	buf = binary.AppendUvarint(buf, uint64(e.GID))
	buf = binary.AppendVarint(buf, e.MTime)
	switch e.Type {
	case TypeFile:
		buf = binary.AppendUvarint(buf, e.Size)
		buf = append(buf, e.Digest[:]...)
		buf = binary.AppendUvarint(buf, uint64(len(e.Chunks)))
		for _, c := range e.Chunks {
			buf = append(buf, c.Digest[:]...)
			buf = binary.AppendUvarint(buf, c.Size)
		}
	case TypeSymlink:
		buf = appendString(buf, e.LinkTarget)
	case TypeChar, TypeBlock:
		buf = binary.AppendUvarint(buf, uint64(e.DevMajor))
		buf = binary.AppendUvarint(buf, uint64(e.DevMinor))
	}
	buf = binary.AppendUvarint(buf, uint64(len(e.Xattrs)))
	if len(e.Xattrs) == 0 {
		return buf
	}
	for _, name := range slices.Sorted(maps.Keys(e.Xattrs)) {
		buf = appendString(buf, name)
		buf = binary.AppendUvarint(buf, uint64(len(e.Xattrs[name])))
		buf = append(buf, e.Xattrs[name]...)
	}
	return buf
}

// DigestOf returns the digest of m's canonical encoding: the version's id.
func DigestOf(m *Manifest) (Digest, error) {
	b, err := Encode(m)
	if err != nil {
		return Digest{}, err
	}
	return Digest(sha256.Sum256(b)), nil
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// decodeError is a constant error so the package keeps no mutable globals.
type decodeError string

func (e decodeError) Error() string { return string(e) }

// errShort is returned when the input ends inside a field.
const errShort decodeError = "unexpected end of data"

// Decode parses a canonical encoding. It refuses anything Encode would not
// produce: bad or unsorted paths, unknown types, fields that do not belong to
// the type, oversize fields, dangling hardlinks, non-minimal varints and
// trailing bytes. Errors about an entry are *EntryError.
func Decode(data []byte) (*Manifest, error) {
	d := decoder{data: data}
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, fmt.Errorf("decode manifest: missing %q header", magic)
	}
	d.off = len(magic)
	version, err := d.uvarint(math.MaxInt32)
	if err != nil {
		return nil, fmt.Errorf("decode manifest: version: %w", err)
	}
	if version != FormatVersion {
		return nil, fmt.Errorf("decode manifest: version %d: want %d", version, FormatVersion)
	}
	count, err := d.uvarint(MaxEntries)
	if err != nil {
		return nil, fmt.Errorf("decode manifest: entry count: %w", err)
	}
	// An entry takes at least 3 bytes; do not let a claimed count allocate more.
	m := &Manifest{Version: FormatVersion, Entries: make([]Entry, 0, min(count, uint64(len(data)/3)))}
	v := newValidator(int(min(count, uint64(len(data)/3))))
	prev := ""
	for i := range int(count) {
		var e Entry
		if err := d.entry(&e, prev); err != nil {
			return nil, &EntryError{Index: i, Path: e.Path, Err: err}
		}
		if err := v.check(i, &e); err != nil {
			return nil, err
		}
		m.Entries = append(m.Entries, e)
		prev = e.Path
	}
	if d.off != len(data) {
		return nil, fmt.Errorf("decode manifest: %d bytes of trailing data after %d entries", len(data)-d.off, count)
	}
	return m, nil
}

type decoder struct {
	data []byte
	off  int
}

func (d *decoder) entry(e *Entry, prev string) error {
	shared, err := d.uvarint(uint64(len(prev)))
	if err != nil {
		return fmt.Errorf("path prefix: %w", err)
	}
	suffix, err := d.bytes(MaxPathLen - shared)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	e.Path = prev[:shared] + string(suffix)
	if commonPrefix(prev, e.Path) != int(shared) {
		return fmt.Errorf("path prefix %d is not the whole prefix shared with %q", shared, prev)
	}
	t, err := d.byte()
	if err != nil {
		return fmt.Errorf("type: %w", err)
	}
	e.Type = Type(t)
	if e.Type == TypeHardlink {
		target, err := d.bytes(MaxPathLen)
		if err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
		e.LinkTarget = string(target)
		return nil
	}
	if e.Type == 0 || e.Type >= typeEnd {
		return fmt.Errorf("unknown type %d", t)
	}
	mode, err := d.uvarint(PermMask)
	if err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	uid, err := d.uvarint(math.MaxUint32)
	if err != nil {
		return fmt.Errorf("uid: %w", err)
	}
	gid, err := d.uvarint(math.MaxUint32)
	if err != nil {
		return fmt.Errorf("gid: %w", err)
	}
	e.Mode, e.UID, e.GID = uint32(mode), uint32(uid), uint32(gid)
	if e.MTime, err = d.varint(); err != nil {
		return fmt.Errorf("mtime: %w", err)
	}
	switch e.Type {
	case TypeFile:
		if e.Size, err = d.uvarint(math.MaxUint64); err != nil {
			return fmt.Errorf("size: %w", err)
		}
		if e.Digest, err = d.digest(); err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		n, err := d.uvarint(MaxChunks)
		if err != nil {
			return fmt.Errorf("chunk count: %w", err)
		}
		if n > 0 {
			e.Chunks = make([]Chunk, 0, min(n, uint64(d.left()/(len(Digest{})+1))))
		}
		for j := range n {
			var c Chunk
			if c.Digest, err = d.digest(); err != nil {
				return fmt.Errorf("chunk %d digest: %w", j, err)
			}
			if c.Size, err = d.uvarint(math.MaxUint64); err != nil {
				return fmt.Errorf("chunk %d size: %w", j, err)
			}
			e.Chunks = append(e.Chunks, c)
		}
	case TypeSymlink:
		target, err := d.bytes(MaxLinkTargetLen)
		if err != nil {
			return fmt.Errorf("symlink target: %w", err)
		}
		e.LinkTarget = string(target)
	case TypeChar, TypeBlock:
		major, err := d.uvarint(math.MaxUint32)
		if err != nil {
			return fmt.Errorf("device major: %w", err)
		}
		minor, err := d.uvarint(math.MaxUint32)
		if err != nil {
			return fmt.Errorf("device minor: %w", err)
		}
		e.DevMajor, e.DevMinor = uint32(major), uint32(minor)
	}
	n, err := d.uvarint(MaxXattrs)
	if err != nil {
		return fmt.Errorf("xattr count: %w", err)
	}
	if n > 0 {
		e.Xattrs = make(map[string][]byte, n)
	}
	prevName := ""
	for j := range n {
		name, err := d.bytes(MaxXattrNameLen)
		if err != nil {
			return fmt.Errorf("xattr %d name: %w", j, err)
		}
		if j > 0 && string(name) <= prevName {
			return fmt.Errorf("xattr %q: names not sorted or duplicate", name)
		}
		prevName = string(name)
		val, err := d.bytes(MaxXattrValueLen)
		if err != nil {
			return fmt.Errorf("xattr %q value: %w", name, err)
		}
		e.Xattrs[prevName] = slices.Clone(val)
	}
	return nil
}

func (d *decoder) left() int { return len(d.data) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.left() < 1 {
		return 0, errShort
	}
	d.off++
	return d.data[d.off-1], nil
}

// uvarint reads a minimal unsigned varint no larger than limit.
func (d *decoder) uvarint(limit uint64) (uint64, error) {
	x, n := binary.Uvarint(d.data[d.off:])
	switch {
	case n == 0:
		return 0, errShort
	case n < 0:
		return 0, errors.New("varint overflows 64 bits")
	case n != len(binary.AppendUvarint(nil, x)):
		return 0, errors.New("non-minimal varint")
	case x > limit:
		return 0, fmt.Errorf("value %d exceeds limit %d", x, limit)
	}
	d.off += n
	return x, nil
}

func (d *decoder) varint() (int64, error) {
	x, n := binary.Varint(d.data[d.off:])
	switch {
	case n == 0:
		return 0, errShort
	case n < 0:
		return 0, errors.New("varint overflows 64 bits")
	case n != len(binary.AppendVarint(nil, x)):
		return 0, errors.New("non-minimal varint")
	}
	d.off += n
	return x, nil
}

// bytes reads a length-prefixed byte string of at most limit bytes; the
// result aliases the input.
func (d *decoder) bytes(limit uint64) ([]byte, error) {
	n, err := d.uvarint(limit)
	if err != nil {
		return nil, err
	}
	if uint64(d.left()) < n {
		return nil, errShort
	}
	b := d.data[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) digest() (Digest, error) {
	var dg Digest
	if d.left() < len(dg) {
		return dg, errShort
	}
	d.off += copy(dg[:], d.data[d.off:])
	return dg, nil
}
