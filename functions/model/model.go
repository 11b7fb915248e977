// Package model holds herd's inventory types — nodes, groups, devices,
// connections and audit events — and the pure checks that decide whether a
// value is acceptable. It does no I/O: the store persists these values, the
// API and the client exchange them as JSON, the pages render them.
package model

import (
	"time"
)

// PowerMethod says how herd switches a node's power.
type PowerMethod string

// The power methods herd knows.
const (
	PowerIPMI    PowerMethod = "ipmi"
	PowerRedfish PowerMethod = "redfish"
	PowerPDU     PowerMethod = "pdu"
)

// NodeState is where a node is in its life, as herd last saw it.
type NodeState string

// Node states. A node starts as new; boot sessions move it on (issue 3).
const (
	StateNew          NodeState = "new"
	StateProvisioning NodeState = "provisioning"
	StateUp           NodeState = "up"
	StateDown         NodeState = "down"
	StateError        NodeState = "error"
)

// Interface is one network interface of a node.
type Interface struct {
	Name    string `json:"name"`              // e.g. "eth0"
	MAC     MAC    `json:"mac,omitempty"`     // hardware address, unique across the cluster
	Address string `json:"address,omitempty"` // IPv4 or IPv6 address, optionally with /prefix
	Boot    bool   `json:"boot,omitempty"`    // the interface the node network-boots from
}

// BMC is how herd reaches a node's baseboard management controller. The
// password itself is a secret stored apart; CredentialRef names it.
type BMC struct {
	Address       string `json:"address,omitempty"`
	Username      string `json:"username,omitempty"`
	CredentialRef string `json:"credential_ref,omitempty"`
	// Fingerprint pins a Redfish BMC's self-signed certificate:
	// "sha256:<hex>" of the certificate as it presents it.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Settings are what a node inherits from its group unless it sets them
// itself. An empty string or nil pointer means "not set here".
type Settings struct {
	Image      string `json:"image,omitempty"`
	Branch     string `json:"branch,omitempty"`
	DiskLayout string `json:"disk_layout,omitempty"`
	// Kernel picks one of the image's kernels by version; empty boots
	// the newest the image holds.
	Kernel string `json:"kernel,omitempty"`
	// KernelArgs are more kernel command-line arguments, given to the
	// provisioner's boot and to the fallback entry on the disk
	// (console=ttyS0,115200 nomodeset); a node's replace its group's.
	KernelArgs  string      `json:"kernel_args,omitempty"`
	Stateless   *bool       `json:"stateless,omitempty"`
	PowerMethod PowerMethod `json:"power_method,omitempty"`
	// CheckEveryBoot false lets a node whose root already holds its
	// version skip comparing it at boot; SyncVerify overrides when content
	// is hashed (unsure, never, always). Both default to the cluster's
	// sync settings (herd plugin set sync).
	CheckEveryBoot *bool  `json:"check_every_boot,omitempty"`
	SyncVerify     string `json:"sync_verify,omitempty"`
	// Plugins override the cluster's plugin settings key by key (a node's
	// over its group's): plugin name → key → value; the key "enabled"
	// ("true" or "false") turns the plugin on or off for these nodes.
	Plugins map[string]map[string]string `json:"plugins,omitempty"`
}

// Meta is what the store keeps about every object: its revision (the ETag)
// and when it was created and last changed. Clients never set it.
type Meta struct {
	Revision int64     `json:"revision"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Node is one machine of the cluster.
type Node struct {
	Name          string      `json:"name"`
	Group         string      `json:"group,omitempty"`
	Interfaces    []Interface `json:"interfaces,omitempty"`
	BMC           BMC         `json:"bmc,omitzero"`
	PowerSupplies []string    `json:"power_supplies,omitempty"`
	Tags          []string    `json:"tags,omitempty"`
	Settings
	State NodeState `json:"state,omitempty"` // read-only through the API
	Meta
	// Effective is the node's settings after group inheritance; filled in
	// on reads, ignored on writes.
	Effective *Settings `json:"effective,omitempty"`
}

// Group holds settings its member nodes inherit.
type Group struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Settings
	Meta
}

// DeviceKind is the kind of a non-node device.
type DeviceKind string

// Device kinds.
const (
	DeviceSwitch DeviceKind = "switch"
	DevicePDU    DeviceKind = "pdu"
)

// Device is a switch or a PDU. A PDU has named outlets; a switch may list its
// ports (empty means any port name is accepted).
type Device struct {
	Name     string     `json:"name"`
	Kind     DeviceKind `json:"kind"`
	Address  string     `json:"address,omitempty"`
	Model    string     `json:"model,omitempty"`
	Driver   string     `json:"driver,omitempty"` // PDU driver, e.g. "eaton-g4"
	Outlets  []string   `json:"outlets,omitempty"`
	Ports    []string   `json:"ports,omitempty"`
	Username string     `json:"username,omitempty"`
	// CredentialRef names the stored secret used to log into the device.
	CredentialRef string `json:"credential_ref,omitempty"`
	// Fingerprint pins the device's self-signed HTTPS certificate
	// ("sha256:<hex>"), as PDU cards ship with one.
	Fingerprint string `json:"fingerprint,omitempty"`
	// PowerSupplies names the device's own supplies, which connections may
	// tie to PDU outlets like a node's; PowerMethod is how herd switches it.
	PowerSupplies []string    `json:"power_supplies,omitempty"`
	PowerMethod   PowerMethod `json:"power_method,omitempty"`
	Tags          []string    `json:"tags,omitempty"`
	Meta
}

// ConnectionKind says what a connection carries.
type ConnectionKind string

// Connection kinds.
const (
	ConnNetwork ConnectionKind = "network" // node NIC → switch port
	ConnPower   ConnectionKind = "power"   // node power supply → PDU outlet
)

// Connection ties one end on a node (an interface or a power supply) to one
// port or outlet on a device. Its ID is derived from the node end, so a node
// end has at most one connection.
type Connection struct {
	ID     string         `json:"id"` // "<kind>:<node>:<end>", set by the store
	Kind   ConnectionKind `json:"kind"`
	Node   string         `json:"node"`
	End    string         `json:"end"`    // interface name or power supply name
	Device string         `json:"device"` // switch or PDU name
	Port   string         `json:"port"`   // switch port or PDU outlet name
	Meta
}

// ConnectionID is the stable id of the connection at a node end.
func ConnectionID(kind ConnectionKind, node, end string) string {
	return string(kind) + ":" + node + ":" + end
}

// AuditEvent records one change: who made it, from where, to what.
type AuditEvent struct {
	ID     string            `json:"id"` // stream id, set by the store
	Time   time.Time         `json:"time"`
	User   string            `json:"user"`
	UID    int               `json:"uid"`
	Host   string            `json:"host"`
	Kind   string            `json:"kind"`   // node, group, device, connection, user, token, …
	Method string            `json:"method"` // create, update, delete, login, …
	Refs   []string          `json:"refs"`   // names of what changed, e.g. "node/node001"
	Msg    string            `json:"message"`
	Extras map[string]string `json:"extras,omitempty"`
}

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleAdmin    Role = "admin"
	RoleReadOnly Role = "readonly"
)

// User is an account that can log in. The password hash never leaves the
// store.
type User struct {
	Name    string    `json:"name"`
	UID     int       `json:"uid"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
}

// Token is an API token's public description; the secret is shown once, on
// creation.
type Token struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// Page is one page of a list answer.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor for the following page; empty on the last page.
	Next  string `json:"next,omitempty"`
	Total int    `json:"total"`
}
