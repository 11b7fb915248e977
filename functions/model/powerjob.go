package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// PowerJobState is where a power job is: queued until the edge claims a
// task of it, running until every node has a result, then done.
type PowerJobState string

// Power job states.
const (
	PowerJobQueued  PowerJobState = "queued"
	PowerJobRunning PowerJobState = "running"
	PowerJobDone    PowerJobState = "done"
)

// PowerNodeStatus is where one node's part of a power job is.
type PowerNodeStatus string

// Per-node statuses: queued until an edge claims it, running while an edge
// holds its lease, then ok or failed.
const (
	PowerNodeQueued  PowerNodeStatus = "queued"
	PowerNodeRunning PowerNodeStatus = "running"
	PowerNodeOK      PowerNodeStatus = "ok"
	PowerNodeFailed  PowerNodeStatus = "failed"
)

// Final reports whether the node has its result.
func (s PowerNodeStatus) Final() bool { return s == PowerNodeOK || s == PowerNodeFailed }

// Limits of a power request.
const (
	// MaxPowerNodes is how many nodes one job may name.
	MaxPowerNodes = 100000
	// MaxCycleWait is the longest a PDU cycle may keep outlets off.
	MaxCycleWait = 10 * time.Minute
	// DefaultCycleWait is how long a PDU cycle keeps outlets off unless
	// the request says otherwise: long enough for supplies to drain.
	DefaultCycleWait = 5 * time.Second
)

// NodeSelection is the nodes of a request: one noderange string
// ("node[001-100],@gpu") or a list of names and ranges. It always encodes as
// a list.
type NodeSelection []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *NodeSelection) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = NodeSelection{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("nodes must be a noderange string or a list of node names")
	}
	*s = list
	return nil
}

// PowerRequest is the body of POST /api/v1/power/jobs.
type PowerRequest struct {
	Action PowerAction   `json:"action"`
	Nodes  NodeSelection `json:"nodes"`
	// Method overrides every node's own power method; empty uses each
	// node's (inherited from its group, else ipmi).
	Method PowerMethod `json:"method,omitempty"`
	// Force lets an off, cycle or reset through a PDU outlet go ahead even
	// when the outlet also feeds nodes outside the job.
	Force bool `json:"force,omitempty"`
	// CycleWait is how long a PDU cycle keeps the outlets off, such as
	// "10s"; empty means DefaultCycleWait.
	CycleWait string `json:"cycle_wait,omitempty"`
}

// Validate checks a request on its own; whether its nodes exist is for the
// store.
func (r *PowerRequest) Validate() error {
	var p problems
	switch r.Action {
	case PowerOn, PowerOff, PowerCycle, PowerReset, PowerSoft, PowerStatus:
	case "":
		p.add("action", "is required (on, off, cycle, reset, soft or status)")
	default:
		p.add("action", "%q is not a power action (want on, off, cycle, reset, soft or status)", r.Action)
	}
	switch r.Method {
	case "", PowerIPMI, PowerRedfish, PowerPDU:
	default:
		p.add("method", "%q is not a power method (want ipmi, redfish or pdu)", r.Method)
	}
	if len(r.Nodes) == 0 {
		p.add("nodes", "is required: a noderange or a list of node names")
	}
	if _, err := r.CycleWaitDuration(); err != nil {
		p.add("cycle_wait", "%s", err)
	}
	return p.err()
}

// CycleWaitDuration is the request's cycle wait, DefaultCycleWait when
// unset.
func (r *PowerRequest) CycleWaitDuration() (time.Duration, error) {
	if r.CycleWait == "" {
		return DefaultCycleWait, nil
	}
	d, err := time.ParseDuration(r.CycleWait)
	if err != nil || d < 0 || d > MaxCycleWait {
		return 0, fmt.Errorf("%q is not a duration from 0s to %s", r.CycleWait, MaxCycleWait)
	}
	return d, nil
}

// Destructive reports whether the action takes power from a running node,
// so that an outlet shared with other nodes must not be switched without
// Force.
func (a PowerAction) Destructive() bool {
	return a == PowerOff || a == PowerCycle || a == PowerReset
}

// PowerCounts sums up a job's nodes by status.
type PowerCounts struct {
	Total   int `json:"total"`
	Queued  int `json:"queued"`
	Running int `json:"running"`
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
}

