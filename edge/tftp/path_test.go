package tftp

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name string
		want string
		err  Refusal
	}{
		{name: "undionly.kpxe", want: "undionly.kpxe"},
		{name: "/undionly.kpxe", want: "undionly.kpxe"},
		{name: "efi/x64/snponly.efi", want: "efi/x64/snponly.efi"},
		{name: "/efi//x64/./snponly.efi", want: "efi/x64/snponly.efi"},
		{name: "./a", want: "a"},
		{name: "a b.efi", want: "a b.efi"},
		{name: "ü.efi", want: "ü.efi"},
		{name: strings.Repeat("a", 255), want: strings.Repeat("a", 255)},

		{name: "", err: RefuseEmpty},
		{name: strings.Repeat("a", 256), err: RefuseTooLong},
		{name: "a\x00b", err: RefuseNUL},
		{name: "a\nb", err: RefuseControl},
		{name: "a\x7fb", err: RefuseControl},
		{name: "a\u0085b", err: RefuseControl},
		{name: `efi\x64\snponly.efi`, err: RefuseBackslash},
		{name: `..\x`, err: RefuseBackslash},
		{name: "\xff\xfe", err: RefuseUTF8},
		{name: "//etc/passwd", err: RefuseAbsolute},
		{name: "../etc/passwd", err: RefuseDotDot},
		{name: "/../x", err: RefuseDotDot},
		{name: "..", err: RefuseDotDot},
		{name: "a/..", err: RefuseDotDot},
		{name: "a/../b", err: RefuseDotDot},
		{name: "a/./../../b", err: RefuseDotDot},
		{name: "/", err: RefuseDirectory},
		{name: ".", err: RefuseDirectory},
		{name: "efi/", err: RefuseDirectory},
	}
	for _, tt := range tests {
		got, err := CleanPath(tt.name)
		if tt.err != "" {
			if err != tt.err {
				t.Errorf("CleanPath(%q) = %q, %v; want refusal %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// FuzzCleanPath checks what CleanPath promises for any input: an accepted
// name is a valid relative path with no "..", within the length limit, free
// of NUL, backslash and control characters, and joined to a root it stays
// inside that root.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"undionly.kpxe", "/snponly.efi", "../etc/passwd", "/../x", "a/./b//c",
		`..\..\x`, "a\x00b", "\xc0\xaf", "....//", ".../x", "/.", "//",
	} {
		f.Add(s)
	}
	root := filepath.Join(string(os.PathSeparator), "srv", "tftp")
	f.Fuzz(func(t *testing.T, name string) {
		got, err := CleanPath(name)
		if err != nil {
			if _, ok := err.(Refusal); !ok {
				t.Fatalf("CleanPath(%q) error %T is not a Refusal", name, err)
			}
			return
		}
		switch {
		case !fs.ValidPath(got) || got == ".":
			t.Fatalf("CleanPath(%q) = %q: not a valid relative path", name, got)
		case len(got) > MaxNameLen:
			t.Fatalf("CleanPath(%q) = %q: too long", name, got)
		case strings.ContainsAny(got, "\x00\\"):
			t.Fatalf("CleanPath(%q) = %q: NUL or backslash", name, got)
		case strings.IndexFunc(got, unicode.IsControl) >= 0:
			t.Fatalf("CleanPath(%q) = %q: control character", name, got)
		case strings.Contains(name, ".."+"/") || strings.HasSuffix(name, "/..") || name == "..":
			for seg := range strings.SplitSeq(name, "/") {
				if seg == ".." {
					t.Fatalf("CleanPath(%q) = %q: accepted a .. segment", name, got)
				}
			}
		}
		joined := filepath.Join(root, got)
		if !strings.HasPrefix(joined, root+string(os.PathSeparator)) {
			t.Fatalf("CleanPath(%q) = %q leaves the root: %s", name, got, joined)
		}
	})
}
