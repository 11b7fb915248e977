package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how a stream is compressed, told by its first bytes.
type Compression int

// Compressions the import reads.
const (
	None Compression = iota
	Gzip
	Zstd
	Xz
	Bzip2
)

func (c Compression) String() string {
	return [...]string{"none", "gzip", "zstd", "xz", "bzip2"}[c]
}

// zstdMaxWindow bounds the window a zstd stream may ask for: zstd's largest
// standard level (--ultra -22) uses 128 MiB, and a hostile header must not
// make the import allocate more.
const zstdMaxWindow = 128 << 20

// magicLen is how many bytes DetectCompression looks at.
const magicLen = 10

// DetectCompression names the compression of a stream from its first bytes.
// The checks go past the bare magic where the format allows (gzip's method
// byte, bzip2's block magic), so a tar whose first name starts with "BZh"
// stays a tar.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08}):
		return Gzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return Xz
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && '1' <= head[3] && head[3] <= '9' &&
		(bytes.Equal(head[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}) || // first block
			bytes.Equal(head[4:10], []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90})): // end of an empty stream
		return Bzip2
	}
	return None
}

// decompressed is the uncompressed stream inside an archive.
type decompressed struct {
	io.Reader
	c     Compression
	close func()
}

// decompress returns the uncompressed stream of br; close releases the
// decoder (zstd runs goroutines).
func decompress(br *bufio.Reader) (*decompressed, error) {
	head, _ := br.Peek(magicLen) // a short stream is the tar reader's to judge
	c := DetectCompression(head)
	d := &decompressed{c: c, close: func() {}}
	switch c {
	case None:
		d.Reader = br
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		d.Reader = zr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		d.Reader, d.close = zr, zr.Close
	case Xz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz header: %w", err)
		}
		d.Reader = xr
	case Bzip2:
		d.Reader = bzip2.NewReader(br)
	}
	return d, nil
}

// maxTrailing bounds what is read after a compressed tar's end to reach the
// compressor's checksum: tar pads to 10 KiB records and a few writers pad
// more.
const maxTrailing = 1 << 20

// finish reads the rest of a compressed stream after the tar's end, so its
// checksum (gzip CRC, xz check, zstd frame checksum) is verified.
func (d *decompressed) finish() error {
	if d.c == None {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(d.Reader, maxTrailing+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s stream after the last entry: %w", d.c, truncated(err))
	case n > maxTrailing:
		return fmt.Errorf("%s stream: more than %d bytes after the last entry", d.c, maxTrailing)
	}
	return nil
}

// isTruncation reports whether err means the input ended early.
func isTruncation(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF)
}
