package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// HeaderIdempotencyKey makes a POST safe to retry: the same key from the
// same user returns the job the first request made.
const HeaderIdempotencyKey = "Idempotency-Key"

// powerRoutes serves power jobs to admins, the edge's side of the power
// queue, and the write-only secrets BMCs and PDUs log in with.
func powerRoutes(a *API) {
	a.handle("POST "+Prefix+"/power/jobs", a.createPowerJob)
	a.handle("GET "+Prefix+"/power/jobs", a.powerJobs)
	a.handle("GET "+Prefix+"/power/jobs/{id}", a.powerJob)
	a.handleEdge("POST "+Prefix+"/power/claim", a.claimPower)
	a.handleEdge("POST "+Prefix+"/power/results", a.reportPower)

	a.handle("GET "+Prefix+"/secrets", a.secrets)
	a.handle("PUT "+Prefix+"/secrets/{name}", a.setSecret)
	a.handle("DELETE "+Prefix+"/secrets/{name}", a.deleteSecret)
}

// handleEdge registers a route only the edge may call: it authenticates
// with the shared secret, never with a user's token.
func (a *API) handleEdge(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
	a.Routes = append(a.Routes, pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if !a.auth.FromEdge(r) {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "edge-only", "Only the edge may do this",
				"send the edge's shared secret in "+auth.HeaderEdgeSecret+"; user tokens cannot claim or report power work"))
			return
		}
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

// powerNodes expands the request's noderanges into node names.
func (a *API) powerNodes(r *http.Request, sel model.NodeSelection) ([]string, error) {
	var names []string
	for _, rng := range sel {
		parsed, err := noderange.Parse(rng)
		var got []string
		if err == nil {
			got, err = parsed.ExpandLimit(func(g string) ([]string, error) { return a.store.GroupMembers(r.Context(), g) }, model.MaxPowerNodes)
		}
		if err != nil {
			if store.IsKind(err, store.KindNotFound) {
				return nil, err
			}
			p := problem.New(http.StatusBadRequest, "bad-noderange", "Bad noderange", err.Error())
			p.Errors = []model.FieldProblem{{Field: "nodes", Message: err.Error()}}
			return nil, p
		}
		names = append(names, got...)
	}
	return names, nil
}

func (a *API) createPowerJob(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var req model.PowerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	names, err := a.powerNodes(r, req.Nodes)
	if err != nil {
		return err
	}
	job, created, err := a.store.CreatePowerJob(r.Context(), id.Actor(), req, names, r.Header.Get(HeaderIdempotencyKey))
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/power/jobs/"+job.ID)
	if !created {
		return reply(w, http.StatusOK, job)
	}
	return reply(w, http.StatusAccepted, job)
}

func (a *API) powerJobs(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	page, err := a.store.ListPowerJobs(r.Context(), opts.Limit)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, page)
}

// powerJob answers a job at once, or with ?wait= once its revision is
// above ?after= (the revision it has now when after is absent) or it is
// done: clients follow a job without functions keeping any state.
func (a *API) powerJob(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	jobID := r.PathValue("id")
	if !store.ValidPowerJobID(jobID) {
		return problem.New(http.StatusNotFound, "not-found", "Not found",
			"power job "+model.CleanText(jobID, 64)+" does not exist (ids are 32 hex digits)")
	}
	q := r.URL.Query()
	if q.Get("wait") == "" {
		job, err := a.store.GetPowerJob(r.Context(), jobID)
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, job)
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	var after int64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "after must be a job revision (a whole number)")
		}
	} else {
		job, err := a.store.GetPowerJob(r.Context(), jobID)
		if err != nil {
			return err
		}
		after = job.Revision
	}
	job, err := a.store.WaitPowerJob(r.Context(), jobID, after, wait)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, job)
}

// claimPower long-polls for power tasks for the edge: ?wait= (at most
// 60s), ?max= tasks (1-1000, default 10), ?lease= (how long the edge holds
// them, default 2m) and ?edge= (its name, shown with the results).
func (a *API) claimPower(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	o := store.ClaimOptions{Edge: q.Get("edge"), Max: 10, Wait: wait}
	if s := q.Get("max"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPowerClaim {
			return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "max must be a number from 1 to "+strconv.Itoa(store.MaxPowerClaim))
		}
		o.Max = n
	}
	if s := q.Get("lease"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > store.MaxPowerLease {
			return problem.New(http.StatusBadRequest, "bad-query", "Bad query", "lease must be a duration from 1s to "+store.MaxPowerLease.String())
		}
		o.Lease = d
	}
	tasks, err := a.store.ClaimPowerTasks(r.Context(), o)
	if err != nil {
		return err
	}
	if tasks == nil {
		tasks = []model.PowerTask{}
	}
	// The tasks carry passwords: no cache may keep them.
	return reply(w, http.StatusOK, model.PowerClaim{Tasks: tasks})
}

func (a *API) reportPower(w http.ResponseWriter, r *http.Request) error {
	var rep model.PowerReport
	if err := decode(r, &rep); err != nil {
		return err
	}
	out, err := a.store.ReportPowerResults(r.Context(), rep.Results)
	if err != nil {
		return err
	}
	for _, ref := range out.Refused {
		a.log.Info("power result refused", "job", ref.Job, "node", ref.Node, "reason", ref.Reason)
	}
	return reply(w, http.StatusOK, out)
}

func (a *API) secrets(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	list, err := a.store.ListSecrets(r.Context())
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.Page[model.SecretInfo]{Items: list, Total: len(list)})
}

// setSecret stores a secret. A malformed body is refused without quoting
// any of it, as it may hold the value.
func (a *API) setSecret(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var v model.SecretValue
	if err := decode(r, &v); err != nil {
		p := problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", `send {"value": "..."} and nothing else`)
		p.Errors = []model.FieldProblem{{Field: "value", Message: "is required"}}
		return p
	}
	info, err := a.store.SetSecret(r.Context(), id.Actor(), r.PathValue("name"), v)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, info)
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	if err := a.store.DeleteSecret(r.Context(), id.Actor(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
