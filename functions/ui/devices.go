package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func (u *UI) devices(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	kind := r.URL.Query().Get("kind")
	if kind != "" && kind != string(model.DeviceSwitch) && kind != string(model.DevicePDU) {
		kind = ""
	}
	page, err := u.store.ListDevices(r.Context(), store.ListOptions{Limit: 1000}, store.DeviceFilter{Kind: model.DeviceKind(kind)})
	if err != nil {
		return err
	}
	conns, err := u.allConnections(r.Context(), store.ConnectionFilter{})
	if err != nil {
		return err
	}
	v := components.DevicesView{Kind: kind, Devices: page.Items, Used: map[string]int{}}
	for _, c := range conns {
		v.Used[c.Device]++
	}
	return u.render(w, r, http.StatusOK, components.DevicesPage(u.frame(w, r, id, "devices", "Devices"), v))
}

func (u *UI) device(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	d, err := u.store.GetDevice(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	conns, err := u.allConnections(r.Context(), store.ConnectionFilter{Device: d.Name})
	if err != nil {
		return err
	}
	v := components.DeviceView{Device: d, Conns: conns}
	if v.Power, err = u.outletPower(r.Context(), conns); err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.DevicePage(u.frame(w, r, id, "devices", d.Name), v))
}

// allConnections reads every connection a filter selects, over all pages.
func (u *UI) allConnections(ctx context.Context, f store.ConnectionFilter) ([]model.Connection, error) {
	var out []model.Connection
	opts := store.ListOptions{Limit: 1000}
	for {
		page, err := u.store.ListConnections(ctx, opts, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		opts.Cursor = page.Next
	}
}

func deviceForm(d model.Device) components.DeviceForm {
	return components.DeviceForm{
		Revision: d.Revision, Name: d.Name, Kind: string(d.Kind), Address: d.Address, Model: d.Model,
		Driver: d.Driver, Username: d.Username, CredentialRef: d.CredentialRef,
		Outlets: joinList(d.Outlets), Ports: joinList(d.Ports), Tags: joinList(d.Tags),
	}
}

func readDeviceForm(r *http.Request) (components.DeviceForm, model.Device, map[string]string) {
	pf := r.PostForm
	bad := map[string]string{}
	f := components.DeviceForm{
		Name: strings.TrimSpace(pf.Get("name")), Kind: pf.Get("kind"), Address: strings.TrimSpace(pf.Get("address")),
		Model: strings.TrimSpace(pf.Get("model")), Driver: strings.TrimSpace(pf.Get("driver")),
		Username: strings.TrimSpace(pf.Get("username")), CredentialRef: strings.TrimSpace(pf.Get("credential_ref")),
		Outlets: pf.Get("outlets"), Ports: pf.Get("ports"), Tags: pf.Get("tags"),
	}
	d := model.Device{
		Name: f.Name, Kind: model.DeviceKind(f.Kind), Address: f.Address, Model: f.Model, Driver: f.Driver,
		Username: f.Username, CredentialRef: f.CredentialRef,
		Outlets: splitList(f.Outlets), Ports: splitList(f.Ports), Tags: splitList(f.Tags),
	}
	if s := pf.Get("revision"); s != "" {
		rev, ok := parseRevision(s)
		if !ok {
			bad["revision"] = "the form is damaged; open it again"
		}
		f.Revision = rev
	}
	return f, d, bad
}

func deviceFields() func(string) bool {
	return fieldSet("name", "kind", "address", "model", "driver", "username", "credential_ref", "outlets", "ports", "tags")
}

func (u *UI) deviceFormFailed(w http.ResponseWriter, r *http.Request, id auth.Identity, f components.DeviceForm, err error, title string) error {
	form, status, ok := formProblems(err, deviceFields())
	if !ok {
		return err
	}
	if store.IsKind(err, store.KindPrecondition) {
		form.Reload = deviceURL(f.Name) + "/edit"
	}
	f.Form = form
	return u.render(w, r, status, components.DeviceFormPage(u.frame(w, r, id, "devices", title), f))
}

func (u *UI) newDeviceForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f := components.DeviceForm{New: true, Kind: r.URL.Query().Get("kind")}
	if f.Kind == "" {
		f.Kind = string(model.DeviceSwitch)
	}
	return u.render(w, r, http.StatusOK, components.DeviceFormPage(u.frame(w, r, id, "devices", "Add device"), f))
}

func (u *UI) createDevice(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, d, bad := readDeviceForm(r)
	f.New = true
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, d.Validate())
	} else {
		d, err = u.store.CreateDevice(r.Context(), id.Actor(), d)
	}
	if err == nil {
		u.redirect(w, r, deviceURL(d.Name), "Created "+string(d.Kind)+" "+d.Name+".", false)
		return nil
	}
	return u.deviceFormFailed(w, r, id, f, err, "Add device")
}

func (u *UI) editDeviceForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	d, err := u.store.GetDevice(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.DeviceFormPage(u.frame(w, r, id, "devices", "Edit "+d.Name), deviceForm(d)))
}

func (u *UI) saveDevice(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, d, bad := readDeviceForm(r)
	f.Name, d.Name = r.PathValue("name"), r.PathValue("name")
	if f.Revision == 0 {
		bad["revision"] = "the form is damaged; open it again"
	}
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, d.Validate())
	} else {
		d, err = u.store.ReplaceDevice(r.Context(), id.Actor(), d, f.Revision)
	}
	if err == nil {
		u.redirect(w, r, deviceURL(d.Name), "Saved "+string(d.Kind)+" "+d.Name+".", false)
		return nil
	}
	if store.IsKind(err, store.KindNotFound) {
		return err
	}
	return u.deviceFormFailed(w, r, id, f, err, "Edit "+f.Name)
}

func (u *UI) deleteDevice(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	name := r.PathValue("name")
	rev, _ := parseRevision(r.PostForm.Get("revision"))
	err := u.store.DeleteDevice(r.Context(), id.Actor(), name, rev)
	var se *store.Error
	if errors.As(err, &se) && se.Kind != store.KindNotFound {
		u.redirect(w, r, deviceURL(name), "Device "+name+" was not deleted: "+se.Msg+".", true)
		return nil
	}
	if err != nil {
		return err
	}
	u.redirect(w, r, "/devices", "Deleted device "+name+".", false)
	return nil
}

func deviceURL(name string) string { return "/devices/" + url.PathEscape(name) }
