package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
	"github.com/herd-hpc/herd/functions/store"
)

// maxInterfaces bounds the interface rows read from a node form.
const maxInterfaces = 64

// nodeFilter reads the nodes filter from a query: q, group, state, limit,
// cursor.
func nodeFilter(q url.Values) components.NodeFilter {
	f := components.NodeFilter{
		Q:      strings.TrimSpace(q.Get("q")),
		Group:  q.Get("group"),
		State:  q.Get("state"),
		Cursor: q.Get("cursor"),
		Limit:  components.DefaultPageSize,
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && slices.Contains(components.PageSizes(), n) {
		f.Limit = n
	}
	return f
}

// findNodes lists one page of the nodes a filter selects. The text box
// takes a noderange when it uses noderange syntax, else free text matched
// against names, MACs, addresses and tags. A noderange that does not parse,
// or names a group that does not exist, is a filter error: no nodes.
func (u *UI) findNodes(ctx context.Context, f components.NodeFilter) (model.Page[model.Node], string, error) {
	opts := store.ListOptions{Limit: f.Limit, Cursor: f.Cursor}
	nf := store.NodeFilter{Group: f.Group, State: model.NodeState(f.State)}
	if noderange.IsPattern(f.Q) {
		var storeErr error
		names, err := noderange.Expand(f.Q, func(g string) ([]string, error) {
			m, err := u.store.GroupMembers(ctx, g)
			var se *store.Error
			if err != nil && !errors.As(err, &se) {
				storeErr = err
			}
			return m, err
		})
		if storeErr != nil {
			return model.Page[model.Node]{}, "", storeErr
		}
		if err != nil {
			return model.Page[model.Node]{Items: []model.Node{}}, upperFirst(err.Error()), nil
		}
		if names == nil {
			names = []string{}
		}
		opts.Names = names
	} else {
		nf.Query = f.Q
	}
	page, err := u.store.ListNodes(ctx, opts, nf)
	return page, "", err
}

// groupNames lists every group name, for selects.
func (u *UI) groupNames(ctx context.Context) ([]string, error) {
	page, err := u.store.ListGroups(ctx, store.ListOptions{Limit: 1000})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(page.Items))
	for i, g := range page.Items {
		names[i] = g.Name
	}
	return names, nil
}

func (u *UI) nodes(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f := nodeFilter(r.URL.Query())
	page, filterErr, err := u.findNodes(r.Context(), f)
	if err != nil {
		return err
	}
	groups, err := u.groupNames(r.Context())
	if err != nil {
		return err
	}
	v := components.NodesView{Filter: f, FilterError: filterErr, Groups: groups, Nodes: page.Items, Total: page.Total, Next: page.Next}
	if fragment(r, "nodes-table") {
		return u.render(w, r, http.StatusOK, components.NodesTable(v, id.CanWrite()))
	}
	return u.render(w, r, http.StatusOK, components.NodesPage(u.frame(w, r, id, "nodes", "Nodes"), v))
}

func (u *UI) node(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	n, err := u.store.GetNode(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	boot, err := u.bootPanel(r.Context(), n.Name)
	if err != nil {
		return err
	}
	if fragment(r, "boot-sessions") {
		return u.render(w, r, http.StatusOK, components.BootSessions(boot))
	}
	v := components.NodeView{Node: n, Conns: map[string]model.Connection{}, Boot: boot}
	var group *model.Group
	if n.Group != "" {
		g, err := u.store.GetGroup(r.Context(), n.Group)
		switch {
		case store.IsKind(err, store.KindNotFound):
			v.GroupMissing = true
		case err != nil:
			return err
		default:
			group = &g
		}
	}
	v.Settings = settingRows(n, group)
	conns, err := u.allConnections(r.Context(), store.ConnectionFilter{Node: n.Name})
	if err != nil {
		return err
	}
	for _, c := range conns {
		v.Conns[string(c.Kind)+":"+c.End] = c
	}
	if v.Power, err = u.nodePowerCard(r.Context(), n.Name); err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.NodePage(u.frame(w, r, id, "nodes", n.Name), v))
}

