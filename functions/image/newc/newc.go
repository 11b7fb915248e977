// Package newc writes cpio archives in the "newc" format (SVR4 without
// checksums), the one the Linux kernel unpacks as an initramfs. A Writer
// writes what it is given in that order, with mtime 0, uid and gid 0 and
// inode numbers counted up from 1, so equal input gives equal bytes.
package newc

import (
	"fmt"
	"io"
	"io/fs"
)

// Trailer is the name of the entry that ends an archive.
const Trailer = "TRAILER!!!"

// File type bits of the mode field, as stat(2) has them.
const (
	TypeDir     = 0o040000
	TypeFile    = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
)

// Writer writes one archive; the first error sticks and Close returns it.
type Writer struct {
	w   io.Writer
	ino uint32
	err error
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (c *Writer) entry(name string, mode uint32, nlink int, major, minor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	ino := c.ino
	if name == Trailer {
		ino = 0
	}
	namesize := len(name) + 1
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, namesize, 0)
	c.write([]byte(name))
	c.write(make([]byte, 1+pad4(110+namesize)))
	c.write(data)
	c.write(make([]byte, pad4(len(data))))
}

func (c *Writer) write(b []byte) {
	if c.err == nil && len(b) > 0 {
		_, c.err = c.w.Write(b)
	}
}

// pad4 is how many bytes bring n to a multiple of four.
func pad4(n int) int { return (4 - n%4) % 4 }

// Dir adds a directory with the permission bits perm.
func (c *Writer) Dir(name string, perm fs.FileMode) {
	c.entry(name, TypeDir|uint32(perm.Perm()), 2, 0, 0, nil)
}

// File adds a regular file with the permission bits perm.
func (c *Writer) File(name string, perm fs.FileMode, data []byte) {
	c.entry(name, TypeFile|uint32(perm.Perm()), 1, 0, 0, data)
}

// Symlink adds a symbolic link name pointing at target.
func (c *Writer) Symlink(name, target string) {
	c.entry(name, TypeSymlink|0o777, 1, 0, 0, []byte(target))
}

// CharDevice adds a character device node, such as dev/console (5, 1),
// which the kernel opens before /init runs.
func (c *Writer) CharDevice(name string, perm fs.FileMode, major, minor uint32) {
	c.entry(name, TypeChar|uint32(perm.Perm()), 1, major, minor, nil)
}

// Close writes the trailer and returns the first error met.
func (c *Writer) Close() error {
	c.entry(Trailer, 0, 1, 0, 0, nil)
	return c.err
}
