package store

import "github.com/herd-hpc/herd/functions/image/newc"

// Names and modes the modules archive uses (see package newc).
const (
	newcTrailer = newc.Trailer
	newcDir     = newc.TypeDir | 0o755
	newcFile    = newc.TypeFile | 0o644
)

// pad4 is how many bytes bring n to a multiple of four.
func pad4(n int) int { return (4 - n%4) % 4 }