// settingRows shows each effective setting and where it comes from.
func settingRows(n model.Node, g *model.Group) []components.SettingRow {
	var gs model.Settings
	from := ""
	if g != nil {
		gs, from = g.Settings, "group "+g.Name
	}
	row := func(name, own, group string) components.SettingRow {
		switch {
		case own != "":
			return components.SettingRow{Name: name, Value: own, From: "node"}
		case group != "":
			return components.SettingRow{Name: name, Value: group, From: from}
		}
		return components.SettingRow{Name: name}
	}
	return []components.SettingRow{
		row("Image", n.Image, gs.Image),
		row("Branch", n.Branch, gs.Branch),
		row("Disk layout", n.DiskLayout, gs.DiskLayout),
		row("Kernel", n.Kernel, gs.Kernel),
		row("Kernel arguments", n.KernelArgs, gs.KernelArgs),
		row("Root file system", statelessText(n.Stateless), statelessText(gs.Stateless)),
		row("Power method", string(n.PowerMethod), string(gs.PowerMethod)),
	}
}

func statelessText(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "stateless (in RAM)"
	}
	return "stateful (on disk)"
}

// nodeForm fills the form from a stored node.
func nodeForm(n model.Node) components.NodeForm {
	f := components.NodeForm{
		Revision: n.Revision, Name: n.Name, Group: n.Group,
		Image: n.Image, Branch: n.Branch, DiskLayout: n.DiskLayout, Kernel: n.Kernel, KernelArgs: n.KernelArgs,
		Stateless: formatStateless(n.Stateless), PowerMethod: string(n.PowerMethod),
		BMCAddress: n.BMC.Address, BMCUsername: n.BMC.Username, BMCCredentialRef: n.BMC.CredentialRef,
		PowerSupplies: joinList(n.PowerSupplies), Tags: joinList(n.Tags),
	}
	for _, i := range n.Interfaces {
		f.Interfaces = append(f.Interfaces, components.InterfaceRow{Name: i.Name, MAC: string(i.MAC), Address: i.Address, Boot: i.Boot})
	}
	return f
}

// readNodeForm reads a posted node form. It returns the form as typed, to
// show again on failure, the node it describes, and problems found while
// reading that the model cannot see (such as a mangled revision).
func readNodeForm(r *http.Request) (components.NodeForm, model.Node, map[string]string) {
	pf := r.PostForm
	bad := map[string]string{}
	sf, settings := readSettings(r, bad)
	f := components.NodeForm{
		Name: strings.TrimSpace(pf.Get("name")), Group: pf.Get("group"),
		Image: sf.Image, Branch: sf.Branch, DiskLayout: sf.DiskLayout, Stateless: sf.Stateless, PowerMethod: sf.PowerMethod,
		Kernel: sf.Kernel, KernelArgs: sf.KernelArgs,
		BMCAddress:       strings.TrimSpace(pf.Get("bmc.address")),
		BMCUsername:      strings.TrimSpace(pf.Get("bmc.username")),
		BMCCredentialRef: strings.TrimSpace(pf.Get("bmc.credential_ref")),
		PowerSupplies:    pf.Get("power_supplies"),
		Tags:             pf.Get("tags"),
	}
	n := model.Node{
		Name: f.Name, Group: f.Group, Settings: settings,
		BMC:           model.BMC{Address: f.BMCAddress, Username: f.BMCUsername, CredentialRef: f.BMCCredentialRef},
		PowerSupplies: splitList(f.PowerSupplies),
		Tags:          splitList(f.Tags),
	}
	boot := pf.Get("boot")
	for i := range maxInterfaces {
		row := components.InterfaceRow{
			Name:    strings.TrimSpace(pf.Get(fmt.Sprintf("interfaces[%d].name", i))),
			MAC:     strings.TrimSpace(pf.Get(fmt.Sprintf("interfaces[%d].mac", i))),
			Address: strings.TrimSpace(pf.Get(fmt.Sprintf("interfaces[%d].address", i))),
			Boot:    boot == strconv.Itoa(i),
		}
		if row.Name == "" && row.MAC == "" && row.Address == "" {
			continue
		}
		// Rows are numbered again without the empty ones, so problems the
		// store reports for interfaces[k] land on the row shown as k.
		k := len(f.Interfaces)
		f.Interfaces = append(f.Interfaces, row)
		itf := model.Interface{Name: row.Name, MAC: model.MAC(row.MAC), Address: row.Address, Boot: row.Boot}
		if mac, err := model.ParseMAC(row.MAC); err == nil {
			itf.MAC = mac
		}
		if row.Name == "" {
			bad[fmt.Sprintf("interfaces[%d].name", k)] = "give the interface a name, such as eth0"
		}
		n.Interfaces = append(n.Interfaces, itf)
	}
	if s := pf.Get("revision"); s != "" {
		rev, ok := parseRevision(s)
		if !ok {
			bad["revision"] = "the form is damaged; open it again"
		}
		f.Revision, n.Revision = rev, rev
	}
	return f, n, bad
}

