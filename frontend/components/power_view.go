package components

import (
	"strconv"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

// PowerActions are the buttons of a node's power card and the nodes
// table, in order.
func PowerActions() []model.PowerAction {
	return []model.PowerAction{model.PowerOn, model.PowerOff, model.PowerCycle, model.PowerReset, model.PowerSoft, model.PowerStatus}
}

// PowerJobView is the page of one power job.
type PowerJobView struct {
	Job model.PowerJob
}

// Live reports whether the page should refresh itself: the job is not
// done yet.
func (v PowerJobView) Live() bool { return v.Job.State != model.PowerJobDone }

// PowerJobsView is the list of recent power jobs.
type PowerJobsView struct {
	Jobs []model.PowerJob
}

// PowerConfirm asks before a power action on many nodes or one that takes
// power away.
type PowerConfirm struct {
	Action model.PowerAction
	Nodes  []string
	Range  string // the nodes folded into a noderange
	Back   string // where Cancel goes
	// Key is the idempotency key of the request the form will send, so
	// submitting it twice starts one job.
	Key string
}

// NodePower is the power card of a node's page.
type NodePower struct {
	Node string
	// Last is the node's power as last reported, nil if never.
	Last *model.NodePower
	// Key is the idempotency key the card's forms send.
	Key string
}

func actionLabel(a model.PowerAction) string {
	switch a {
	case model.PowerOn:
		return "Power on"
	case model.PowerOff:
		return "Power off"
	case model.PowerCycle:
		return "Power cycle"
	case model.PowerReset:
		return "Reset"
	case model.PowerSoft:
		return "Shut down"
	case model.PowerStatus:
		return "Read status"
	}
	return string(a)
}

// actionQuestion says what a destructive action will do.
func actionQuestion(a model.PowerAction) string {
	switch a {
	case model.PowerOff:
		return "Cut power at once, without shutting down."
	case model.PowerCycle:
		return "Cut power, wait, and power on again."
	case model.PowerReset:
		return "Hard-reset without shutting down."
	}
	return ""
}

func powerStateClass(s model.PowerState) string {
	switch s {
	case model.PowerStateOn:
		return "state state-up"
	case model.PowerStateOff:
		return "state state-down"
	}
	return "state"
}

func nodeStatusClass(s model.PowerNodeStatus) string {
	switch s {
	case model.PowerNodeOK:
		return "state state-up"
	case model.PowerNodeFailed:
		return "state state-error"
	case model.PowerNodeRunning:
		return "state state-provisioning"
	}
	return "state state-new"
}

func tookLabel(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) + " s"
}

func powerJobURL(id string) string { return "/power/jobs/" + id }

// OutletPower is the last known power of the node an outlet feeds, for a
// PDU's page: herd knows a node's power, not each outlet's, so an outlet
// shows what its node last reported.
func OutletPower(states map[string]model.NodePower, c *model.Connection) (model.NodePower, bool) {
	if c == nil || states == nil {
		return model.NodePower{}, false
	}
	p, ok := states[c.Node]
	return p, ok
}

func foldNodes(names []string) string { return noderange.Fold(names) }
