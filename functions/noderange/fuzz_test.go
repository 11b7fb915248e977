package noderange

import (
	"errors"
	"slices"
	"testing"
)

// FuzzParse checks that no input makes Parse or Expand panic, that errors
// are the documented kinds, and that whatever expands folds back to the
// same set.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"node1",
		"node[001-128],gpu[01-04],cpu7",
		"node[1-3,7,10-12]",
		"n[8-10]",
		"n[01-100]",
		"rack[1-2]n[01-02]",
		"node[1-10],-node[3-4],-node7",
		"@gpu,-@fail,n1",
		"-@gpu",
		"node[1-",
		"node[5-1]",
		"node[1234567890]",
		"n[1-999999999]m[1-999999999]",
		"[0-9][0-9][0-9][0-9]",
		"a,b,,c",
		"nöde",
	} {
		f.Add(s)
	}
	errResolve := errors.New("no such group")
	resolve := func(g string) ([]string, error) {
		if g == "fail" {
			return nil, errResolve
		}
		return []string{g, g + "1", g + "01", "x" + g}, nil
	}
	const limit = 10000
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Input != s || se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Parse(%q) error = %#v", s, err)
			}
			_ = se.Error()
			return
		}
		if r.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, r.String())
		}
		got, err := r.ExpandLimit(resolve, limit)
		if err != nil {
			var le *LimitError
			if !errors.As(err, &le) && !errors.Is(err, errResolve) {
				t.Fatalf("Expand(%q) error = %v", s, err)
			}
			return
		}
		if len(got) > limit {
			t.Fatalf("Expand(%q) gave %d names, limit %d", s, len(got), limit)
		}
		seen := make(map[string]bool, len(got))
		for _, n := range got {
			if seen[n] || !validName(n) {
				t.Fatalf("Expand(%q) gave duplicate or invalid name %q", s, n)
			}
			seen[n] = true
		}
		if !IsPattern(s) && s != "" && !slices.Equal(got, []string{s}) {
			t.Fatalf("Expand(%q) = %q, want the name itself", s, got)
		}
		folded := Fold(got)
		again, err := Expand(folded, nil)
		if err != nil {
			t.Fatalf("Expand(Fold(Expand(%q))) = Expand(%q): %v", s, folded, err)
		}
		if !sameSet(again, got) {
			t.Fatalf("Expand(Fold(Expand(%q))) = Expand(%q) = %q, want %q", s, folded, again, got)
		}
	})
}