// nodeFields says which problem fields the node form can show next to a
// field.
func nodeFields(f components.NodeForm) func(string) bool {
	simple := fieldSet("name", "group", "image", "branch", "disk_layout", "stateless", "power_method",
		"bmc.address", "bmc.username", "bmc.credential_ref", "power_supplies", "tags", "interfaces")
	return func(field string) bool {
		if simple(field) {
			return true
		}
		for i := range f.Interfaces {
			for _, a := range []string{"name", "mac", "address"} {
				if field == fmt.Sprintf("interfaces[%d].%s", i, a) {
					return true
				}
			}
		}
		return false
	}
}

// fillChoices adds what the node form offers: the groups, and the settings
// the chosen group gives, shown as placeholders.
func (u *UI) fillChoices(ctx context.Context, f *components.NodeForm) error {
	groups, err := u.groupNames(ctx)
	if err != nil {
		return err
	}
	f.Groups = groups
	if f.Group != "" && slices.Contains(groups, f.Group) {
		g, err := u.store.GetGroup(ctx, f.Group)
		if err != nil && !store.IsKind(err, store.KindNotFound) {
			return err
		}
		f.Inherited, f.InheritedFrom = g.Settings, "group "+f.Group
	}
	return nil
}

func (u *UI) newNodeForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f := components.NodeForm{New: true, Group: r.URL.Query().Get("group"),
		Interfaces: []components.InterfaceRow{{Name: "eth0", Boot: true}}}
	if err := u.fillChoices(r.Context(), &f); err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.NodeFormPage(u.frame(w, r, id, "nodes", "Add node"), f))
}

func (u *UI) createNode(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, n, bad := readNodeForm(r)
	f.New = true
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, n.Validate())
	} else {
		n, err = u.store.CreateNode(r.Context(), id.Actor(), n)
	}
	if err == nil {
		u.redirect(w, r, nodeURL(n.Name), "Created node "+n.Name+".", false)
		return nil
	}
	return u.nodeFormFailed(w, r, id, f, err, "Add node")
}

// nodeFormFailed shows the node form again, as typed, with what was wrong.
func (u *UI) nodeFormFailed(w http.ResponseWriter, r *http.Request, id auth.Identity, f components.NodeForm, err error, title string) error {
	form, status, ok := formProblems(err, nodeFields(f))
	if !ok {
		return err
	}
	if store.IsKind(err, store.KindPrecondition) {
		form.Reload = nodeURL(f.Name) + "/edit"
	}
	f.Form = form
	if err := u.fillChoices(r.Context(), &f); err != nil {
		return err
	}
	return u.render(w, r, status, components.NodeFormPage(u.frame(w, r, id, "nodes", title), f))
}

func (u *UI) editNodeForm(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	n, err := u.store.GetNode(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	f := nodeForm(n)
	if err := u.fillChoices(r.Context(), &f); err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, components.NodeFormPage(u.frame(w, r, id, "nodes", "Edit "+n.Name), f))
}

func (u *UI) saveNode(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	f, n, bad := readNodeForm(r)
	// The URL names the node; the form cannot rename it.
	f.Name, n.Name = r.PathValue("name"), r.PathValue("name")
	if f.Revision == 0 {
		bad["revision"] = "the form is damaged; open it again"
	}
	var err error
	if len(bad) > 0 {
		err = pageProblems(bad, n.Validate())
	} else if err = u.keepUnformedNode(r.Context(), &n, f.Revision); err == nil {
		n, err = u.store.ReplaceNode(r.Context(), id.Actor(), n, f.Revision)
	}
	if err == nil {
		u.redirect(w, r, nodeURL(n.Name), "Saved node "+n.Name+".", false)
		return nil
	}
	if store.IsKind(err, store.KindNotFound) {
		return err
	}
	return u.nodeFormFailed(w, r, id, f, err, "Edit "+f.Name)
}

func (u *UI) deleteNode(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	name := r.PathValue("name")
	rev, _ := parseRevision(r.PostForm.Get("revision"))
	err := u.store.DeleteNode(r.Context(), id.Actor(), name, rev)
	switch {
	case store.IsKind(err, store.KindPrecondition):
		u.redirect(w, r, nodeURL(name), "Not deleted: "+name+" was changed by someone else since you opened it. Check it and delete again.", true)
		return nil
	case err != nil:
		return err
	}
	u.redirect(w, r, "/nodes", "Deleted node "+name+".", false)
	return nil
}

