// Package chunk splits large file contents into content-defined chunks with
// FastCDC (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
// Chunking Approach for Data Deduplication", USENIX ATC 2016), so that a
// small edit to a big file changes only the chunks around the edit and the
// image store re-sends only those.
//
// Boundaries depend only on the bytes near them, never on offsets, so an
// insertion shifts the rest of the file without moving its cut points.
package chunk

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// Threshold is the file size from which contents are chunked; smaller files
// are stored as one blob. On a Debian /usr, the 0.1% of files at or above
// 4 MiB hold about 60% of the bytes, so chunking only them keeps the object
// count near one per file while covering most of the bytes, and re-sending a
// whole file under 4 MiB costs little.
const Threshold = 4 << 20

// Chunked reports whether a file of size bytes is stored as chunks rather
// than as one blob.
func Chunked(size int64) bool { return size >= Threshold }

// Limits on Params: MinSize must leave room for the 64-byte gear window, and
// MaxSize bounds the one buffer a Chunker holds.
const (
	minMinSize = 64
	maxMaxSize = 64 << 20
)

// Params are the chunk sizes of FastCDC. AvgSize must be a power of two; it
// is where normalized chunking switches from the strict to the loose mask,
// and, with MinSize = AvgSize/4 and MaxSize = 4*AvgSize, about the mean size.
type Params struct {
	MinSize int // no cut before this many bytes, except at the end of input
	AvgSize int // target size: the mask bits are log2(AvgSize)±2
	MaxSize int // forced cut at this many bytes
}

// DefaultParams are the store's chunk sizes: 64 KiB / 256 KiB / 1 MiB.
// Measured on a 64 MiB random file (TestResendByAverage), one inserted byte
// re-sends 0.5% of it (one chunk, ~320 KiB), against 0.1% at a 64 KiB average
// and 2.3% at 1 MiB. 256 KiB keeps a 1 GiB file at ~4000 objects, where
// 64 KiB would mean four times the object-store round trips and manifest
// rows to save a few hundred KiB per edit; a rebuilt binary changes most of
// its chunks at any size anyway.
func DefaultParams() Params { return ParamsForAvg(256 << 10) }

// ParamsForAvg returns Params with the given average and MinSize = avg/4,
// MaxSize = 4*avg, the ratios the FastCDC paper evaluates with normalization
// level 2.
func ParamsForAvg(avg int) Params {
	return Params{MinSize: avg / 4, AvgSize: avg, MaxSize: avg * 4}
}

// Validate reports whether p can drive a Chunker.
func (p Params) Validate() error {
	switch {
	case p.AvgSize <= 0 || p.AvgSize&(p.AvgSize-1) != 0:
		return fmt.Errorf("chunk params %+v: average size must be a power of two", p)
	case p.MinSize < minMinSize:
		return fmt.Errorf("chunk params %+v: minimum size below %d bytes", p, minMinSize)
	case !(p.MinSize < p.AvgSize && p.AvgSize < p.MaxSize):
		return fmt.Errorf("chunk params %+v: want min < avg < max", p)
	case p.MaxSize > maxMaxSize:
		return fmt.Errorf("chunk params %+v: maximum size above %d bytes", p, maxMaxSize)
	}
	return nil
}

// Chunk is one piece of the input.
type Chunk struct {
	Offset int64           // position of the first byte in the input
	Length int             // number of bytes, at most Params.MaxSize
	Digest manifest.Digest // SHA-256 of the bytes
}

// Chunker reads an input and cuts it into chunks, holding one MaxSize buffer.
// Use it like bufio.Scanner: call Next until it returns io.EOF; Bytes holds
// the last chunk's contents until the following Next.
type Chunker struct {
	r      io.Reader
	p      Params
	cutter cutter
	buf    []byte // buf[:n] is read and not yet emitted, after the last chunk
	n      int
	last   int   // length of the chunk at the front of buf, emitted last
	off    int64 // input offset of buf[0]
	eof    bool
	err    error
}

// NewChunker returns a Chunker over r with params p.
func NewChunker(r io.Reader, p Params) (*Chunker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Chunker{r: r, p: p, cutter: newCutter(p), buf: make([]byte, p.MaxSize)}, nil
}

// Next returns the next chunk, or io.EOF after the last one. Any other error
// is the reader's, wrapped, and is returned again by later calls.
func (c *Chunker) Next() (Chunk, error) {
	n, err := c.advance()
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{Offset: c.off, Length: n, Digest: manifest.Sum(c.buf[:n])}, nil
}

// Bytes returns the contents of the chunk the last Next returned. The slice
// is reused by the next call to Next.
func (c *Chunker) Bytes() []byte { return c.buf[:c.last] }

// advance drops the previous chunk, refills the buffer and finds the next
// cut point, which becomes c.last.
func (c *Chunker) advance() (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.last > 0 {
		copy(c.buf, c.buf[c.last:c.n])
		c.n -= c.last
		c.off += int64(c.last)
		c.last = 0
	}
	if !c.eof && c.n < len(c.buf) {
		m, err := io.ReadFull(c.r, c.buf[c.n:])
		c.n += m
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			c.eof = true
		case err != nil:
			c.err = fmt.Errorf("chunk input at offset %d: %w", c.off+int64(c.n), err)
			return 0, c.err
		}
	}
	if c.n == 0 {
		c.err = io.EOF
		return 0, c.err
	}
	c.last = c.cutter.cut(c.buf[:c.n])
	return c.last, nil
}

// cutter finds FastCDC cut points. Its tables are computed from Params by pure
// functions and never change after newCutter.
type cutter struct {
	minSize, avgSize, maxSize int
	maskS, maskL              uint64 // strict mask before AvgSize, loose after
	gear                      [256]uint64
}

// Normalization level 2: the strict mask has two more bits than log2(avg),
// the loose one two fewer, which the paper shows tightens the size spread
// without hurting deduplication.
const normalization = 2

func newCutter(p Params) cutter {
	b := bits.TrailingZeros(uint(p.AvgSize))
	return cutter{
		minSize: p.MinSize, avgSize: p.AvgSize, maxSize: p.MaxSize,
		maskS: spreadMask(b + normalization),
		maskL: spreadMask(b - normalization),
		gear:  gearTable(),
	}
}

// cut returns the length of the chunk at the front of data. data holds either
// MaxSize bytes or the rest of the input, so the answer depends only on the
// bytes themselves.
func (c *cutter) cut(data []byte) int {
	n := len(data)
	if n <= c.minSize {
		return n
	}
	if n > c.maxSize {
		n = c.maxSize
	}
	normal := min(c.avgSize, n)
	// The gear hash shifts left one bit per byte, so bit k depends on the last
	// k+1 bytes: starting from zero at MinSize loses nothing once 64 bytes in.
	var h uint64
	i := c.minSize
	for ; i < normal; i++ {
		h = h<<1 + c.gear[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + c.gear[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}

// spreadMask returns a mask of n one-bits spread over the top 48 bits of the
// word. High bits see a window of up to 64 bytes, and spacing them out (the
// paper's "zero padding") makes the cut depend on more of that window than
// n adjacent bits would.
func spreadMask(n int) uint64 {
	const span = 48
	var m uint64
	for i := range n {
		m |= 1 << (63 - i*span/n)
	}
	return m
}

// gearTable returns the 256 random gear values, generated by splitmix64 from
// a fixed seed: boundaries, and therefore stored chunk digests, depend on this
// table, so it must never change.
func gearTable() [256]uint64 {
	var t [256]uint64
	x := uint64(0x6865726463646321) // "herdcdc!"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return t
}
