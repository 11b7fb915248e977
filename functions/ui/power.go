package ui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
	"github.com/herd-hpc/herd/functions/store"
)

// Power pages: the buttons on a node's page and the nodes table post here,
// herd queues a job for the edge, and the browser lands on the job's page,
// which refreshes itself until every node has its result.

// formKey is the idempotency key a form sends, so that submitting it twice
// (a double click, a reload) starts one job.
func formKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// nodePowerCard fills in a node page's power card.
func (u *UI) nodePowerCard(ctx context.Context, node string) (components.NodePower, error) {
	v := components.NodePower{Node: node, Key: formKey()}
	states, err := u.store.NodePowerStates(ctx, []string{node})
	if err != nil {
		return v, err
	}
	if p, ok := states[node]; ok {
		v.Last = &p
	}
	return v, nil
}

// outletPower reads the last known power of every node plugged into a
// device.
func (u *UI) outletPower(ctx context.Context, conns []model.Connection) (map[string]model.NodePower, error) {
	var nodes []string
	for _, c := range conns {
		if c.Kind == model.ConnPower && !slices.Contains(nodes, c.Node) {
			nodes = append(nodes, c.Node)
		}
	}
	return u.store.NodePowerStates(ctx, nodes)
}

func powerAction(s string) (model.PowerAction, error) {
	a := model.PowerAction(s)
	if !slices.Contains(components.PowerActions(), a) {
		return a, &pageError{status: http.StatusBadRequest, title: "Unknown power action",
			detail: fmt.Sprintf("%q is not a power action (want on, off, cycle, reset, soft or status).", s)}
	}
	return a, nil
}

// startPower queues the job and sends the browser to its page, or back
// with the reason it was refused.
func (u *UI) startPower(w http.ResponseWriter, r *http.Request, id auth.Identity, req model.PowerRequest, names []string, key, back string) error {
	job, _, err := u.store.CreatePowerJob(r.Context(), id.Actor(), req, names, key)
	var (
		se *store.Error
		ve *model.ValidationError
	)
	if errors.As(err, &se) && se.Kind != store.KindNotFound || errors.As(err, &ve) {
		msg := err.Error()
		if se != nil {
			msg = se.Msg
		}
		u.redirect(w, r, back, "Not powered "+string(req.Action)+": "+msg+".", true)
		return nil
	}
	if err != nil {
		return err
	}
	u.redirect(w, r, "/power/jobs/"+job.ID, "", false)
	return nil
}

// nodePower runs a power action on the node of the page.
func (u *UI) nodePower(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	name := r.PathValue("name")
	if err := model.CheckName(name); err != nil {
		return &pageError{status: http.StatusBadRequest, title: "Bad node name", detail: err.Error()}
	}
	act, err := powerAction(r.PostForm.Get("action"))
	if err != nil {
		return err
	}
	req := model.PowerRequest{Action: act, Nodes: model.NodeSelection{name}, Force: r.PostForm.Get("force") == "yes"}
	return u.startPower(w, r, id, req, []string{name}, r.PostForm.Get("key"), nodeURL(name))
}

// powerBulk runs a power action on the ticked nodes of the nodes table, or
// on every node its filter selects. Taking power away, and acting on a
// whole filter, first shows the nodes and asks again.
func (u *UI) powerBulk(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	pf := r.PostForm
	act, err := powerAction(pf.Get("power"))
	if err != nil {
		return err
	}
	filter := components.NodeFilter{Q: strings.TrimSpace(pf.Get("q")), Group: pf.Get("filter_group"), State: pf.Get("filter_state")}
	back := "/nodes"
	if q := filter.Query(""); q != "" {
		back += "?" + q
	}
	names := pf["node"]
	confirmed := pf.Get("confirm") == "yes"
	all := pf.Get("scope") == "all" && !confirmed
	if all {
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
		u.redirect(w, r, back, "Tick the nodes to power first, or choose \"all nodes matching the filter\".", true)
		return nil
	}
	if !confirmed && (act.Destructive() || all) {
		v := components.PowerConfirm{Action: act, Nodes: names, Range: noderange.Fold(names), Back: back, Key: formKey()}
		return u.render(w, r, http.StatusOK, components.PowerConfirmPage(u.frame(w, r, id, "nodes", "Power "+string(act)+"?"), v))
	}
	key := pf.Get("key")
	if key == "" {
		key = formKey()
	}
	req := model.PowerRequest{Action: act, Nodes: model.NodeSelection{noderange.Fold(names)}, Force: pf.Get("force") == "yes"}
	return u.startPower(w, r, id, req, names, key, back)
}

func (u *UI) powerJob(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	jobID := r.PathValue("id")
	if !store.ValidPowerJobID(jobID) {
		return &pageError{status: http.StatusNotFound, title: "Not found", detail: "There is no power job " + model.CleanText(jobID, 64) + "."}
	}
	job, err := u.store.GetPowerJob(r.Context(), jobID)
	if err != nil {
		return err
	}
	v := components.PowerJobView{Job: job}
	if fragment(r, "power-job") {
		return u.render(w, r, http.StatusOK, components.PowerJobCard(v))
	}
	return u.render(w, r, http.StatusOK, components.PowerJobPage(u.frame(w, r, id, "nodes", "Power "+string(job.Action)), v))
}

// powerJobs lists recent jobs, those of one node with ?node=.
func (u *UI) powerJobs(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	page, err := u.store.ListPowerJobs(r.Context(), 200)
	if err != nil {
		return err
	}
	jobs := page.Items
	if node := r.URL.Query().Get("node"); node != "" {
		jobs = slices.DeleteFunc(jobs, func(j model.PowerJob) bool { return !slices.Contains(j.Nodes, node) })
	}
	return u.render(w, r, http.StatusOK, components.PowerJobsPage(u.frame(w, r, id, "nodes", "Power jobs"), components.PowerJobsView{Jobs: jobs}))
}
