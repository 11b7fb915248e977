package tftp

import (
	"io/fs"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest file name served, in bytes.
const MaxNameLen = 255

// Refusal says why a request was refused. It is what the client reads in
// the TFTP error packet and what the log line gives as the reason.
type Refusal string

func (r Refusal) Error() string { return string(r) }

// Reasons a request is refused.
const (
	RefuseEmpty     Refusal = "empty file name"
	RefuseTooLong   Refusal = "file name longer than 255 bytes"
	RefuseNUL       Refusal = "file name contains a NUL byte"
	RefuseControl   Refusal = "file name contains a control character"
	RefuseBackslash Refusal = "file name contains a backslash"
	RefuseUTF8      Refusal = "file name is not valid UTF-8"
	RefuseAbsolute  Refusal = "absolute file name"
	RefuseDotDot    Refusal = "file name contains a .. segment"
	RefuseDirectory Refusal = "file name names a directory"
	RefuseNotFound  Refusal = "file not found"
	RefuseNotFile   Refusal = "not a regular file"
	RefuseDenied    Refusal = "access denied"
	RefuseWrite     Refusal = "this server is read-only"
)

// CleanPath turns a file name from a read request into a path relative to
// the TFTP root, or says why it must be refused. One leading "/" is dropped,
// since PXE ROMs often send one; any ".." segment is refused even where it
// would stay inside the root, because no boot file name needs one. Empty
// and "." segments are cleaned away. The result satisfies fs.ValidPath.
//
// CleanPath does not look at the file system: symlinks that leave the root
// are refused when the file is opened through an os.Root.
func CleanPath(name string) (string, error) {
	switch {
	case name == "":
		return "", RefuseEmpty
	case len(name) > MaxNameLen:
		return "", RefuseTooLong
	case strings.IndexByte(name, 0) >= 0:
		return "", RefuseNUL
	case strings.IndexByte(name, '\\') >= 0:
		return "", RefuseBackslash
	case !utf8.ValidString(name):
		return "", RefuseUTF8
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", RefuseControl
	}
	rel := strings.TrimPrefix(name, "/")
	if strings.HasPrefix(rel, "/") {
		return "", RefuseAbsolute
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == ".." {
			return "", RefuseDotDot
		}
	}
	rel = path.Clean(rel)
	if rel == "." || strings.HasSuffix(name, "/") {
		return "", RefuseDirectory
	}
	if !fs.ValidPath(rel) {
		// Not reachable after the checks above; kept so the promise in
		// the doc comment holds whatever changes above.
		return "", RefuseAbsolute
	}
	return rel, nil
}
