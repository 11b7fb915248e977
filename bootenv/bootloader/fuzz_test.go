package bootloader

import "testing"

// FuzzParseEfibootmgr checks that any output parses without a panic into
// four-digit entry numbers.
func FuzzParseEfibootmgr(f *testing.F) {
	f.Add(listing)
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range ParseEfibootmgr(s).Entries {
			if len(e.Num) != 4 || !isHex(e.Num) {
				t.Fatalf("entry number %q from %q", e.Num, s)
			}
		}
	})
}
