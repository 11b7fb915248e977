package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/tarcheck"
)

// FromTar reads a tar of a root filesystem from r, plain or compressed with
// gzip, zstd, xz or bzip2 (told by its first bytes), uploads every file's
// content to blobs and returns the image's manifest. Directories the archive
// implies but does not hold are root-owned 0755 with mtime 0. The archive is
// refused, with an error wrapping a *tarcheck.EntryError that names the
// entry, if any entry fails tarcheck's checks, ends early or cannot be
// stored in a manifest. Nothing is committed.
func FromTar(ctx context.Context, blobs Blobs, r io.Reader, opts Options) (*manifest.Manifest, Stats, error) {
	var st Stats
	u := newUploader(ctx, blobs, opts.workers())
	l, err := readTar(u, r, opts.limits(), false, nil)
	if werr := u.wait(); err == nil {
		err = werr
	}
	u.addStats(&st)
	if err != nil {
		return nil, st, fmt.Errorf("import tar: %w", err)
	}
	st.Layers = 1
	m, err := l.t.manifest()
	if err != nil {
		return nil, st, fmt.Errorf("import tar: %w", err)
	}
	return m, st, nil
}

// layer is one tar read into memory: its tree, and for an image layer the
// whiteouts and opaque directories that apply to the layers below and the
// hardlinks whose targets are there.
type layer struct {
	t         *tree
	whiteouts []string // paths removed from lower layers, with their subtrees
	opaque    []string // directories whose lower-layer children are dropped
	links     []*node  // hardlinks to lower-layer files, resolved by apply
	entries   int
}

// OCI whiteout names (image-spec layer.md, "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // AUFS bookkeeping: .wh..wh.plnk, .wh..wh.aufs
	whiteoutOpaque = ".wh..wh..opq"
)

