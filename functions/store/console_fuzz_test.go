package store

import "testing"

// FuzzConsoleCursor: a cursor from a client either is refused or prints
// back as it was read.
func FuzzConsoleCursor(f *testing.F) {
	for _, s := range []string{"", "1.6", "0.0", "18446744073709551615.9", "1.", "x", "1.-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConsoleCursor(s)
		if err != nil {
			return
		}
		again, err := ParseConsoleCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("%q read as %+v, printed %q, read again as %+v (%v)", s, c, c.String(), again, err)
		}
	})
}
