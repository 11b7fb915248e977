package ui

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// discoveredPageSize is how many machines one page lists; each row holds
// three forms.
const discoveredPageSize = 200

// unassignedCount is the number on the menu's "Unassigned" entry. The menu
// must not fail a page, so a failure only leaves the badge out.
func (u *UI) unassignedCount(r *http.Request) int {
	n, err := u.store.DiscoveredCount(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			u.log.Warn("count unassigned machines for the menu", "err", err)
		}
		return 0
	}
	return int(n)
}

func (u *UI) discovered(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	return u.discoveredPage(w, r, id, http.StatusOK, r.URL.Query().Get("cursor"), components.AssignForm{})
}

// discoveredPage shows the list, with form shown again if it failed.
func (u *UI) discoveredPage(w http.ResponseWriter, r *http.Request, id auth.Identity, status int, cursor string, form components.AssignForm) error {
	ctx := r.Context()
	page, err := u.store.ListDiscovered(ctx, store.ListOptions{Limit: discoveredPageSize, Cursor: cursor})
	if store.IsKind(err, store.KindInvalid) && cursor != "" {
		// A cursor from an old link: start over.
		cursor = ""
		page, err = u.store.ListDiscovered(ctx, store.ListOptions{Limit: discoveredPageSize})
	}
	if err != nil {
		return err
	}
	v := components.DiscoveredView{Machines: page.Items, Total: page.Total, Evicted: page.Evicted,
		Cursor: cursor, Next: page.Next, Now: time.Now(), Form: form}
	if id.CanWrite() && len(page.Items) > 0 {
		if v.Candidates, err = u.nodesWithoutMAC(ctx); err != nil {
			return err
		}
		if v.Groups, err = u.groupNames(ctx); err != nil {
			return err
		}
	}
	p := u.frame(w, r, id, "discovered", "Unassigned machines")
	p.Unassigned = page.Total
	return u.render(w, r, status, components.DiscoveredPage(p, v))
}

// nodesWithoutMAC lists the nodes that have no MAC at all: those an
// unassigned machine most likely is.
func (u *UI) nodesWithoutMAC(ctx context.Context) ([]string, error) {
	names, err := u.store.NodeNames(ctx)
	if err != nil {
		return nil, err
	}
	res, err := u.store.BootReservations(ctx)
	if err != nil {
		return nil, err
	}
	has := make(map[string]bool, len(res))
	for _, r := range res {
		has[r.Node] = true
	}
	return slices.DeleteFunc(names, func(n string) bool { return has[n] }), nil
}

// pathMAC reads the {mac} of a path.
func pathMAC(r *http.Request) (model.MAC, error) {
	m, err := model.ParseMAC(r.PathValue("mac"))
	if err != nil {
		return "", &pageError{status: http.StatusBadRequest, title: "Bad MAC address", detail: upperFirst(err.Error()) + "."}
	}
	return m, nil
}

// assignDiscovered gives a machine's MAC to an existing node, or creates
// the node with it (create=true), through the same store call as the API,
// which writes the audit event. Success goes to the node's page; a refusal
// shows the list again with the reason next to that machine's form.
func (u *UI) assignDiscovered(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	mac, err := pathMAC(r)
	if err != nil {
		return err
	}
	pf := r.PostForm
	f := components.AssignForm{MAC: string(mac), Create: pf.Get("create") == "true",
		Node: strings.TrimSpace(pf.Get("node")), Group: pf.Get("group")}
	req := model.AssignRequest{Node: f.Node, Create: f.Create}
	if f.Create {
		req.Group = f.Group
	}
	var n model.Node
	if f.Node == "" {
		err = &model.ValidationError{Problems: []model.FieldProblem{{Field: "node", Message: "type the name of the node"}}}
	} else {
		n, _, err = u.store.AssignDiscovered(r.Context(), id.Actor(), mac, req)
	}
	if err == nil {
		iface := ""
		for _, i := range n.Interfaces {
			if i.MAC == mac {
				iface = i.Name
			}
		}
		msg := fmt.Sprintf("Assigned %s to %s as %s.", mac, n.Name, iface)
		if f.Create {
			msg = fmt.Sprintf("Created node %s with %s on %s.", n.Name, mac, iface)
		}
		msg += " The machine boots as " + n.Name + " the next time it asks for its boot script."
		u.redirect(w, r, nodeURL(n.Name), msg, false)
		return nil
	}
	form, status, ok := formProblems(err, fieldSet("node", "group"))
	if !ok {
		return err
	}
	if m, found := strings.CutPrefix(form.Message, "Not saved: "); found {
		form.Message = "Not assigned: " + m
	}
	if status == http.StatusNotFound {
		// 404 says the machine is gone; a node that does not exist is
		// only a wrong name typed into the form.
		if _, gone := u.store.GetDiscovered(r.Context(), mac); gone == nil {
			status = http.StatusUnprocessableEntity
		}
	}
	f.Form = form
	return u.discoveredPage(w, r, id, status, "", f)
}

// forgetDiscovered drops a machine from the list, audited by the store.
func (u *UI) forgetDiscovered(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	mac, err := pathMAC(r)
	if err != nil {
		return err
	}
	err = u.store.ForgetDiscovered(r.Context(), id.Actor(), mac)
	if store.IsKind(err, store.KindNotFound) {
		u.redirect(w, r, "/discovered", fmt.Sprintf("%s was not listed any more: it was assigned or forgotten already.", mac), true)
		return nil
	}
	if err != nil {
		return err
	}
	u.redirect(w, r, "/discovered", fmt.Sprintf("Forgot %s. It is listed again if it boots from the network again.", mac), false)
	return nil
}
