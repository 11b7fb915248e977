package noderange

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// groups is a resolver over a fixed table; unknown groups are an error.
func groups(table map[string][]string) Resolver {
	return func(g string) ([]string, error) {
		m, ok := table[g]
		if !ok {
			return nil, fmt.Errorf("no group %q", g)
		}
		return m, nil
	}
}

// testGroups is the group table the tests resolve against.
func testGroups() map[string][]string {
	return map[string][]string{
		"gpu":     {"gpu01", "gpu02", "gpu03"},
		"drained": {"gpu02", "node2"},
		"empty":   {},
		"bad":     {"ok1", "not ok"},
		"blank":   {""},
		"big":     names("b", 60000),
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestExpand(t *testing.T) {
	tests := []struct {
		in   string
		want string // space-separated
	}{
		// Plain names and lists.
		{"", ""},
		{"cpu7", "cpu7"},
		{"a,b,c", "a b c"},
		{"7", "7"},
		{"node-1.ib_0", "node-1.ib_0"},
		{"node[1-3,7,10-12]", "node1 node2 node3 node7 node10 node11 node12"},
		{"node[2]", "node2"},
		{"node[001-128],gpu[01-04],cpu7", strings.Join(append(append(
			seq("node%03d", 1, 128), seq("gpu%02d", 1, 4)...), "cpu7"), " ")},
		// Padding comes from the lower bound.
		{"node[001-003]", "node001 node002 node003"},
		{"n[8-10]", "n8 n9 n10"},
		{"n[08-10]", "n08 n09 n10"},
		{"n[0-2]", "n0 n1 n2"},
		{"n[00-02]", "n00 n01 n02"},
		{"n[007]", "n007"},
		{"n[098-101]", "n098 n099 n100 n101"},
		{"n[1-010]", strings.Join(seq("n%d", 1, 10), " ")},
		{"n[1,01,001]", "n1 n01 n001"},
		{"n[99-100]", "n99 n100"},
		{"n[999999998-999999999]", "n999999998 n999999999"},
		// Sets anywhere in a name, and cartesian products.
		{"[1-3]", "1 2 3"},
		{"[1-2]n", "1n 2n"},
		{"node[1-2]-ib", "node1-ib node2-ib"},
		{"rack[1-2]n[01-02]", "rack1n01 rack1n02 rack2n01 rack2n02"},
		{"r[1-2][1-2][1-2]", "r111 r112 r121 r122 r211 r212 r221 r222"},
		// Order, duplicates and exclusions.
		{"b,a,b,c,a", "b a c"},
		{"n[1-3,2-4]", "n1 n2 n3 n4"},
		{"node[1-10],-node5", "node1 node2 node3 node4 node6 node7 node8 node9 node10"},
		{"node[1-10],-node[3-4]", "node1 node2 node5 node6 node7 node8 node9 node10"},
		{"node[1-3],-node[1-3]", ""},
		{"-node1", ""},
		{"-node1,node1", "node1"},
		{"node[1-3],-node2,node2", "node1 node3 node2"},
		{"node[1-3],-node9", "node1 node2 node3"},
		{"node[1-3],-node[1-2],node1,-node3", "node1"},
		{"node[01-03],-node1", "node01 node02 node03"},
		// Groups.
		{"@gpu", "gpu01 gpu02 gpu03"},
		{"@gpu,node[1-3],-@drained", "gpu01 gpu03 node1 node3"},
		{"@gpu,-gpu02", "gpu01 gpu03"},
		{"gpu[01-04],-@gpu", "gpu04"},
		{"@empty,n1", "n1"},
		{"@gpu,@gpu", "gpu01 gpu02 gpu03"},
	}
	resolve := groups(testGroups())
	for _, tt := range tests {
		got, err := Expand(tt.in, resolve)
		if err != nil {
			t.Errorf("Expand(%q) error: %v", tt.in, err)
			continue
		}
		want := strings.Fields(tt.want)
		if !slices.Equal(got, want) {
			t.Errorf("Expand(%q) = %v, want %v", tt.in, got, want)
		}
	}
}

func seq(format string, lo, hi int) []string {
	var out []string
	for i := lo; i <= hi; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	return out
}

func TestExpandGroupErrors(t *testing.T) {
	errNoLDAP := errors.New("ldap unreachable")
	tests := []struct {
		in      string
		resolve Resolver
		want    string
		is      error
	}{
		{"n1,@gpu", nil, `noderange "n1,@gpu": at 3: group "gpu" needs a group resolver, and none was given`, nil},
		{"-@gpu", nil, `noderange "-@gpu": at 0: group "gpu" needs a group resolver, and none was given`, nil},
		{"@nosuch", groups(testGroups()), `noderange "@nosuch": at 0: resolve group "nosuch": no group "nosuch"`, nil},
		{"@bad", groups(testGroups()), `noderange "@bad": at 0: group "bad" has member "not ok", which is not a node name`, nil},
		{"n1,@blank", groups(testGroups()), `noderange "n1,@blank": at 3: group "blank" has member "", which is not a node name`, nil},
		{"@gpu", func(string) ([]string, error) { return nil, errNoLDAP },
			`noderange "@gpu": at 0: resolve group "gpu": ldap unreachable`, errNoLDAP},
	}
	for _, tt := range tests {
		_, err := Expand(tt.in, tt.resolve)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Expand(%q) error = %v, want %s", tt.in, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Expand(%q) error %v does not wrap %v", tt.in, err, tt.is)
		}
	}
}