// readTar reads the tar in r, uploading contents through u. A layer (an OCI
// or docker image layer) has whiteouts and may hardlink to files of lower
// layers; a plain tar has neither, and must hold at least one entry. If diff
// is not nil, the whole uncompressed stream is written to it, which is how a
// layer's diff ID is computed.
func readTar(u *uploader, r io.Reader, lim tarcheck.Limits, isLayer bool, diff hash.Hash) (*layer, error) {
	d, err := decompress(bufio.NewReaderSize(r, 1<<16))
	if err != nil {
		return nil, err
	}
	defer d.close()
	src := io.Reader(d)
	if diff != nil {
		src = io.TeeReader(d, diff)
	}
	tail := &tailReader{r: src}
	tr := tar.NewReader(tail)
	c := tarcheck.NewChecker(lim)
	l := &layer{t: newTree()}
	var last *tar.Header
	for i := 0; ; i++ {
		if err := u.failed(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if last == nil {
				return nil, &tarcheck.EntryError{Index: 0, Err: fmt.Errorf("read header: %w", truncated(err))}
			}
			return nil, &tarcheck.EntryError{Index: i - 1, Name: last.Name, Err: fmt.Errorf("read the next header: %w", truncated(err))}
		}
		if err := l.add(u, c, i, h, tr, isLayer); err != nil {
			return nil, &tarcheck.EntryError{Index: i, Name: h.Name, Err: err}
		}
		l.entries++
		last = h
	}
	if last == nil && !isLayer {
		return nil, tarcheck.ErrNoEntries
	}
	// archive/tar takes an end of input at a header boundary for the end of
	// the archive; a plain tar cut there would lose its remaining entries
	// unnoticed. A layer's digest catches that instead, and an empty layer
	// blob may hold no marker at all.
	if !isLayer && !tail.atMarker() {
		return nil, &tarcheck.EntryError{Index: l.entries - 1, Name: last.Name,
			Err: fmt.Errorf("archive ends without its end-of-archive marker: %w", tarcheck.ErrTruncated)}
	}
	if diff != nil {
		// The diff ID covers the padding after the tar's end too.
		if _, err := io.Copy(io.Discard, src); err != nil {
			return nil, fmt.Errorf("after the last entry: %w", truncated(err))
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return l, nil
}

// tailReader remembers the last bytes read through it, to tell a tar that
// ended with its end-of-archive marker (two zero blocks) from one cut short.
type tailReader struct {
	r    io.Reader
	tail [2 * blockSize]byte
	n    int64
}

const blockSize = 512

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if n >= len(t.tail) {
		copy(t.tail[:], p[n-len(t.tail):n])
	} else {
		copy(t.tail[:], t.tail[n:])
		copy(t.tail[len(t.tail)-n:], p[:n])
	}
	return n, err
}

// atMarker reports whether the input read so far ends in two zero blocks.
func (t *tailReader) atMarker() bool {
	return t.n >= int64(len(t.tail)) && t.n%blockSize == 0 && t.tail == [2 * blockSize]byte{}
}

// add checks header h, the i-th of the archive, and puts it in the layer,
// reading its contents from content.
func (l *layer) add(u *uploader, c *tarcheck.Checker, i int, h *tar.Header, content io.Reader, isLayer bool) error {
	checked, lowerLink := h, ""
	if isLayer && h.Typeflag == tar.TypeLink {
		// tarcheck wants a hardlink's target earlier in the same archive; a
		// layer may link to a file of a lower layer, which apply checks.
		target, err := tarcheck.CleanPath(h.Linkname)
		if err != nil {
			return fmt.Errorf("%w: %w", tarcheck.ErrLinkTarget, err)
		}
		if l.t.lookup(target) == nil {
			asFile := *h
			asFile.Typeflag, asFile.Linkname, asFile.Size = tar.TypeReg, "", 0
			checked, lowerLink = &asFile, target
		}
	}
	if err := c.Check(checked); err != nil {
		var ee *tarcheck.EntryError
		if errors.As(err, &ee) {
			return ee.Err // the caller names the entry
		}
		return err
	}
	p, err := tarcheck.CleanPath(h.Name)
	if err != nil {
		return err // tarcheck accepted it, so this does not happen
	}
	if isLayer && p != "." {
		if done, err := l.whiteout(p); done || err != nil {
			return err
		}
	}
	if lowerLink != "" {
		n := &node{link: lowerLink, src: h.Name}
		l.links = append(l.links, n)
		return l.t.put(p, n)
	}
	if h.Typeflag == tar.TypeLink {
		target, _ := tarcheck.CleanPath(h.Linkname) // checked by tarcheck
		t := l.t.lookup(target)
		if t == nil || t.e == nil && t.link == "" {
			return fmt.Errorf("%w: hardlink to %q, which is not a file", tarcheck.ErrLinkTarget, target)
		}
		n := &node{e: t.e, link: t.link, src: h.Name}
		if t.e == nil {
			l.links = append(l.links, n) // a link to a link to a lower layer
		}
		return l.t.put(p, n)
	}
	e, err := entryOf(h)
	if err != nil {
		return err
	}
	if e.Type == manifest.TypeFile {
		if err := u.file(content, h.Size, &e); err != nil {
			return err
		}
	}
	if e.Type == manifest.TypeDir {
		if p == "." {
			l.t.setRoot(&e, h.Name)
			return nil
		}
		n := newDir(&e)
		n.src = h.Name
		return l.t.put(p, n)
	}
	return l.t.put(p, &node{e: &e, src: h.Name})
}

// whiteout records p if it is a whiteout and reports whether it was one. Its
// directory stays in the layer, as the layer holds that directory.
func (l *layer) whiteout(p string) (bool, error) {
	dir, base := ".", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	if !strings.HasPrefix(base, whiteoutPrefix) {
		return false, nil
	}
	if _, _, err := l.t.parent(p); err != nil {
		return true, err
	}
	switch {
	case base == whiteoutOpaque:
		l.opaque = append(l.opaque, dir)
	case strings.HasPrefix(base, whiteoutMeta):
	case dir == ".":
		l.whiteouts = append(l.whiteouts, base[len(whiteoutPrefix):])
	default:
		l.whiteouts = append(l.whiteouts, dir+"/"+base[len(whiteoutPrefix):])
	}
	return true, nil
}

// entryOf converts a header to a manifest entry without path, content or
// hardlink target: type, permission bits with setuid/setgid/sticky, owner,
// mtime, device numbers, symlink target and extended attributes.
func entryOf(h *tar.Header) (manifest.Entry, error) {
	e := manifest.Entry{Mode: uint32(h.Mode) & manifest.PermMask, UID: uint32(h.Uid), GID: uint32(h.Gid)}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse: // archive/tar expands sparse files
		e.Type = manifest.TypeFile
	case tar.TypeDir:
		e.Type = manifest.TypeDir
	case tar.TypeSymlink:
		e.Type, e.LinkTarget = manifest.TypeSymlink, h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		e.Type = manifest.TypeChar
		if h.Typeflag == tar.TypeBlock {
			e.Type = manifest.TypeBlock
		}
		e.DevMajor, e.DevMinor = uint32(h.Devmajor), uint32(h.Devminor)
	case tar.TypeFifo:
		e.Type = manifest.TypeFifo
	default:
		return e, fmt.Errorf("%w: type flag %q", tarcheck.ErrType, h.Typeflag)
	}
	var err error
	if e.MTime, err = unixNano(h.ModTime); err != nil {
		return e, err
	}
	if e.Xattrs, err = xattrsOf(h.PAXRecords); err != nil {
		return e, err
	}
	return e, nil
}

