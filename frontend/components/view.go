// Package components holds the templ components of herd's web page and the
// view types they render. Components only render: functions/ui reads the
// store, decides, and fills in these types.
package components

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// Page is the frame around every page: who is logged in, which menu entry
// is current, a message left by the previous request, and asset URLs.
type Page struct {
	Title    string
	Section  string // "dashboard", "nodes", "discovered", "groups", "images", "devices", "connections", "audit"
	User     string // empty on the login page
	ReadOnly bool
	Flash    Flash
	Assets   Assets
	// Unassigned counts the machines waiting to be assigned, for the
	// badge on the menu entry.
	Unassigned int
}

// Assets are the URLs of the static files, versioned so browsers may cache
// them for good.
type Assets struct {
	CSS  string
	JS   string // herd.js: select-all and shift-click in the nodes table
	Icon string
	HTMX string // empty when htmx is not installed: pages work without it
}

// Flash is a one-time message shown after a redirect, such as "node001
// created".
type Flash struct {
	Error bool
	Msg   string
}

// Form says what was wrong with a submitted form.
type Form struct {
	Message  string            // shown above the form
	Errors   map[string]string // by form field name
	Problems []string          // problems not tied to a field on the form
	// Reload is the URL of the form with the current values, offered when
	// the save was refused because someone else changed the object.
	Reload string
}

// Err is the problem with one field, or "".
func (f Form) Err(field string) string { return f.Errors[field] }

// Failed reports whether the form is being shown again because of errors.
func (f Form) Failed() bool { return f.Message != "" || len(f.Errors) > 0 || len(f.Problems) > 0 }

// InterfaceRow is one network interface as typed into the node form.
type InterfaceRow struct {
	Name, MAC, Address string
	Boot               bool
}

// NodeForm is the add and edit form of a node, holding what the user typed.
type NodeForm struct {
	Form
	New                       bool
	Revision                  int64
	Name                      string
	Group                     string
	Image, Branch, DiskLayout string
	Kernel, KernelArgs        string
	Stateless                 string // "", "true" or "false"
	PowerMethod               string
	Interfaces                []InterfaceRow
	BMCAddress, BMCUsername   string
	BMCCredentialRef          string
	PowerSupplies             string // comma-separated
	Tags                      string // comma-separated
	// Groups are the groups to choose from.
	Groups []string
	// Inherited is what the node's group gives, shown as placeholders.
	Inherited     model.Settings
	InheritedFrom string
}

// GroupForm is the add and edit form of a group.
type GroupForm struct {
	Form
	New                       bool
	Revision                  int64
	Name, Description         string
	Image, Branch, DiskLayout string
	Kernel, KernelArgs        string
	Stateless                 string
	PowerMethod               string
	Tags                      string
}

// DeviceForm is the add and edit form of a switch or PDU.
type DeviceForm struct {
	Form
	New                     bool
	Revision                int64
	Name, Kind, Address     string
	Model, Driver, Username string
	CredentialRef           string
	Outlets, Ports, Tags    string // comma-separated
}

// ConnectionForm is the form that plugs a node end into a device.
type ConnectionForm struct {
	Form
	Kind, Node, End, Device, Port string
}

// StateCount is how many nodes are in one state.
type StateCount struct {
	State model.NodeState
	Count int
}

// DashboardView is the start page.
type DashboardView struct {
	Nodes       int
	States      []StateCount
	Groups      int
	Switches    int
	PDUs        int
	Connections int
	Recent      []model.AuditEvent
}

// NodeFilter is the filter above the nodes table.
type NodeFilter struct {
	Q      string // noderange or free text
	Group  string
	State  string
	Limit  int
	Cursor string
}

