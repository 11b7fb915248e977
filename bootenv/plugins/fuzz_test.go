package plugins

import (
	"strings"
	"testing"
)

// FuzzParseMounts checks that the mounts setting parses without a panic
// and that every accepted mount has an absolute mount point and renders
// as one fstab line.
func FuzzParseMounts(f *testing.F) {
	f.Add("nas:/export/home /home nfs rw,hard; nas:/apps /opt/apps nfs4 ro 0 0")
	f.Add("a b c d e f g")
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseMounts(s)
		if err != nil {
			return
		}
		for _, l := range ls {
			if !strings.HasPrefix(l.Mount, "/") || strings.Contains(l.String(), "\n") {
				t.Fatalf("%q gave %+v", s, l)
			}
		}
	})
}

// FuzzReplaceBlock checks that replacing the block twice gives the same
// text: the markers are found again.
func FuzzReplaceBlock(f *testing.F) {
	f.Add("x\n", "a\n")
	f.Fuzz(func(t *testing.T, text, block string) {
		if strings.Contains(block, BeginMarker) || strings.Contains(block, EndMarker) {
			return
		}
		if block != "" && !strings.HasSuffix(block, "\n") {
			block += "\n"
		}
		once := ReplaceBlock(text, block)
		if twice := ReplaceBlock(once, block); twice != once {
			t.Fatalf("not stable:\n%q\n%q", once, twice)
		}
	})
}
