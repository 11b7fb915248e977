package model

import "time"

// PowerAction is what a power job does to each node.
type PowerAction string

// The power actions. Status changes nothing; soft asks the operating system
// to shut down (ACPI); cycle is off, a wait, then on; reset is a hard reset
// without removing power.
const (
	PowerOn     PowerAction = "on"
	PowerOff    PowerAction = "off"
	PowerCycle  PowerAction = "cycle"
	PowerReset  PowerAction = "reset"
	PowerSoft   PowerAction = "soft"
	PowerStatus PowerAction = "status"
)

// Idempotent reports whether running the action twice has the same effect
// as running it once; an interrupted task is only re-run when it is.
func (a PowerAction) Idempotent() bool {
	switch a {
	case PowerOn, PowerOff, PowerStatus, PowerSoft:
		return true
	}
	return false
}

// PowerState is a node's or outlet's power as herd normalises whatever a BMC
// or PDU reports.
type PowerState string

// Power states.
const (
	PowerStateOn      PowerState = "on"
	PowerStateOff     PowerState = "off"
	PowerStateUnknown PowerState = "unknown"
)

// BMCTarget is how the edge reaches one node's BMC. Password is the
// resolved secret: it exists only in tasks handed to the edge, never in
// anything stored with the node, logged or audited.
type BMCTarget struct {
	Protocol PowerMethod `json:"protocol"` // ipmi or redfish
	Address  string      `json:"address"`  // host or host:port
	Username string      `json:"username,omitempty"`
	Password string      `json:"password,omitempty"`
	// Fingerprint pins a Redfish BMC's self-signed certificate
	// ("sha256:<hex>" of the DER certificate); empty trusts the system roots.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// OutletTarget is one PDU outlet feeding one of a node's power supplies.
type OutletTarget struct {
	Supply      string `json:"supply"` // the node's power supply name
	PDU         string `json:"pdu"`    // the PDU device's name
	Driver      string `json:"driver"` // e.g. "eaton-g4"
	Address     string `json:"address"`
	Outlet      string `json:"outlet"`
	Username    string `json:"username,omitempty"`
	Password    string `json:"password,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// PowerTask is one node's part of a power job as the edge claims it:
// everything needed to act on that node.
type PowerTask struct {
	Job     string         `json:"job"`
	Node    string         `json:"node"`
	Action  PowerAction    `json:"action"`
	Method  PowerMethod    `json:"method"`
	BMC     *BMCTarget     `json:"bmc,omitempty"`
	Outlets []OutletTarget `json:"outlets,omitempty"`
	// CycleWaitMS is how long a PDU cycle keeps the outlets off, in ms.
	CycleWaitMS int64 `json:"cycle_wait_ms,omitempty"`
	// Attempt counts claims of this task; above 1 the edge that claimed it
	// before stopped without reporting.
	Attempt int `json:"attempt"`
	// Lease is the claim's token; a report must carry it.
	Lease string `json:"lease"`
}

// PowerResult is what the edge reports for one task.
type PowerResult struct {
	Job    string      `json:"job"`
	Node   string      `json:"node"`
	Lease  string      `json:"lease,omitempty"`
	State  PowerState  `json:"state"`
	Method PowerMethod `json:"method,omitempty"`
	TookMS int64       `json:"took_ms"`
	Error  string      `json:"error,omitempty"`
	Done   time.Time   `json:"done"`
}
