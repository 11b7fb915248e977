package ui

import (
	"context"
	"net/http"
	"strings"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func connectionFilter(q map[string][]string) components.ConnectionFilter {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	f := components.ConnectionFilter{Node: get("node"), Device: get("device"), Kind: get("kind")}
	if f.Kind != string(model.ConnNetwork) && f.Kind != string(model.ConnPower) {
		f.Kind = ""
	}
	return f
}

func (u *UI) connections(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f := connectionFilter(r.URL.Query())
	// The add form starts from the filter: coming from a node's page, the
	// node is already filled in.
	form := components.ConnectionForm{Kind: f.Kind, Node: f.Node, Device: f.Device}
	if form.Kind == "" {
		form.Kind = string(model.ConnNetwork)
	}
	return u.connectionsPage(w, r, id, http.StatusOK, f, r.URL.Query().Get("cursor"), form)
}

// connectionsPage shows the connections list with the add form.
func (u *UI) connectionsPage(w http.ResponseWriter, r *http.Request, id auth.Identity, status int,
	f components.ConnectionFilter, cursor string, form components.ConnectionForm) error {
	ctx := r.Context()
	page, err := u.store.ListConnections(ctx, store.ListOptions{Limit: 100, Cursor: cursor}, store.ConnectionFilter{
		Node: f.Node, Device: f.Device, Kind: model.ConnectionKind(f.Kind)})
	if err != nil {
		return err
	}
	v := components.ConnectionsView{Filter: f, Conns: page.Items, Total: page.Total, Next: page.Next, Cursor: cursor, Form: form}
	if v.Nodes, err = u.store.NodeNames(ctx); err != nil {
		return err
	}
	if v.Devices, err = u.allDevices(ctx); err != nil {
		return err
	}
	return u.render(w, r, status, components.ConnectionsPage(u.frame(w, r, id, "connections", "Connections"), v))
}

func (u *UI) allDevices(ctx context.Context) ([]model.Device, error) {
	page, err := u.store.ListDevices(ctx, store.ListOptions{Limit: 1000}, store.DeviceFilter{})
	return page.Items, err
}

func (u *UI) connect(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	pf := r.PostForm
	form := components.ConnectionForm{
		Kind: pf.Get("kind"), Node: strings.TrimSpace(pf.Get("node")), End: strings.TrimSpace(pf.Get("end")),
		Device: pf.Get("device"), Port: strings.TrimSpace(pf.Get("port")),
	}
	c, err := u.store.Connect(r.Context(), id.Actor(), model.Connection{
		Kind: model.ConnectionKind(form.Kind), Node: form.Node, End: form.End, Device: form.Device, Port: form.Port})
	if err == nil {
		u.redirect(w, r, "/connections?"+components.ConnectionFilter{Node: c.Node}.Query(""),
			"Connected "+c.Node+" "+c.End+" to "+c.Device+" "+c.Port+".", false)
		return nil
	}
	f, status, ok := formProblems(err, fieldSet("kind", "node", "end", "device", "port"))
	if !ok {
		return err
	}
	form.Form = f
	return u.connectionsPage(w, r, id, status, components.ConnectionFilter{}, "", form)
}

func (u *UI) disconnect(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	cid := r.PostForm.Get("id")
	back := localPath(r.PostForm.Get("back"), "/connections")
	err := u.store.Disconnect(r.Context(), id.Actor(), cid)
	if store.IsKind(err, store.KindNotFound) {
		u.redirect(w, r, back, "Connection "+cid+" was already gone.", false)
		return nil
	}
	if err != nil {
		return err
	}
	u.redirect(w, r, back, "Deleted connection "+cid+".", false)
	return nil
}