// unixNano returns t in nanoseconds since the epoch, refusing times an
// int64 cannot hold (before 1677 or after 2262), which tar's base-256 and
// PAX fields can carry.
func unixNano(t time.Time) (int64, error) {
	const limit = math.MaxInt64 / int64(time.Second)
	if s := t.Unix(); s <= -limit || s >= limit {
		return 0, fmt.Errorf("mtime %d s since the epoch is out of range", s)
	}
	return t.UnixNano(), nil
}

// PAX record prefixes of extended attributes: GNU tar and star write SCHILY
// with raw values; libarchive (bsdtar) writes both, LIBARCHIVE with a
// %-escaped name and a base64 value.
const (
	paxSchily     = "SCHILY.xattr."
	paxLibarchive = "LIBARCHIVE.xattr."
)

// xattrsOf returns the extended attributes in a header's PAX records,
// security.capability and security.selinux included, checked against the
// manifest's limits.
func xattrsOf(recs map[string]string) (map[string][]byte, error) {
	var xs map[string][]byte
	set := func(name string, val []byte) error {
		switch {
		case name == "" || len(name) > manifest.MaxXattrNameLen || strings.IndexByte(name, 0) >= 0:
			return fmt.Errorf("xattr name %q: want 1..%d bytes without NUL", name, manifest.MaxXattrNameLen)
		case len(val) > manifest.MaxXattrValueLen:
			return fmt.Errorf("xattr %q: value of %d bytes, limit %d", name, len(val), manifest.MaxXattrValueLen)
		}
		if xs == nil {
			xs = make(map[string][]byte)
		}
		if _, ok := xs[name]; !ok && len(xs) == manifest.MaxXattrs {
			return fmt.Errorf("more than %d xattrs", manifest.MaxXattrs)
		}
		xs[name] = val
		return nil
	}
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, paxSchily); ok {
			if err := set(name, []byte(v)); err != nil {
				return nil, err
			}
		}
	}
	for k, v := range recs {
		esc, ok := strings.CutPrefix(k, paxLibarchive)
		if !ok {
			continue
		}
		name, err := url.PathUnescape(esc)
		if err != nil {
			return nil, fmt.Errorf("xattr name %q: %w", esc, err)
		}
		if _, dup := xs[name]; dup {
			continue // the SCHILY record of the same attribute
		}
		val, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return nil, fmt.Errorf("xattr %q: base64 value: %w", name, err)
		}
		if err := set(name, val); err != nil {
			return nil, err
		}
	}
	return xs, nil
}

// truncated marks an early end of the archive as tarcheck.ErrTruncated.
func truncated(err error) error {
	if isTruncation(err) {
		return fmt.Errorf("%w: %w", tarcheck.ErrTruncated, err)
	}
	return err
}