func TestExpandCallsResolverOncePerGroup(t *testing.T) {
	calls := 0
	resolve := func(g string) ([]string, error) {
		calls++
		return testGroups()[g], nil
	}
	got, err := Expand("@gpu,-@gpu,@gpu", resolve)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(got) != 3 {
		t.Errorf("got %v after %d resolver calls, want 3 names after 1 call", got, calls)
	}
}

func TestExpandLimit(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		pos   int // -1: no error
	}{
		{"n[1-100000]", 0, -1},
		{"n[1-100001]", 0, 0},
		{"n[1-10]", 10, -1},
		{"n[1-11]", 10, 0},
		{"n[1-5],m[1-6]", 10, 7},
		{"n[1-5],-n[1-6]", 10, 7},         // exclusions are work too
		{"n[1-5,1-6]", 10, 0},             // so are duplicates
		{"a,b,c,d,e,f,g,h,i,j", 10, -1},   // exactly at the limit
		{"a,b,c,d,e,f,g,h,i,j,k", 10, 20}, // one past
		{"n[1-100]m[1-100]", 10000, -1},
		{"n[1-100]m[1-101]", 10000, 0},
		{"n[1-999999999]m[1-999999999]", 0, 0},
		{"n[1-999999999]m[1-999999999]x[1-999999999]y[1-999999999]", math.MaxInt, 0},
		{"@big", 0, -1},
		{"@big,@big", 0, 5},
		{"n[1-50000],@big", 0, 11},
		{"@big,n[1-50001],-n[1-50000]", 0, 16}, // counted before resolving
	}
	table := testGroups()
	for _, tt := range tests {
		calls := 0
		resolve := func(g string) ([]string, error) {
			calls++
			return table[g], nil
		}
		r, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		_, err = r.ExpandLimit(resolve, tt.limit)
		if tt.pos < 0 {
			if err != nil {
				t.Errorf("ExpandLimit(%q, %d) error: %v", tt.in, tt.limit, err)
			}
			continue
		}
		var le *LimitError
		if !errors.As(err, &le) {
			t.Errorf("ExpandLimit(%q, %d) error = %v, want a *LimitError", tt.in, tt.limit, err)
			continue
		}
		if le.Pos != tt.pos || le.Input != tt.in {
			t.Errorf("ExpandLimit(%q, %d) error at %d, want at %d", tt.in, tt.limit, le.Pos, tt.pos)
		}
		if tt.in == "@big,n[1-50001],-n[1-50000]" && calls != 0 {
			t.Errorf("resolver called %d times for a range already over the limit", calls)
		}
	}
}

func TestLimitErrorMessage(t *testing.T) {
	_, err := Expand("node[1-200000]", nil)
	want := `noderange "node[1-200000]": at 0: expands to more than 100000 names`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestExpandReusesRange(t *testing.T) {
	r, err := Parse("@gpu,n[1-2]")
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Expand(groups(testGroups()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Expand(groups(map[string][]string{"gpu": {"g1"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, []string{"gpu01", "gpu02", "gpu03", "n1", "n2"}) || !slices.Equal(b, []string{"g1", "n1", "n2"}) {
		t.Errorf("expansions = %v and %v", a, b)
	}
	var zero Range
	if got, err := zero.Expand(nil); err != nil || len(got) != 0 {
		t.Errorf("zero Range expands to %v, %v", got, err)
	}
}

func BenchmarkExpand(b *testing.B) {
	r, err := Parse("node[0001-4096],-node[0100-0199]")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := r.Expand(nil)
		if err != nil || len(got) != 3996 {
			b.Fatalf("got %d names, %v", len(got), err)
		}
	}
}
