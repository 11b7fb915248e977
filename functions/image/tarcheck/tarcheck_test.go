package tarcheck

import (
	"archive/tar"
	"errors"
	"strings"
	"testing"
)

func dir(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
func file(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}
}
func symlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}
func hardlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
}

func TestChecker(t *testing.T) {
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		name    string
		headers []*tar.Header
		want    error // for the last header; the others must pass
	}{
		{"plain tree", []*tar.Header{dir("./"), dir("./usr/"), file("./usr/a", 3), hardlink("./usr/b", "./usr/a")}, nil},
		{"implied parents", []*tar.Header{file("usr/lib/x", 1), dir("usr/lib")}, nil},
		{"identical dir twice", []*tar.Header{dir("etc"), dir("./etc/")}, nil},
		{"absolute symlink", []*tar.Header{symlink("usr/bin/python", "/usr/bin/python3")}, nil},
		{"relative symlink inside", []*tar.Header{symlink("usr/lib/x.so", "../../lib/x.so")}, nil},
		{"unicode and spaces", []*tar.Header{file("home/zoë/my file", 1)}, nil},
		{"device", []*tar.Header{{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, nil},

		{"absolute", []*tar.Header{file("/etc/passwd", 1)}, ErrAbsolute},
		{"dotdot", []*tar.Header{file("../etc/passwd", 1)}, ErrEscape},
		{"dotdot inside", []*tar.Header{file("a/../b", 1)}, ErrEscape},
		{"empty", []*tar.Header{file("", 1)}, ErrEmpty},
		{"NUL", []*tar.Header{file("a\x00b", 1)}, ErrControl},
		{"newline", []*tar.Header{file("a\nb", 1)}, ErrControl},
		{"long segment", []*tar.Header{file("a/"+long, 1)}, ErrTooLong},
		{"long path", []*tar.Header{file(strings.Repeat("abcdefgh/", 456), 1)}, ErrTooLong},
		{"duplicate file", []*tar.Header{file("a", 1), file("./a", 2)}, ErrDuplicate},
		{"dir differs", []*tar.Header{dir("etc"), {Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o700}}, ErrDuplicate},
		{"file over implied dir", []*tar.Header{file("a/b", 1), file("a", 1)}, ErrDuplicate},
		{"root not a dir", []*tar.Header{file("./", 0)}, ErrType},
		{"beneath symlink", []*tar.Header{symlink("lib", "/usr/lib"), file("lib/x", 1)}, ErrParent},
		{"beneath file", []*tar.Header{file("a", 1), file("a/b", 1)}, ErrParent},
		{"hardlink absent", []*tar.Header{hardlink("b", "a")}, ErrLinkTarget},
		{"hardlink outside", []*tar.Header{hardlink("b", "../a")}, ErrLinkTarget},
		{"hardlink absolute", []*tar.Header{file("a", 1), hardlink("b", "/a")}, ErrLinkTarget},
		{"hardlink to dir", []*tar.Header{dir("d"), hardlink("b", "d")}, ErrLinkTarget},
		{"hardlink to itself", []*tar.Header{hardlink("a", "a")}, ErrLinkTarget},
		{"symlink climbs", []*tar.Header{symlink("usr/x", "../../etc/shadow")}, ErrLinkTarget},
		{"symlink climbs and returns", []*tar.Header{symlink("x", "../x")}, ErrLinkTarget},
		{"symlink empty", []*tar.Header{symlink("x", "")}, ErrLinkTarget},
		{"symlink control", []*tar.Header{symlink("x", "a\x01")}, ErrControl},
		{"unsupported type", []*tar.Header{{Name: "x", Typeflag: 'V'}}, ErrType},
		{"negative size", []*tar.Header{file("x", -1)}, ErrSize},
		{"huge size", []*tar.Header{file("x", 1<<41)}, ErrSize},
		{"negative uid", []*tar.Header{{Name: "x", Typeflag: tar.TypeReg, Uid: -1}}, ErrRange},
		{"huge device", []*tar.Header{{Name: "x", Typeflag: tar.TypeBlock, Devmajor: 1 << 33}}, ErrRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChecker(DefaultLimits())
			last := len(tc.headers) - 1
			for i, h := range tc.headers[:last] {
				if err := c.Check(h); err != nil {
					t.Fatalf("header %d: %v", i, err)
				}
			}
			err := c.Check(tc.headers[last])
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Index != last || ee.Name != tc.headers[last].Name {
				t.Errorf("error %v does not name entry %d %q", err, last, tc.headers[last].Name)
			}
		})
	}
}

func TestCheckerTooMany(t *testing.T) {
	c := NewChecker(Limits{MaxEntries: 2, MaxEntrySize: 1})
	for _, name := range []string{"a", "b"} {
		if err := c.Check(file(name, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Check(file("c", 1)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("third entry: %v, want ErrTooMany", err)
	}
}
