package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/noderange"
)

// usageError is a command used wrongly: exit code 2.
type usageError struct {
	msg   string
	hint  string   // a help command to point at, when the command's shape was wrong
	extra []string // lines shown under the message
}

func (e *usageError) Error() string { return e.msg }

// usagef makes a usage error about a value; cmd prefixes the message.
func usagef(cmd, format string, args ...any) error {
	return &usageError{msg: cmd + ": " + fmt.Sprintf(format, args...)}
}

// opError says which operation failed; the API's problem (or the transport
// error) is the detail.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + describe(e.err) }
func (e *opError) Unwrap() error { return e.err }

// fail wraps err with the operation that failed.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{op: op, err: err}
}

// describe turns an error into the readable tail of a one-line message. A
// problem with field errors gives its title only: report prints the fields
// on lines of their own.
func describe(err error) string {
	var p *client.Error
	if errors.As(err, &p) {
		if p.Detail == "" || restatesFields(p) {
			return lowerFirst(p.Title)
		}
		return p.Detail
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Scheme + "://" + u.Host
		}
		return fmt.Sprintf("cannot reach herd at %s: %v", host, ue.Err)
	}
	return err.Error()
}

// restatesFields reports whether a problem's detail only repeats its field
// errors, which report prints one per line anyway.
func restatesFields(p *client.Error) bool {
	for _, f := range p.Errors {
		if strings.Contains(p.Detail, f.Message) {
			return true
		}
	}
	return false
}

// reported is an error whose message is already printed: it only makes the
// exit status 1.
type reported struct{ err error }

func (r reported) Error() string { return r.err.Error() }
func (r reported) Unwrap() error { return r.err }

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || (len(s) > n && unicode.IsUpper(rune(s[n]))) {
		return s // an acronym such as "JSON ..." keeps its case
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// report prints err as one line, "herd: <what failed>: <detail>", followed
// by a line per field the API found fault with.
func (a *app) report(err error) {
	var ue *usageError
	if errors.As(err, &ue) {
		line := "herd: " + ue.msg
		if ue.hint != "" {
			line += fmt.Sprintf("; see '%s'", ue.hint)
		}
		fmt.Fprintln(a.stderr, line)
		for _, l := range ue.extra {
			fmt.Fprintln(a.stderr, "  "+l)
		}
		return
	}
	if errors.As(err, new(reported)) {
		return
	}
	fmt.Fprintln(a.stderr, "herd: "+err.Error())
	var p *client.Error
	if errors.As(err, &p) {
		for _, f := range p.Errors {
			fmt.Fprintf(a.stderr, "  %s: %s\n", f.Field, f.Message)
		}
		if p.Status == 401 {
			fmt.Fprintln(a.stderr, "  log in with 'herd login', or set HERD_TOKEN to an API token")
		}
	}
}

// rangeError turns a noderange error into a usage error that points at the
// position of the mistake.
func rangeError(cmd string, err error) error {
	var se *noderange.SyntaxError
	if errors.As(err, &se) && len(se.Input) <= 72 && se.Pos <= len(se.Input) {
		return &usageError{
			msg:   cmd + ": " + err.Error(),
			extra: []string{se.Input, strings.Repeat(" ", se.Pos) + "^"},
		}
	}
	return &usageError{msg: cmd + ": " + err.Error()}
}

// table writes aligned columns with text/tabwriter. Empty cells show as "-"
// so every column stays visible to the eye and to awk.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		// A tab or newline inside a value would break the columns.
		c = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// details writes "Key:  value" lines aligned on the values, for show.
type details struct {
	tw *tabwriter.Writer
}

func newDetails(w io.Writer) *details {
	return &details{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// add writes one line; more values go on continuation lines under the
// first. No values prints "-".
func (d *details) add(key string, values ...string) {
	if len(values) == 0 {
		values = []string{"-"}
	}
	for i, v := range values {
		k := key + ":"
		if i > 0 {
			k = ""
		}
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(d.tw, "%s\t%s\n", k, v)
	}
}

func (d *details) flush() error { return d.tw.Flush() }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// plural returns "1 node" or "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// yesNo shows a tri-state setting.
func yesNo(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "yes"
	}
	return "no"
}
