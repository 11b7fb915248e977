package store

import (
	"fmt"
	"strings"
)

// ArtifactKey is the object key of one published boot file of an image
// branch: images/<image>/<branch>/<file>, names escaped by KeySegment.
func ArtifactKey(image, branch, file string) string {
	return "images/" + KeySegment(image) + "/" + KeySegment(branch) + "/" + file
}

// VersionArtifactKey is the object key of a boot file of one kernel version
// of an image branch: images/<image>/<branch>/versions/<version>/<file>.
func VersionArtifactKey(image, branch, version, file string) string {
	return ArtifactKey(image, branch, "versions/"+KeySegment(version)+"/"+file)
}

// KeySegment escapes a name (image and branch names may hold any
// characters) into one segment of an object key: letters, digits, '-', '_'
// and '.' stay, every other byte becomes %XX, and "." and ".." are escaped
// whole, so distinct names give distinct segments and no segment means
// "this" or "parent".
func KeySegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	out := b.String()
	if out == "." || out == ".." {
		out = strings.Repeat("%2E", len(out))
	}
	return out
}
