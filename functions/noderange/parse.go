package noderange

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDigits bounds a number inside brackets, so every range fits in an int
// and no single item can name more than a billion nodes.
const maxDigits = 9

// Range is a parsed noderange. It can be expanded many times, against
// different resolvers or limits, without parsing again. The zero Range
// expands to no names.
type Range struct {
	src   string
	terms []term
}

// term is one comma-separated part of a range: a name pattern or a group,
// adding names or, when exclude is set, removing them.
type term struct {
	pos     int    // byte offset of the term in the input, for errors
	exclude bool   // the term started with "-"
	group   string // non-empty for "@group"
	parts   []part // the name pattern otherwise
}

// part is a run of literal text or one bracketed set of numbers.
type part struct {
	lit   string
	items []item // nil for literal text
}

// item is one "lo" or "lo-hi" inside brackets, written at width digits
// (0: no padding).
type item struct {
	lo, hi int
	width  int
}

// SyntaxError reports input that is not a noderange: where it went wrong
// (a byte offset into Input) and what was expected there.
type SyntaxError struct {
	Input string
	Pos   int
	Msg   string
}

// Error names the input, the position and the problem.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("noderange %s: at %d: %s", excerpt(e.Input, e.Pos), e.Pos, e.Msg)
}

// excerpt quotes s, or a window of it around pos when s is long, so an
// error about a megabyte of input stays readable.
func excerpt(s string, pos int) string {
	const window = 32
	if len(s) <= 2*window {
		return strconv.Quote(s)
	}
	from, to := max(pos-window, 0), min(pos+window, len(s))
	q := strconv.Quote(s[from:to])
	if from > 0 {
		q = "..." + q
	}
	if to < len(s) {
		q += "..."
	}
	return q
}

// Parse reads a noderange such as "node[001-128],-node042,@gpu". It checks
// syntax only; groups are resolved, and limits applied, by Expand. The
// empty string is the empty range, which Fold returns for no names.
func Parse(s string) (Range, error) {
	p := parser{s: s}
	r := Range{src: s}
	if s == "" {
		return r, nil
	}
	for {
		t, err := p.term()
		if err != nil {
			return Range{}, err
		}
		r.terms = append(r.terms, t)
		if p.i == len(s) {
			return r, nil
		}
		if s[p.i] != ',' {
			return Range{}, p.errorf(p.i, `expected "," or end of input`)
		}
		p.i++
	}
}

// String returns the noderange as it was written.
func (r Range) String() string { return r.src }

// IsPattern reports whether s uses any noderange syntax (brackets, commas,
// "@group" or a leading "-") rather than naming a single node. It looks at
// the syntax only: it does not check that s parses.
func IsPattern(s string) bool {
	return strings.ContainsAny(s, "[],@") || strings.HasPrefix(s, "-")
}

type parser struct {
	s string
	i int
}

// errorf builds a SyntaxError at pos, naming what was found there unless
// the input ended.
func (p *parser) errorf(pos int, format string, args ...any) *SyntaxError {
	msg := fmt.Sprintf(format, args...)
	if pos < len(p.s) {
		_, size := utf8.DecodeRuneInString(p.s[pos:])
		msg += ", found " + strconv.Quote(p.s[pos:pos+size])
	}
	return &SyntaxError{Input: p.s, Pos: pos, Msg: msg}
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) term() (term, error) {
	t := term{pos: p.i}
	after := ""
	if p.peek() == '-' {
		t.exclude = true
		p.i++
		after = ` after "-"`
	}
	if p.peek() == '@' {
		p.i++
		start := p.i
		if !isAlnum(p.peek()) {
			return term{}, p.errorf(p.i, `expected a group name after "@"`)
		}
		for isNameByte(p.peek()) {
			p.i++
		}
		t.group = p.s[start:p.i]
		return t, nil
	}
	if c := p.peek(); !isAlnum(c) && c != '[' {
		return term{}, p.errorf(p.i, "expected a node name or @group%s", after)
	}
	for {
		switch c := p.peek(); {
		case isNameByte(c):
			start := p.i
			for isNameByte(p.peek()) {
				p.i++
			}
			t.parts = append(t.parts, part{lit: p.s[start:p.i]})
		case c == '[':
			items, err := p.set()
			if err != nil {
				return term{}, err
			}
			t.parts = append(t.parts, part{items: items})
		default:
			return t, nil
		}
	}
}

// set reads "[item,item...]" with p.i on the "[".
func (p *parser) set() ([]item, error) {
	var items []item
	sep := "["
	p.i++
	for {
		loPos := p.i
		lo, loText, err := p.number(sep)
		if err != nil {
			return nil, err
		}
		it := item{lo: lo, hi: lo}
		if len(loText) > 1 && loText[0] == '0' {
			it.width = len(loText)
		}
		single := true
		if p.peek() == '-' {
			single = false
			p.i++
			hi, hiText, err := p.number("-")
			if err != nil {
				return nil, err
			}
			if hi < lo {
				return nil, &SyntaxError{Input: p.s, Pos: loPos,
					Msg: fmt.Sprintf("descending range %s-%s, write %s-%s", loText, hiText, hiText, loText)}
			}
			it.hi = hi
		}
		items = append(items, it)
		switch p.peek() {
		case ',':
			p.i++
			sep = ","
		case ']':
			p.i++
			return items, nil
		default:
			if single {
				return nil, p.errorf(p.i, `expected "-", "," or "]"`)
			}
			return nil, p.errorf(p.i, `expected "," or "]"`)
		}
	}
}

// number reads a run of digits that follows sep.
func (p *parser) number(sep string) (int, string, error) {
	start := p.i
	for isDigit(p.peek()) {
		p.i++
	}
	text := p.s[start:p.i]
	if text == "" {
		return 0, "", p.errorf(p.i, "expected a number after %q", sep)
	}
	if len(text) > maxDigits {
		return 0, "", &SyntaxError{Input: p.s, Pos: start,
			Msg: fmt.Sprintf("number has more than %d digits", maxDigits)}
	}
	n, _ := strconv.Atoi(text) // cannot fail: at most 9 digits
	return n, text, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameByte(c byte) bool {
	return isAlnum(c) || c == '-' || c == '_' || c == '.'
}

// validName reports whether s is a node name: letters, digits, "-", "_"
// and ".", starting with a letter or digit.
func validName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}