// PowerNodeResult is one node's part of a power job as admins see it. It
// never holds a secret.
type PowerNodeResult struct {
	Node   string          `json:"node"`
	Status PowerNodeStatus `json:"status"`
	// Method is how the node is switched: the request's, else the node's.
	Method PowerMethod `json:"method,omitempty"`
	// State is the node's power as the edge last saw it.
	State PowerState `json:"state,omitempty"`
	// Attempt counts the claims of the node's task.
	Attempt int    `json:"attempt,omitempty"`
	Edge    string `json:"edge,omitempty"` // the edge that claimed it last
	TookMS  int64  `json:"took_ms,omitempty"`
	Error   string `json:"error,omitempty"`
	// Done is when the result arrived.
	Done time.Time `json:"done,omitzero"`
}

// PowerJob is one power request and how far it got on each node.
type PowerJob struct {
	ID     string      `json:"id"`
	Action PowerAction `json:"action"`
	// Method is the requested method; empty means each node's own.
	Method      PowerMethod   `json:"method,omitempty"`
	Force       bool          `json:"force,omitempty"`
	CycleWaitMS int64         `json:"cycle_wait_ms,omitempty"`
	Nodes       []string      `json:"nodes"`
	User        string        `json:"user"`
	Created     time.Time     `json:"created"`
	Updated     time.Time     `json:"updated"`
	State       PowerJobState `json:"state"`
	// Revision grows with every change; GET ?after=N waits for a higher
	// one.
	Revision int64       `json:"revision"`
	Counts   PowerCounts `json:"counts"`
	// Results has one entry per node, in the order of Nodes; lists of jobs
	// leave it out.
	Results []PowerNodeResult `json:"results,omitempty"`
}

// Result returns the node's result in the job.
func (j *PowerJob) Result(node string) (PowerNodeResult, bool) {
	for _, r := range j.Results {
		if r.Node == node {
			return r, true
		}
	}
	return PowerNodeResult{}, false
}

// PowerClaim is the answer to the edge's POST /api/v1/power/claim: the
// tasks it now holds a lease on (none when the wait ran out).
type PowerClaim struct {
	Tasks []PowerTask `json:"tasks"`
}

// PowerReport is the body of the edge's POST /api/v1/power/results.
type PowerReport struct {
	Results []PowerResult `json:"results"`
}

// PowerRefusal is a result the store did not take, and why.
type PowerRefusal struct {
	Job    string `json:"job"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// PowerReportReply says which reported results were recorded. A result
// sent again with the same lease counts as accepted and changes nothing;
// one whose lease is no longer current (the task was claimed again after
// its lease ran out) is refused: retrying it cannot succeed.
type PowerReportReply struct {
	Accepted int            `json:"accepted"`
	Refused  []PowerRefusal `json:"refused,omitempty"`
}

// NodePower is a node's power as last reported by any job.
type NodePower struct {
	Node   string      `json:"node"`
	State  PowerState  `json:"state"`
	Method PowerMethod `json:"method,omitempty"`
	Job    string      `json:"job"`
	Time   time.Time   `json:"time"`
}

// SecretInfo describes a stored secret; its value is never sent back.
type SecretInfo struct {
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
	User    string    `json:"user,omitempty"` // who set it last
}

// SecretValue is the body of PUT /api/v1/secrets/{name}.
type SecretValue struct {
	Value string `json:"value"`
}

// MaxSecretLen caps a secret's value.
const MaxSecretLen = 4096

var secretNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckSecretName reports whether s can name a secret: 1–128 letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func CheckSecretName(s string) error {
	if !secretNameRe.MatchString(s) {
		if s == "" {
			return errors.New("is required")
		}
		return fmt.Errorf("%q is not a valid secret name: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", CleanText(s, 140))
	}
	return nil
}

// Validate checks a secret's value without ever quoting it.
func (v SecretValue) Validate() error {
	var p problems
	switch {
	case v.Value == "":
		p.add("value", "is required")
	case len(v.Value) > MaxSecretLen:
		p.add("value", "is longer than %d bytes", MaxSecretLen)
	}
	return p.err()
}

// checkDevicePower checks a device's power supplies and default power
// method, like a node's.
func checkDevicePower(p *problems, d *Device) {
	checkPowerSupplies(p, d.PowerSupplies)
	checkPowerMethod(p, d.PowerMethod)
}