// Query returns the filter as URL query parameters, with cursor replacing
// the current one ("" for the first page).
func (f NodeFilter) Query(cursor string) string {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("q", f.Q)
	set("group", f.Group)
	set("state", f.State)
	if f.Limit != 0 && f.Limit != DefaultPageSize {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	set("cursor", cursor)
	return v.Encode()
}

// DefaultPageSize is how many nodes a page shows unless the user picks
// another size.
const DefaultPageSize = 100

// PageSizes returns the page sizes offered in the nodes filter.
func PageSizes() []int { return []int{50, 100, 250, 500, 1000} }

// NodesView is the nodes page.
type NodesView struct {
	Filter      NodeFilter
	FilterError string
	Groups      []string
	Nodes       []model.Node
	Total       int
	Next        string
}

// NodeStates lists every node state in life order.
func NodeStates() []model.NodeState {
	return []model.NodeState{model.StateNew, model.StateProvisioning, model.StateUp, model.StateDown, model.StateError}
}

// SettingRow is one effective setting of a node and where it comes from.
type SettingRow struct {
	Name  string
	Value string
	From  string // "node", "group compute", or "" when set nowhere
}

// NodeView is a node's detail page.
type NodeView struct {
	Node     model.Node
	Settings []SettingRow
	// Conns maps "network:eth0" or "power:psu1" to the connection there.
	Conns map[string]model.Connection
	// GroupMissing is true when the node names a group that is gone.
	GroupMissing bool
	// Boot is the node's recent network boots.
	Boot BootPanel
	// Power is the node's power card.
	Power NodePower
}

// ConnAt returns the connection at one end of the node, if any.
func (v NodeView) ConnAt(kind model.ConnectionKind, end string) (model.Connection, bool) {
	c, ok := v.Conns[string(kind)+":"+end]
	return c, ok
}

// BulkConfirm asks before a bulk change of nodes.
type BulkConfirm struct {
	Action string // "delete" or "setgroup"
	Group  string
	Nodes  []string
	Range  string // the nodes folded into a noderange
	Back   string // where "cancel" goes
}

// GroupRow is a group with its member count.
type GroupRow struct {
	Group   model.Group
	Members int
}

// GroupsView is the groups page.
type GroupsView struct {
	Groups []GroupRow
}

// DevicesView is the devices page.
type DevicesView struct {
	Kind    string // filter: "", "switch" or "pdu"
	Devices []model.Device
	// Used counts the connections ending at each device.
	Used map[string]int
}

// DeviceView is a device's detail page: its ports or outlets and what is
// plugged into each.
type DeviceView struct {
	Device model.Device
	Conns  []model.Connection
	// Power is the last known power of the nodes plugged into a PDU.
	Power map[string]model.NodePower
}

// PortRow is one port or outlet of a device and what is plugged in there.
type PortRow struct {
	Port string
	Conn *model.Connection
}

// Ports lists the device's declared ports or outlets with their
// connections, followed by connections to ports the device does not list
// (switches with no port list accept any port name).
func (v DeviceView) Ports() []PortRow {
	declared := v.Device.Outlets
	if v.Device.Kind == model.DeviceSwitch {
		declared = v.Device.Ports
	}
	byPort := map[string]*model.Connection{}
	for i := range v.Conns {
		byPort[v.Conns[i].Port] = &v.Conns[i]
	}
	rows := make([]PortRow, 0, len(declared)+len(v.Conns))
	seen := map[string]bool{}
	for _, p := range declared {
		rows = append(rows, PortRow{Port: p, Conn: byPort[p]})
		seen[p] = true
	}
	for i := range v.Conns {
		if !seen[v.Conns[i].Port] {
			rows = append(rows, PortRow{Port: v.Conns[i].Port, Conn: &v.Conns[i]})
		}
	}
	return rows
}

// ConnectionFilter is the filter above the connections table.
type ConnectionFilter struct {
	Node, Device, Kind string
}

// ConnectionsView is the connections page.
type ConnectionsView struct {
	Filter  ConnectionFilter
	Conns   []model.Connection
	Total   int
	Next    string
	Cursor  string
	Form    ConnectionForm
	Nodes   []string // for the form's suggestions
	Devices []model.Device
}

// Query returns the filter as URL query parameters with a cursor.
func (f ConnectionFilter) Query(cursor string) string {
	v := url.Values{}
	for k, s := range map[string]string{"node": f.Node, "device": f.Device, "kind": f.Kind, "cursor": cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// AuditFilter is the filter above the audit table.
type AuditFilter struct {
	Since, Until, User, Kind, Method, Ref string
}

// Query returns the filter as URL query parameters with a cursor.
func (f AuditFilter) Query(cursor string) string {
	v := url.Values{}
	for k, s := range map[string]string{"since": f.Since, "until": f.Until, "user": f.User, "kind": f.Kind,
		"method": f.Method, "ref": f.Ref, "cursor": cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// AuditView is the audit page.
type AuditView struct {
	Filter      AuditFilter
	FilterError string
	Events      []model.AuditEvent
	Cursor      string // the page shown starts after this event; "" for the newest
	Next        string
	// Live is the URL that refreshes the newest events; empty when the page
	// shows older events or htmx is missing.
	Live string
}

// DiscoveredView is the page of machines that network-booted with a MAC
// no node has.
type DiscoveredView struct {
	Machines []model.Discovered // most recently seen first
	Total    int
	// Evicted counts machines dropped to keep the list under its cap.
	Evicted int64
	Cursor  string // the page shown starts after this; "" for the first
	Next    string
	Now     time.Time // for "seen 12s ago"
	// Candidates are the nodes without any MAC, suggested in the assign
	// field; Groups are offered when creating a node.
	Candidates []string
	Groups     []string
	// Form is an assign or create form shown again with what was wrong.
	Form AssignForm
}

// Listed reports whether the page shows the machine with this MAC.
func (v DiscoveredView) Listed(mac string) bool {
	for _, d := range v.Machines {
		if string(d.MAC) == mac {
			return true
		}
	}
	return false
}

// FormFor returns the form of one machine: as typed if it failed, else
// empty.
func (v DiscoveredView) FormFor(mac model.MAC) AssignForm {
	if v.Form.MAC == string(mac) {
		return v.Form
	}
	return AssignForm{MAC: string(mac)}
}

// AssignForm is what was typed into one machine's "assign to node" or
// "create node" form.
type AssignForm struct {
	Form
	MAC    string
	Create bool   // the create form, not the assign one
	Node   string // the node to assign to, or to create
	Group  string // of the node to create
}

// BootPanel is the boot sessions card of a node's page.
type BootPanel struct {
	Node     string
	Sessions []model.BootSession // newest first
	Events   []model.BootEvent   // the timeline of Sessions[0]
	Now      time.Time
	// Live is true when htmx is there to refresh the card.
	Live bool
}

// Polling reports whether the card refreshes itself: while the latest
// session may still change.
func (v BootPanel) Polling() bool {
	return v.Live && len(v.Sessions) > 0 && !v.Sessions[0].Ended()
}

// BootSessionView is the page of one boot session.
type BootSessionView struct {
	Session model.BootSession
	Events  []model.BootEvent
	Now     time.Time
	Live    bool
	// Console is the end of what the node printed (bootenv's console);
	// ConsoleCut counts the bytes before it that the page leaves out.
	Console    string
	ConsoleCut int
}

// Polling reports whether the timeline refreshes itself.
func (v BootSessionView) Polling() bool { return v.Live && !v.Session.Ended() }

// LoginView is the login form.
type LoginView struct {
	User  string
	Next  string
	Error string
}

// ErrorView is a page that says what went wrong.
type ErrorView struct {
	Status int
	Title  string
	Detail string
}

// ifaceField names the form field of one interface attribute.
func ifaceField(i int, attr string) string {
	return "interfaces[" + strconv.Itoa(i) + "]." + attr
}

// fieldID turns a form field name into an element id.
func fieldID(name string) string {
	r := strings.NewReplacer("[", "-", "]", "", ".", "-", "_", "-")
	return "f-" + r.Replace(name)
}

// bootInterface is the interface a node boots from, else its first one.
func bootInterface(n model.Node) model.Interface {
	for _, i := range n.Interfaces {
		if i.Boot {
			return i
		}
	}
	if len(n.Interfaces) > 0 {
		return n.Interfaces[0]
	}
	return model.Interface{}
}

// effective returns the node's effective settings, or its own.
func effective(n model.Node) model.Settings {
	if n.Effective != nil {
		return *n.Effective
	}
	return n.Settings
}

// imageLabel shows image and branch as "image@branch".
func imageLabel(s model.Settings) string {
	switch {
	case s.Image == "":
		return ""
	case s.Branch == "":
		return s.Image
	}
	return s.Image + "@" + s.Branch
}

// inherited reports whether the image shown for a node comes from its group.
func inherited(n model.Node) bool {
	return n.Image == "" && effective(n).Image != ""
}

// stamp writes a time in UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// isoTime is the machine-readable form of a time, for <time datetime>.
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// refURL links an audit reference such as "node/node001" to its page.
func refURL(ref string) string {
	kind, name, ok := strings.Cut(ref, "/")
	if !ok {
		return ""
	}
	switch kind {
	case "node", "device":
		return "/" + kind + "s/" + url.PathEscape(name)
	case "group":
		return "/nodes?group=" + url.QueryEscape(name)
	case "image":
		return ImageURL(name)
	case "connection":
		node := strings.SplitN(name, ":", 3)
		if len(node) == 3 {
			return "/connections?node=" + url.QueryEscape(node[1])
		}
	}
	return ""
}

func nodeURL(name string) string   { return "/nodes/" + url.PathEscape(name) }
func deviceURL(name string) string { return "/devices/" + url.PathEscape(name) }
func groupURL(name string) string  { return "/groups/" + url.PathEscape(name) + "/edit" }

// extras lists an audit event's extras in a stable order.
func extras(ev model.AuditEvent) []string {
	out := make([]string, 0, len(ev.Extras))
	for k, v := range ev.Extras {
		out = append(out, k+": "+v)
	}
	slices.Sort(out)
	return out
}

// statelessLabel shows a stateless setting.
func statelessLabel(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "stateless"
	}
	return "stateful"
}

// plural writes "1 node" or "3 nodes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// fieldClass marks a form field that has a problem.
func fieldClass(f Form, name string) string {
	if f.Err(name) != "" {
		return "field invalid"
	}
	return "field"
}

// sortedKeys returns a map's keys in order, so pages render the same way
// every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func nodeFormAction(f NodeForm) string {
	if f.New {
		return "/nodes/new"
	}
	return nodeURL(f.Name) + "/edit"
}

// interfaceRows are the typed interfaces plus empty rows to add more.
func interfaceRows(f NodeForm) []InterfaceRow {
	rows := append([]InterfaceRow(nil), f.Interfaces...)
	blank := 1
	if len(rows) == 0 {
		blank = 2
	}
	for range blank {
		rows = append(rows, InterfaceRow{})
	}
	return rows
}

// groupChoices offers every group, keeping a typed group that is unknown so
// that the user's input is not lost.
func groupChoices(groups []string, current string) []choice {
	out := []choice{{"", "(no group)"}}
	found := current == ""
	for _, g := range groups {
		out = append(out, choice{g, g})
		found = found || g == current
	}
	if !found {
		out = append(out, choice{current, current + " (does not exist)"})
	}
	return out
}

// inheritedHint is the placeholder of a setting the node leaves to its group.
func inheritedHint(value, from string) string {
	if value == "" {
		return "not set"
	}
	return value + " (from " + from + ")"
}

func inheritLabel(value, from string) string {
	if value == "" || from == "" {
		return "not set"
	}
	return "from " + from + ": " + value
}

func powerChoices(inherited model.PowerMethod, from string) []choice {
	return []choice{
		{"", inheritLabel(string(inherited), from)},
		{"ipmi", "IPMI"},
		{"redfish", "Redfish"},
		{"pdu", "PDU outlet"},
	}
}

func statelessChoices(inherited *bool, from string) []choice {
	return []choice{
		{"", inheritLabel(statelessLabel(inherited), from)},
		{"false", "stateful (on disk)"},
		{"true", "stateless (in RAM)"},
	}
}

func groupFormAction(f GroupForm) string {
	if f.New {
		return "/groups/new"
	}
	return groupURL(f.Name)
}

func deviceFormAction(f DeviceForm) string {
	if f.New {
		return "/devices/new"
	}
	return deviceURL(f.Name) + "/edit"
}

func bootSessionURL(id string) string { return "/boot-sessions/" + url.PathEscape(id) }

// discoveredURL is where a machine's forms post: verb is assign or forget.
func discoveredURL(mac model.MAC, verb string) string {
	return "/discovered/" + url.PathEscape(string(mac)) + "/" + verb
}

// macID turns a MAC into a part of an element id.
func macID(mac model.MAC) string { return strings.ReplaceAll(string(mac), ":", "") }

// eventDuration shows the duration a boot event reports.
func eventDuration(ev model.BootEvent) string {
	return model.ShortDuration(time.Duration(ev.DurationMS) * time.Millisecond)
}

// offset is how long after the session started an event came, as +4.2s.
func offset(s model.BootSession, ev model.BootEvent) string {
	if s.Started.IsZero() || ev.Time.Before(s.Started) {
		return ""
	}
	d := ev.Time.Sub(s.Started)
	if d < time.Millisecond {
		return "+0s"
	}
	return "+" + model.ShortDuration(d)
}

// ago writes how long before now t was: "12s ago".
func ago(now, t time.Time) string {
	if t.IsZero() || now.IsZero() {
		return ""
	}
	switch d := now.Sub(t); {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}

// imageBranch shows a session's image as "image@branch".
func imageBranch(s model.BootSession) string {
	return imageLabel(model.Settings{Image: s.Image, Branch: s.Branch})
}

// eventExtras lists a boot event's extras in a stable order.
func eventExtras(ev model.BootEvent) []string {
	out := make([]string, 0, len(ev.Extras))
	for k, v := range ev.Extras {
		if v != "" {
			out = append(out, k+": "+v)
		}
	}
	slices.Sort(out)
	return out
}

// shortID is the first digits of a session id, enough to tell sessions
// apart on one page.
func shortID(id string) string { return id[:min(8, len(id))] }