// nodesBulk applies "set group" or "delete" to the ticked nodes, or to
// every node the filter selects. Deleting, and changing every node of a
// filter, first shows what would change and asks again.
func (u *UI) nodesBulk(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	pf := r.PostForm
	action, group := pf.Get("action"), pf.Get("group")
	filter := components.NodeFilter{Q: strings.TrimSpace(pf.Get("q")), Group: pf.Get("filter_group"), State: pf.Get("filter_state")}
	back := "/nodes"
	if q := filter.Query(""); q != "" {
		back += "?" + q
	}
	if action != "delete" && action != "setgroup" {
		return &pageError{status: http.StatusBadRequest, title: "Unknown action", detail: fmt.Sprintf("%q is not a bulk action (want setgroup or delete).", action)}
	}
	names := pf["node"]
	all := pf.Get("scope") == "all" && pf.Get("confirm") != "yes"
	if all {
		var err error
		if names, err = u.allNodeNames(r.Context(), filter); err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := model.CheckName(n); err != nil {
			return &pageError{status: http.StatusBadRequest, title: "Bad node name", detail: err.Error()}
		}
	}
	if len(names) == 0 {
		u.redirect(w, r, back, "Tick the nodes to change first, or choose \"all nodes matching the filter\".", true)
		return nil
	}
	if pf.Get("confirm") != "yes" && (action == "delete" || all) {
		v := components.BulkConfirm{Action: action, Group: group, Nodes: names, Range: noderange.Fold(names), Back: back}
		title := "Delete nodes?"
		if action == "setgroup" {
			title = "Move nodes?"
		}
		return u.render(w, r, http.StatusOK, components.BulkConfirmPage(u.frame(w, r, id, "nodes", title), v))
	}
	var done []string
	var failed []string
	for _, name := range names {
		var err error
		if action == "delete" {
			err = u.store.DeleteNode(r.Context(), id.Actor(), name, 0)
		} else {
			err = u.setGroup(r.Context(), id.Actor(), name, group)
		}
		if err != nil {
			var se *store.Error
			if !errors.As(err, &se) {
				return err
			}
			failed = append(failed, name+": "+se.Msg)
			if se.Field == "group" {
				break // the group itself is wrong: every node would fail alike
			}
			continue
		}
		done = append(done, name)
	}
	verb := "Deleted"
	if action == "setgroup" {
		verb = "Moved"
	}
	msg := fmt.Sprintf("%s %s", verb, plural(len(done), "node", "nodes"))
	if len(done) > 0 {
		msg += " (" + noderange.Fold(done) + ")"
	}
	if action == "setgroup" {
		if group == "" {
			msg += " out of their group"
		} else {
			msg += " to group " + group
		}
	}
	msg += "."
	if len(failed) > 0 {
		msg += fmt.Sprintf(" %d failed: %s", len(failed), strings.Join(failed, "; "))
	}
	u.redirect(w, r, back, msg, len(failed) > 0)
	return nil
}

// setGroup moves one node to a group, reading it again if it changes under
// us: the user asked for the group, not for a particular revision.
func (u *UI) setGroup(ctx context.Context, a store.Actor, name, group string) error {
	for attempt := 0; ; attempt++ {
		n, err := u.store.GetNode(ctx, name)
		if err != nil {
			return err
		}
		if n.Group == group {
			return nil
		}
		n.Group = group
		_, err = u.store.ReplaceNode(ctx, a, n, n.Revision)
		if store.IsKind(err, store.KindPrecondition) && attempt < 3 {
			continue
		}
		return err
	}
}

// allNodeNames lists the names of every node the filter selects, over all
// pages.
func (u *UI) allNodeNames(ctx context.Context, f components.NodeFilter) ([]string, error) {
	f.Limit, f.Cursor = 1000, ""
	var names []string
	for {
		page, filterErr, err := u.findNodes(ctx, f)
		if err != nil {
			return nil, err
		}
		if filterErr != "" {
			return nil, &pageError{status: http.StatusBadRequest, title: "Bad filter", detail: filterErr}
		}
		for _, n := range page.Items {
			names = append(names, n.Name)
		}
		if page.Next == "" {
			return names, nil
		}
		f.Cursor = page.Next
	}
}

func nodeURL(name string) string { return "/nodes/" + url.PathEscape(name) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
