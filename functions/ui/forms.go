package ui

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// formProblems turns a refused save into what the form shows again:
// problems next to the fields the form has, the others above it, and the
// status to answer with. ok is false when the failure is not the user's to
// fix (storage down); the caller then shows an error page.
func formProblems(err error, known func(field string) bool) (f components.Form, status int, ok bool) {
	f.Errors = map[string]string{}
	add := func(field, msg string) {
		field = listField(field)
		if !known(field) {
			if field != "" {
				msg = field + ": " + msg
			}
			f.Problems = append(f.Problems, msg)
			return
		}
		if prev := f.Errors[field]; prev != "" {
			msg = prev + "; " + msg
		}
		f.Errors[field] = msg
	}
	var (
		ve *model.ValidationError
		se *store.Error
	)
	switch {
	case errors.As(err, &ve):
		for _, p := range ve.Problems {
			add(p.Field, p.Message)
		}
		return f, http.StatusUnprocessableEntity, true
	case errors.As(err, &se):
		switch se.Kind {
		case store.KindPrecondition:
			f.Message = "Not saved: someone else changed this since you opened the form (" + se.Msg +
				"). Your edits are kept below; load the current version and make them again."
			return f, http.StatusConflict, true
		case store.KindNotFound:
			f.Message = "Not saved: " + se.Msg + "."
			return f, http.StatusNotFound, true
		case store.KindConflict, store.KindInvalid:
			if se.Field == "" {
				f.Message = "Not saved: " + se.Msg + "."
			} else {
				add(se.Field, se.Msg)
			}
			if se.Kind == store.KindConflict {
				return f, http.StatusConflict, true
			}
			return f, http.StatusUnprocessableEntity, true
		}
	}
	return f, 0, false
}

// listField maps a problem with one item of a list typed as
// comma-separated text ("tags[2]") to the field holding the list.
func listField(field string) string {
	i := strings.IndexByte(field, '[')
	if i <= 0 || !strings.HasSuffix(field, "]") {
		return field
	}
	switch base := field[:i]; base {
	case "tags", "power_supplies", "outlets", "ports":
		return base
	}
	return field
}

// fieldSet says whether a field is one of names.
func fieldSet(names ...string) func(string) bool {
	return func(f string) bool {
		for _, n := range names {
			if n == f {
				return true
			}
		}
		return false
	}
}

// splitList reads a list typed as text: items separated by commas or
// white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// joinList writes a list for a text field.
func joinList(items []string) string { return strings.Join(items, ", ") }

// parseStateless reads the root file system choice: "" inherits.
func parseStateless(s string) (*bool, bool) {
	switch s {
	case "":
		return nil, true
	case "true", "false":
		b := s == "true"
		return &b, true
	}
	return nil, false
}

func formatStateless(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// parseRevision reads the revision the form was opened at.
func parseRevision(s string) (int64, bool) {
	rev, err := strconv.ParseInt(s, 10, 64)
	return rev, err == nil && rev > 0
}

// settingsForm holds the inherited settings as typed.
type settingsForm struct {
	Image, Branch, DiskLayout, Stateless, PowerMethod string
	Kernel, KernelArgs                                string
}

// readSettings reads the inheritable settings from a form; problems are
// added to bad.
func readSettings(r *http.Request, bad map[string]string) (settingsForm, model.Settings) {
	f := settingsForm{
		Image:       strings.TrimSpace(r.PostForm.Get("image")),
		Branch:      strings.TrimSpace(r.PostForm.Get("branch")),
		DiskLayout:  strings.TrimSpace(r.PostForm.Get("disk_layout")),
		Stateless:   r.PostForm.Get("stateless"),
		PowerMethod: r.PostForm.Get("power_method"),
		Kernel:      strings.TrimSpace(r.PostForm.Get("kernel")),
		KernelArgs:  strings.Join(strings.Fields(r.PostForm.Get("kernel_args")), " "),
	}
	s := model.Settings{Image: f.Image, Branch: f.Branch, DiskLayout: f.DiskLayout, PowerMethod: model.PowerMethod(f.PowerMethod),
		Kernel: f.Kernel, KernelArgs: f.KernelArgs}
	st, ok := parseStateless(f.Stateless)
	if !ok {
		bad["stateless"] = "choose stateful, stateless or inherit"
	}
	s.Stateless = st
	return f, s
}

// pageProblems adds the problems found while reading the form to those
// the model finds in the value, so the user sees all of them at once.
func pageProblems(bad map[string]string, verr error) error {
	ve := &model.ValidationError{}
	for _, field := range slices.Sorted(maps.Keys(bad)) {
		ve.Problems = append(ve.Problems, model.FieldProblem{Field: field, Message: bad[field]})
	}
	var more *model.ValidationError
	if errors.As(verr, &more) {
		for _, p := range more.Problems {
			if _, dup := bad[p.Field]; !dup {
				ve.Problems = append(ve.Problems, p)
			}
		}
	}
	return ve
}

// keepUnformed copies onto what a form describes the settings the form
// has no field for (plugin settings, sync policy), so that saving a page
// never drops what the CLI or the API set. Only from the revision the
// form was opened at: a newer one fails the replace as a conflict anyway.
func keepUnformed(to *model.Settings, stored model.Settings) {
	to.CheckEveryBoot, to.SyncVerify, to.Plugins = stored.CheckEveryBoot, stored.SyncVerify, stored.Plugins
}

// keepUnformedNode keeps a node's settings and BMC fields that its form
// does not show.
func (u *UI) keepUnformedNode(ctx context.Context, n *model.Node, rev int64) error {
	cur, err := u.store.GetNode(ctx, n.Name)
	if err != nil || cur.Revision != rev {
		return err
	}
	keepUnformed(&n.Settings, cur.Settings)
	n.BMC.Fingerprint = cur.BMC.Fingerprint
	return nil
}

// keepUnformedGroup keeps a group's settings that its form does not show.
func (u *UI) keepUnformedGroup(ctx context.Context, g *model.Group, rev int64) error {
	cur, err := u.store.GetGroup(ctx, g.Name)
	if err != nil || cur.Revision != rev {
		return err
	}
	keepUnformed(&g.Settings, cur.Settings)
	return nil
}
