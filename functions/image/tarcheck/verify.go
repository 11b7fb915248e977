package tarcheck

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// maxTrailing bounds what Verify reads after the end-of-archive marker of a
// compressed archive to reach the checksum: tar pads to 10 KiB records, and
// a few writers pad more.
const maxTrailing = 1 << 20

// Verify reads a whole archive, plain or gzip-compressed (told apart by their
// magic bytes), runs every header through a Checker with limits lim, and
// reads every file's contents, so truncated data is found before an import
// writes anything. It returns the first refusal, an *EntryError naming the
// entry when there is one.
func Verify(r io.Reader, lim Limits) error {
	br := bufio.NewReader(r)
	src, err := decompress(br)
	if err != nil {
		return fmt.Errorf("verify archive: %w", err)
	}
	tr := tar.NewReader(src)
	c := NewChecker(lim)
	var last *tar.Header
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if last == nil {
				return fmt.Errorf("verify archive: %w", ErrNoEntries)
			}
			break
		}
		if err != nil {
			// The previous entry's padding or the next header is bad: name
			// the last entry read, the reader's position in the archive.
			if last == nil {
				return &EntryError{Index: 0, Err: fmt.Errorf("read header: %w", truncated(err))}
			}
			return &EntryError{Index: i - 1, Name: last.Name, Err: fmt.Errorf("read the next header: %w", truncated(err))}
		}
		if err := c.Check(h); err != nil {
			return err
		}
		// Contents go to io.Discard, so memory stays flat; Check has capped
		// h.Size, which bounds the time a sparse file's holes take.
		if n, err := io.Copy(io.Discard, tr); err != nil {
			return &EntryError{Index: i, Name: h.Name, Err: fmt.Errorf("read contents after %d of %d bytes: %w", n, h.Size, truncated(err))}
		}
		last = h
	}
	if src != io.Reader(br) {
		// gzip checks its CRC only at the end of the stream.
		if n, err := io.Copy(io.Discard, io.LimitReader(src, maxTrailing+1)); err != nil {
			return fmt.Errorf("verify archive: after the last entry: %w", truncated(err))
		} else if n > maxTrailing {
			return fmt.Errorf("verify archive: more than %d bytes after the last entry", maxTrailing)
		}
	}
	return nil
}

// truncated marks an early end of the archive as ErrTruncated.
func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return err
}

// decompress returns the tar stream inside br. Only gzip is in the standard
// library; other compressions are named so the admin knows what to undo.
func decompress(br *bufio.Reader) (io.Reader, error) {
	magic, _ := br.Peek(6) // a short archive is the tar reader's to judge
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", truncated(err))
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, fmt.Errorf("%w: zstd", ErrCompression)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, fmt.Errorf("%w: xz", ErrCompression)
	case bytes.HasPrefix(magic, []byte("BZh")):
		return nil, fmt.Errorf("%w: bzip2", ErrCompression)
	}
	return br, nil
}
