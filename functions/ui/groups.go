package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func (u *UI) groups(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	page, err := u.store.ListGroups(r.Context(), store.ListOptions{Limit: 1000})
	if err != nil {
		return err
	}
	var v components.GroupsView
	for _, g := range page.Items {
		members, err := u.store.GroupMembers(r.Context(), g.Name)
		if err != nil && !store.IsKind(err, store.KindNotFound) {
			return err
		}
		v.Groups = append(v.Groups, components.GroupRow{Group: g, Members: len(members)})
	}
	return u.render(w, r, http.StatusOK, components.GroupsPage(u.frame(w, r, id, "groups", "Groups"), v))
}

func groupForm(g model.Group) components.GroupForm {
	return components.GroupForm{
		Revision: g.Revision, Name: g.Name, Description: g.Description,
		Image: g.Image, Branch: g.Branch, DiskLayout: g.DiskLayout, Kernel: g.Kernel, KernelArgs: g.KernelArgs,
		Stateless: formatStateless(g.Stateless), PowerMethod: string(g.PowerMethod), Tags: joinList(g.Tags),
	}
}

// readGroupForm reads a posted group form: as typed, as a group, and
// problems found while reading.
func readGroupForm(r *http.Request) (components.GroupForm, model.Group, map[string]string) {
	pf := r.PostForm
	bad := map[string]string{}
	sf, settings := readSettings(r, bad)
	f := components.GroupForm{
		Name: strings.TrimSpace(pf.Get("name")), Description: strings.TrimSpace(pf.Get("description")),
		Image: sf.Image, Branch: sf.Branch, DiskLayout: sf.DiskLayout, Stateless: sf.Stateless, PowerMethod: sf.PowerMethod,
		Kernel: sf.Kernel, KernelArgs: sf.KernelArgs,
		Tags: pf.Get("tags"),
	}
	g := model.Group{Name: f.Name, Description: f.Description, Tags: splitList(f.Tags), Settings: settings}
	if s := pf.Get("revision"); s != "" {
		rev, ok := parseRevision(s)
		if !ok {
			bad["revision"] = "the form is damaged; open it again"
		}
		f.Revision = rev
	}
	return f, g, bad
}

func groupFields() func(string) bool {
	return fieldSet("name", "description", "image", "branch", "disk_layout", "stateless", "power_method", "tags")
}

func (u *UI) groupFormFailed(w http.ResponseWriter, r *http.Request, id auth.Identity, f components.GroupForm, err error, title string) error {
	form, status, ok := formProblems(err, groupFields())
	if !ok {
		return err
	}
	if store.IsKind(err, store.KindPrecondition) {
		form.Reload = groupEditURL(f.Name)
	}
	f.Form = form
	return u.render(w, r, status, components.GroupFormPage(u.frame(w, r, id, "groups", title), f))
}

func (u *UI) newGroupForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	return u.render(w, r, http.StatusOK, components.GroupFormPage(u.frame(w, r, id, "groups", "Add group"), components.GroupForm{New: true}))
}

func (u *UI) createGroup(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, g, bad := readGroupForm(r)
	f.New = true
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, g.Validate())
	} else {
		g, err = u.store.CreateGroup(r.Context(), id.Actor(), g)
	}
	if err == nil {
		u.redirect(w, r, "/groups", "Created group "+g.Name+".", false)
		return nil
	}
	return u.groupFormFailed(w, r, id, f, err, "Add group")
}

func (u *UI) editGroupForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	g, err := u.store.GetGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.GroupFormPage(u.frame(w, r, id, "groups", "Edit group "+g.Name), groupForm(g)))
}

func (u *UI) saveGroup(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, g, bad := readGroupForm(r)
	f.Name, g.Name = r.PathValue("name"), r.PathValue("name")
	if f.Revision == 0 {
		bad["revision"] = "the form is damaged; open it again"
	}
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, g.Validate())
	} else if err = u.keepUnformedGroup(r.Context(), &g, f.Revision); err == nil {
		g, err = u.store.ReplaceGroup(r.Context(), id.Actor(), g, f.Revision)
	}
	if err == nil {
		u.redirect(w, r, "/groups", "Saved group "+g.Name+".", false)
		return nil
	}
	if store.IsKind(err, store.KindNotFound) {
		return err
	}
	return u.groupFormFailed(w, r, id, f, err, "Edit group "+f.Name)
}

func (u *UI) deleteGroup(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	name := r.PathValue("name")
	rev, _ := parseRevision(r.PostForm.Get("revision"))
	err := u.store.DeleteGroup(r.Context(), id.Actor(), name, rev)
	var se *store.Error
	if errors.As(err, &se) && se.Kind != store.KindNotFound {
		u.redirect(w, r, "/groups", "Group "+name+" was not deleted: "+se.Msg+".", true)
		return nil
	}
	if err != nil {
		return err
	}
	u.redirect(w, r, "/groups", "Deleted group "+name+".", false)
	return nil
}

func groupEditURL(name string) string { return "/groups/" + url.PathEscape(name) + "/edit" }
