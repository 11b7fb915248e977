// Package sparse writes files so that runs of zero bytes become holes, the
// way `cp --sparse=always` does: a 64 GiB disk image with little data takes
// little space after an export or a sync.
package sparse

import (
	"bytes"
	"fmt"
	"os"
)

// blockSize is the granularity of holes: a block of only zero bytes is
// skipped. It matches the page and filesystem block size of common setups.
const blockSize = 4096

// Writer writes to a file from offset 0, seeking over all-zero blocks.
// Close (or Finish) sets the final size, so trailing holes are kept.
type Writer struct {
	f    *os.File
	off  int64
	zero [blockSize]byte
	// pending holds a partial block until it is complete, so holes are
	// found at block boundaries whatever sizes the writes come in.
	pending []byte
}

// NewWriter returns a Writer for f, which must be empty and at offset 0.
func NewWriter(f *os.File) *Writer {
	return &Writer{f: f, pending: make([]byte, 0, blockSize)}
}

// Write writes p, leaving a hole for every whole block of zeros.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	if len(w.pending) > 0 {
		k := min(blockSize-len(w.pending), len(p))
		w.pending = append(w.pending, p[:k]...)
		p = p[k:]
		if len(w.pending) < blockSize {
			return n, nil
		}
		if err := w.block(w.pending); err != nil {
			return 0, err
		}
		w.pending = w.pending[:0]
	}
	for len(p) >= blockSize {
		if err := w.block(p[:blockSize]); err != nil {
			return 0, err
		}
		p = p[blockSize:]
	}
	w.pending = append(w.pending, p...)
	return n, nil
}

func (w *Writer) block(b []byte) error {
	if !bytes.Equal(b, w.zero[:len(b)]) {
		if _, err := w.f.WriteAt(b, w.off); err != nil {
			return err
		}
	}
	w.off += int64(len(b))
	return nil
}

// Finish writes what is pending and sets the file's size to the number of
// bytes written, which creates a trailing hole if the data ended in zeros.
func (w *Writer) Finish() error {
	if len(w.pending) > 0 {
		if err := w.block(w.pending); err != nil {
			return err
		}
		w.pending = w.pending[:0]
	}
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("set size of %s: %w", w.f.Name(), err)
	}
	return nil
}
