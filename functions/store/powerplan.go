package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

// powerWorld is what a power job is planned from, read from the store
// beforehand so that planning is a pure function of it.
type powerWorld struct {
	nodes   map[string]model.Node         // with Effective filled in
	conns   map[string][]model.Connection // node → its power connections
	devices map[string]model.Device
	// feeds lists every power connection at a PDU outlet, whichever node
	// it belongs to.
	feeds   map[outletRef][]model.Connection
	secrets map[string]bool // secret names that are set
}

type outletRef struct{ device, port string }

// powerTaskRecord is a queued task as stored: the task without passwords,
// attempt or lease, and the names of the secrets to fill in when an edge
// claims it. Passwords are looked up at claim time, so a rotated secret
// takes effect for jobs already queued and no copy of it sits in the queue.
type powerTaskRecord struct {
	Task          model.PowerTask `json:"task"`
	BMCSecret     string          `json:"bmc_secret,omitempty"`
	OutletSecrets []string        `json:"outlet_secrets,omitempty"` // by index of Task.Outlets
}

// powerPlan is what a job does: tasks for the edge, and results for the
// nodes that cannot be acted on at all.
type powerPlan struct {
	tasks  []powerTaskRecord
	failed []model.PowerNodeResult
}

// methodFor is how a node is switched: the request's method, else the
// node's (inherited from its group), else IPMI.
func methodFor(req model.PowerRequest, n model.Node) model.PowerMethod {
	if req.Method != "" {
		return req.Method
	}
	if n.Effective != nil && n.Effective.PowerMethod != "" {
		return n.Effective.PowerMethod
	}
	if n.PowerMethod != "" {
		return n.PowerMethod
	}
	return model.PowerIPMI
}

// planPower decides each node's task or the reason it has none. An off,
// cycle or reset through an outlet that also feeds a node outside the job
// is refused as a whole, naming those nodes, unless the request forces it.
func planPower(job string, req model.PowerRequest, names []string, w powerWorld) (powerPlan, error) {
	var plan powerPlan
	inJob := make(map[string]bool, len(names))
	for _, n := range names {
		inJob[n] = true
	}
	cycleWait, _ := req.CycleWaitDuration()
	fail := func(node string, method model.PowerMethod, format string, args ...any) {
		plan.failed = append(plan.failed, model.PowerNodeResult{Node: node, Status: model.PowerNodeFailed, Method: method,
			State: model.PowerStateUnknown, Error: fmt.Sprintf(format, args...)})
	}
	shared := map[outletRef][]string{}
	for _, name := range names {
		n, ok := w.nodes[name]
		if !ok {
			fail(name, req.Method, "node %s does not exist", name)
			continue
		}
		method := methodFor(req, n)
		task := model.PowerTask{Job: job, Node: name, Action: req.Action, Method: method}
		rec := powerTaskRecord{}
		switch method {
		case model.PowerIPMI, model.PowerRedfish:
			if n.BMC.Address == "" {
				fail(name, method, "node %s has no BMC address: set one, or use another power method", name)
				continue
			}
			if ref := n.BMC.CredentialRef; ref != "" && !w.secrets[ref] {
				fail(name, method, "secret %s, which node %s's BMC logs in with, is not set (herd secret set %s)", ref, name, ref)
				continue
			}
			task.BMC = &model.BMCTarget{Protocol: method, Address: n.BMC.Address, Username: n.BMC.Username, Fingerprint: n.BMC.Fingerprint}
			rec.BMCSecret = n.BMC.CredentialRef
		case model.PowerPDU:
			if req.Action == model.PowerSoft {
				fail(name, method, "a PDU cannot ask the operating system to shut down: use --method ipmi or redfish")
				continue
			}
			conns := w.conns[name]
			if len(conns) == 0 {
				fail(name, method, "none of node %s's power supplies is recorded as plugged into a PDU outlet", name)
				continue
			}
			var reason string
			for _, c := range conns {
				d, ok := w.devices[c.Device]
				switch {
				case !ok:
					reason = fmt.Sprintf("PDU %s, which feeds %s %s, does not exist", c.Device, name, c.End)
				case d.Kind != model.DevicePDU:
					reason = fmt.Sprintf("%s, which feeds %s %s, is a %s, not a PDU", d.Name, name, c.End, d.Kind)
				case d.Driver == "":
					reason = fmt.Sprintf("PDU %s has no driver set (e.g. eaton-g4)", d.Name)
				case d.Address == "":
					reason = fmt.Sprintf("PDU %s has no address", d.Name)
				case d.CredentialRef != "" && !w.secrets[d.CredentialRef]:
					reason = fmt.Sprintf("secret %s, which PDU %s logs in with, is not set (herd secret set %s)", d.CredentialRef, d.Name, d.CredentialRef)
				}
				if reason != "" {
					break
				}
				task.Outlets = append(task.Outlets, model.OutletTarget{Supply: c.End, PDU: d.Name, Driver: d.Driver,
					Address: d.Address, Outlet: c.Port, Username: d.Username, Fingerprint: d.Fingerprint})
				rec.OutletSecrets = append(rec.OutletSecrets, d.CredentialRef)
				if req.Action.Destructive() {
					ref := outletRef{c.Device, c.Port}
					for _, other := range w.feeds[ref] {
						if !inJob[other.Node] && !slices.Contains(shared[ref], other.Node) {
							shared[ref] = append(shared[ref], other.Node)
						}
					}
				}
			}
			if reason != "" {
				fail(name, method, "%s", reason)
				continue
			}
			if req.Action == model.PowerCycle {
				task.CycleWaitMS = cycleWait.Milliseconds()
			}
		default:
			fail(name, method, "%q is not a power method", method)
			continue
		}
		rec.Task = task
		plan.tasks = append(plan.tasks, rec)
	}
	if len(shared) > 0 && !req.Force {
		return plan, sharedOutletError(req.Action, shared)
	}
	return plan, nil
}

// sharedOutletError names, outlet by outlet, the nodes outside the job
// that would lose power too.
func sharedOutletError(action model.PowerAction, shared map[outletRef][]string) error {
	refs := make([]outletRef, 0, len(shared))
	var all []string
	for r, nodes := range shared {
		refs = append(refs, r)
		all = append(all, nodes...)
	}
	slices.SortFunc(refs, func(a, b outletRef) int {
		return strings.Compare(a.device+"\x00"+a.port, b.device+"\x00"+b.port)
	})
	parts := make([]string, len(refs))
	for i, r := range refs {
		nodes := slices.Clone(shared[r])
		slices.Sort(nodes)
		parts[i] = fmt.Sprintf("%s outlet %s also feeds %s", r.device, r.port, strings.Join(nodes, ", "))
	}
	slices.Sort(all)
	all = slices.Compact(all)
	return errf(KindConflict, "nodes", "refusing to %s through shared PDU outlets: %s; add %s to the job or force it",
		action, strings.Join(parts, "; "), noderange.Fold(all))
}
