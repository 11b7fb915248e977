package store

import (
	"fmt"
	"io"
)

// newcWriter writes a cpio archive in the "newc" format (SVR4 without
// checksums), the one the Linux kernel unpacks as an initramfs. It writes
// what it is given in that order, with mtime 0, uid and gid 0 and inode
// numbers counted up from 1, so equal input gives equal bytes.
type newcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// Modes of the entries it writes.
const (
	newcDir  = 0o040755
	newcFile = 0o100644
)

func (c *newcWriter) entry(name string, mode uint32, nlink int, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	ino := c.ino
	if name == newcTrailer {
		ino = 0
	}
	namesize := len(name) + 1
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, namesize, 0)
	c.write([]byte(name))
	c.write(make([]byte, 1+pad4(110+namesize)))
	c.write(data)
	c.write(make([]byte, pad4(len(data))))
}

func (c *newcWriter) write(b []byte) {
	if c.err == nil && len(b) > 0 {
		_, c.err = c.w.Write(b)
	}
}

// pad4 is how many bytes bring n to a multiple of four.
func pad4(n int) int { return (4 - n%4) % 4 }

const newcTrailer = "TRAILER!!!"

// Dir adds a directory, File a regular file; Close ends the archive.
func (c *newcWriter) Dir(name string)               { c.entry(name, newcDir, 2, nil) }
func (c *newcWriter) File(name string, data []byte) { c.entry(name, newcFile, 1, data) }
func (c *newcWriter) Close() error {
	c.entry(newcTrailer, 0, 1, nil)
	return c.err
}
