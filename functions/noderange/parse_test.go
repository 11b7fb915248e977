package noderange

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{"node[1-", 7, `expected a number after "-"`},
		{"node[1-x]", 7, `expected a number after "-", found "x"`},
		{"node[", 5, `expected a number after "["`},
		{"node[]", 5, `expected a number after "[", found "]"`},
		{"node[-3]", 5, `expected a number after "[", found "-"`},
		{"node[1,]", 7, `expected a number after ",", found "]"`},
		{"node[1", 6, `expected "-", "," or "]"`},
		{"node[1-3", 8, `expected "," or "]"`},
		{"node[1-3;4]", 8, `expected "," or "]", found ";"`},
		{"node[1x]", 6, `expected "-", "," or "]", found "x"`},
		{"node[1-2-3]", 8, `expected "," or "]", found "-"`},
		{"node[[1]]", 5, `expected a number after "[", found "["`},
		{"node[5-1]", 5, "descending range 5-1, write 1-5"},
		{"n[1,010-002]", 4, "descending range 010-002, write 002-010"},
		{"node[1234567890]", 5, "number has more than 9 digits"},
		{"node[1-0000000001]", 7, "number has more than 9 digits"},
		{"node1]", 5, `expected "," or end of input, found "]"`},
		{"node1,", 6, "expected a node name or @group"},
		{",node1", 0, `expected a node name or @group, found ","`},
		{"node1,,node2", 6, `expected a node name or @group, found ","`},
		{"node1, node2", 6, `expected a node name or @group, found " "`},
		{"node 1", 4, `expected "," or end of input, found " "`},
		{"-", 1, `expected a node name or @group after "-"`},
		{"--node1", 1, `expected a node name or @group after "-", found "-"`},
		{"-_x", 1, `expected a node name or @group after "-", found "_"`},
		{".node", 0, `expected a node name or @group, found "."`},
		{"nöde", 1, `expected "," or end of input, found "ö"`},
		{"node\xff", 4, `expected "," or end of input, found "\xff"`},
		{"@", 1, `expected a group name after "@"`},
		{"@-gpu", 1, `expected a group name after "@", found "-"`},
		{"-@", 2, `expected a group name after "@"`},
		{"@gpu[1-2]", 4, `expected "," or end of input, found "["`},
		{"node@gpu", 4, `expected "," or end of input, found "@"`},
		{"a,b,c[1-2],-d[", 14, `expected a number after "["`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if se.Input != tt.in || se.Pos != tt.pos || se.Msg != tt.msg {
			t.Errorf("Parse(%q) = {Pos: %d, Msg: %q}, want {Pos: %d, Msg: %q}", tt.in, se.Pos, se.Msg, tt.pos, tt.msg)
		}
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Expand("node[1-", nil)
	want := `noderange "node[1-": at 7: expected a number after "-"`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}

	// A long input is shown around the mistake, not in full.
	long := strings.Repeat("node1,", 1000) + "node[" + strings.Repeat("x,", 1000)
	_, err = Parse(long)
	if err == nil {
		t.Fatal("Parse of a long bad input succeeded")
	}
	msg := err.Error()
	if len(msg) > 200 || !strings.Contains(msg, `..."`) || !strings.Contains(msg, "at 6005:") {
		t.Errorf("long input error = %s", msg)
	}
}

func TestRangeString(t *testing.T) {
	const in = "node[001-003],-node002,@gpu"
	r, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.String(); got != in {
		t.Errorf("String() = %q, want %q", got, in)
	}
}

func TestIsPattern(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"node1", false},
		{"node-1.ib", false},
		{"n", false},
		{"", false},
		{"foo bar", false},
		{"node[1-3]", true},
		{"node[1]", true},
		{"node1,node2", true},
		{"@gpu", true},
		{"-node1", true},
		{"node]", true},
	}
	for _, tt := range tests {
		if got := IsPattern(tt.in); got != tt.want {
			t.Errorf("IsPattern(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
