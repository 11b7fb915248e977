package plugins

import (
	"io/fs"
	"syscall"
)

func ownerOf(st fs.FileInfo) (uint32, uint32) {
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid
}
