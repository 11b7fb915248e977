package store

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest image or branch name, in bytes.
const MaxNameLen = 200

// ErrExists is returned when a move would overwrite an image or branch that
// already exists (a rename or new branch onto a taken name).
var ErrExists = errors.New("already exists")

// ErrLiveBranch is returned for deleting an image's live branch: make
// another branch live first.
var ErrLiveBranch = errors.New("is the image's live branch")

// NameError says why an image or branch name is not allowed. The API
// answers it as a bad request.
type NameError struct {
	Kind   string // "image" or "branch"
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s name %q: %s", e.Kind, e.Name, e.Reason)
}

// CheckName reports whether name may name an image or a branch (kind says
// which, for the error): any characters, spaces, slashes and non-ASCII
// letters included, but valid UTF-8, not empty, no control characters and
// at most MaxNameLen bytes. Names are labels, never paths; object keys
// escape them (KeySegment).
func CheckName(kind, name string) error {
	fail := func(reason string) error { return &NameError{Kind: kind, Name: name, Reason: reason} }
	switch {
	case name == "":
		return fail("empty")
	case len(name) > MaxNameLen:
		return fail(fmt.Sprintf("%d bytes: limit %d", len(name), MaxNameLen))
	case !utf8.ValidString(name):
		return fail("not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fail(fmt.Sprintf("control character %U", r))
		}
	}
	return nil
}
