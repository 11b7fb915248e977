package newc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Entry is one member of an archive as Read returns it.
type Entry struct {
	Name                 string
	Mode                 uint32 // type and permission bits
	UID, GID             uint32
	Mtime                uint32
	RdevMajor, RdevMinor uint32
	Data                 []byte // file contents or link target
}

// ErrFormat is returned for bytes that are not a newc archive.
var ErrFormat = errors.New("not a newc cpio archive")

// Read parses a newc archive up to its trailer; maxSize bounds one
// entry's data.
func Read(r io.Reader, maxSize int) ([]Entry, error) {
	br := bufio.NewReader(r)
	var out []Entry
	var off int
	for {
		hdr := make([]byte, 110)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return out, fmt.Errorf("%w: header at %d: %v", ErrFormat, off, err)
		}
		if string(hdr[:6]) != "070701" {
			return out, fmt.Errorf("%w: magic %q at %d", ErrFormat, hdr[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return out, fmt.Errorf("%w: field %d at %d", ErrFormat, i, off)
			}
			f[i] = uint32(v)
		}
		namesize, size := int(f[11]), int(f[6])
		if namesize < 1 || size > maxSize {
			return out, fmt.Errorf("%w: name size %d, data size %d at %d", ErrFormat, namesize, size, off)
		}
		name := make([]byte, namesize+pad4(110+namesize))
		if _, err := io.ReadFull(br, name); err != nil {
			return out, fmt.Errorf("%w: name at %d: %v", ErrFormat, off, err)
		}
		data := make([]byte, size+pad4(size))
		if _, err := io.ReadFull(br, data); err != nil {
			return out, fmt.Errorf("%w: data at %d: %v", ErrFormat, off, err)
		}
		off += 110 + len(name) + len(data)
		e := Entry{Name: string(name[:namesize-1]), Mode: f[1], UID: f[2], GID: f[3], Mtime: f[5],
			RdevMajor: f[9], RdevMinor: f[10], Data: data[:size]}
		if e.Name == Trailer {
			return out, nil
		}
		out = append(out, e)
	}
}
