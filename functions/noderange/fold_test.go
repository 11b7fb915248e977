package noderange

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	tests := []struct {
		in   string // space-separated
		want string
	}{
		{"", ""},
		{"node001 node002 node003 gpu1", "gpu1,node[001-003]"},
		{"node1", "node1"},
		{"node1 node1", "node1"},
		{"login", "login"},
		{"node3 node1 node2 node7 node9 node8", "node[1-3,7-9]"},
		{"node1 node2", "node[1-2]"},
		{"node1 node3", "node[1,3]"},
		{"n8 n9 n10", "n[8-10]"},
		{"n08 n09 n10 n11", "n[08-11]"},
		{"n01 n1", "n1,n01"},
		{"n01 n02 n1 n2", "n[1-2],n[01-02]"},
		{"n098 n099 n100 n101", "n[098-101]"},
		{"n01 n99 n100", "n[01,99-100]"},
		{"n1 n10", "n[1,10]"},
		{"n0 n1 n2", "n[0-2]"},
		{"n00 n01", "n[00-01]"},
		{"node1-ib node2-ib node3", "node3,node[1-2]-ib"},
		{"rack1n01 rack1n02 rack2n01 rack2n02", "rack1n[01-02],rack2n[01-02]"},
		{"rack10n1 rack2n1 rack1n1", "rack1n1,rack2n1,rack10n1"},
		{"1 2 3 x", "[1-3],x"},
		{"n1234567890 n1234567891", "n1234567890,n1234567891"},
		{"node node1 node2", "node,node[1-2]"},
	}
	for _, tt := range tests {
		in := strings.Fields(tt.in)
		if got := Fold(in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
		got, err := Expand(Fold(in), nil)
		if err != nil {
			t.Errorf("Expand(Fold(%q)): %v", tt.in, err)
			continue
		}
		if !sameSet(got, in) {
			t.Errorf("Expand(Fold(%q)) = %v", tt.in, got)
		}
	}
}

// TestFoldRoundTrip folds random sets of names, shuffled, and checks that
// the result expands to the same set and does not depend on the order.
func TestFoldRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := []string{"", "n", "node", "gpu", "rack1n", "rack10n", "a-b.", "x_"}
	suffixes := []string{"", "", "", "-ib", ".mgmt", "a", "a1"}
	for round := range 2000 {
		var in []string
		for range rng.IntN(60) {
			p := prefixes[rng.IntN(len(prefixes))]
			s := suffixes[rng.IntN(len(suffixes))]
			switch k := rng.IntN(10); {
			case k == 0 && p != "":
				in = append(in, p+s) // no number of its own
			case k == 1:
				in = append(in, fmt.Sprintf("%s%d%s", p, rng.IntN(10_000_000_000), s)) // too long for brackets
			default:
				width := rng.IntN(5)
				n := rng.IntN(120)
				if rng.IntN(4) == 0 {
					n = rng.IntN(1_000_000_000)
				}
				in = append(in, fmt.Sprintf("%s%0*d%s", p, width, n, s))
			}
		}
		in = slices.DeleteFunc(in, func(s string) bool { return !validName(s) })
		folded := Fold(in)
		got, err := Expand(folded, nil)
		if err != nil {
			t.Fatalf("round %d: Expand(Fold(%q)) = %q: %v", round, in, folded, err)
		}
		if !sameSet(got, in) {
			t.Fatalf("round %d: Expand(Fold(%q)) = Expand(%q) = %q", round, in, folded, got)
		}
		rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		if again := Fold(in); again != folded {
			t.Fatalf("round %d: Fold depends on order: %q vs %q", round, folded, again)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
