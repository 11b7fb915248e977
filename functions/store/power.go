package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
)

// Power jobs are queued here for the edge, which claims tasks over HTTP,
// runs them and reports results:
//
//	power:job:<id>     hash: "job" (the request as JSON), "rev", "state",
//	                   "updated", "left" (nodes without a result),
//	                   "r:<node>" (its PowerNodeResult as JSON),
//	                   "l:<node>" (the lease token of its current claim)
//	power:tasks:<id>   hash: node → powerTaskRecord as JSON (no passwords)
//	power:events:<id>  stream: one entry per change, for followers to block on
//	power:ready        list: "<id> <node>" tasks no edge holds
//	power:leases       sorted set: "<id> <node>" by lease expiry (ms)
//	power:wake         stream: one entry per job queued, for claims to block on
//	power:jobs         sorted set: job ids by creation (ms), for listing
//	power:idem:<user>:<sha256 of key>  string: the job an Idempotency-Key made
//	power:state        hash: node → its last known NodePower as JSON
//
// A claim moves tasks from power:ready, and tasks whose lease ran out from
// power:leases, to a new lease with Attempt+1: a job outlives an edge that
// stops half-way. A report counts only with the current lease. Jobs expire
// after PowerJobRetention.

// PowerJobRetention is how long a job and its results are kept.
const PowerJobRetention = 7 * 24 * time.Hour

// Leases of claimed tasks.
const (
	DefaultPowerLease = 2 * time.Minute
	MaxPowerLease     = 30 * time.Minute
	// MaxPowerClaim is how many tasks one claim hands out at most.
	MaxPowerClaim = 1000
)

func (s *Store) powerJobKey(id string) string    { return s.key("power", "job", id) }
func (s *Store) powerTasksKey(id string) string  { return s.key("power", "tasks", id) }
func (s *Store) powerEventsKey(id string) string { return s.key("power", "events", id) }
func (s *Store) powerReadyKey() string           { return s.key("power", "ready") }
func (s *Store) powerLeasesKey() string          { return s.key("power", "leases") }
func (s *Store) powerWakeKey() string            { return s.key("power", "wake") }
func (s *Store) powerJobsKey() string            { return s.key("power", "jobs") }
func (s *Store) powerStateKey() string           { return s.key("power", "state") }

func (s *Store) powerIdemKey(user, key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.key("power", "idem", user, hex.EncodeToString(sum[:]))
}

// powerJobHeader is the part of a job fixed at creation.
type powerJobHeader struct {
	ID          string              `json:"id"`
	Action      model.PowerAction   `json:"action"`
	Method      model.PowerMethod   `json:"method,omitempty"`
	Force       bool                `json:"force,omitempty"`
	CycleWaitMS int64               `json:"cycle_wait_ms,omitempty"`
	Nodes       []string            `json:"nodes"`
	User        string              `json:"user"`
	Created     time.Time           `json:"created"`
	Request     *model.PowerRequest `json:"request,omitempty"`
}

func queueItem(job, node string) string { return job + " " + node }

func splitItem(item string) (job, node string) {
	job, node, _ = strings.Cut(item, " ")
	return job, node
}

// ValidPowerJobID reports whether id looks like a job id (32 hex digits).
func ValidPowerJobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// maxIdemKey caps an Idempotency-Key header.
const maxIdemKey = 255

// CreatePowerJob records a power request for the expanded node names and
// queues one task per node that can be acted on; nodes that cannot (no
// BMC address, no outlet, a secret not set) get a failed result at once
// with the reason. The job, its tasks and its audit event are written in
// one transaction. A request with an idempotency key already used by the
// same user returns that job instead (created is false); the key used for
// a different request is a conflict.
func (s *Store) CreatePowerJob(ctx context.Context, a Actor, req model.PowerRequest, names []string, idemKey string) (job model.PowerJob, created bool, err error) {
	if err := req.Validate(); err != nil {
		return job, false, err
	}
	switch {
	case len(names) == 0:
		return job, false, errf(KindInvalid, "nodes", "the noderange names no nodes")
	case len(names) > model.MaxPowerNodes:
		return job, false, errf(KindInvalid, "nodes", "%d nodes is more than one job may hold (%d)", len(names), model.MaxPowerNodes)
	case len(idemKey) > maxIdemKey:
		return job, false, errf(KindInvalid, "Idempotency-Key", "is longer than %d bytes", maxIdemKey)
	}
	names = dedup(names)
	cycleWait, _ := req.CycleWaitDuration()
	var watch []string
	idem := ""
	if idemKey != "" {
		idem = s.powerIdemKey(a.User, idemKey)
		watch = append(watch, idem)
	}
	var existing string
	err = s.txn(ctx, watch, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		existing = ""
		if idem != "" {
			id, err := tx.Get(ctx, idem).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("read idempotency key: %w", err)
			}
			if id != "" {
				existing = id
				return nil, nil
			}
		}
		world, err := s.powerWorld(ctx, req, names)
		if err != nil {
			return nil, err
		}
		if len(world.nodes) == 0 {
			return nil, errf(KindInvalid, "nodes", "none of the %s named exists: %s", plural(len(names), "node"), noderange.Fold(names))
		}
		id := newID()
		plan, err := planPower(id, req, names, world)
		if err != nil {
			return nil, err
		}
		now := s.now()
		hdr := powerJobHeader{ID: id, Action: req.Action, Method: req.Method, Force: req.Force, Nodes: names, User: a.User, Created: now}
		if req.Action == model.PowerCycle {
			hdr.CycleWaitMS = cycleWait.Milliseconds()
		}
		job = model.PowerJob{ID: id, Action: hdr.Action, Method: hdr.Method, Force: hdr.Force, CycleWaitMS: hdr.CycleWaitMS,
			Nodes: names, User: a.User, Created: now, Updated: now, Revision: 1}
		fields := []any{"job", mustJSON(hdr), "rev", 1, "updated", now.Format(time.RFC3339Nano), "left", len(plan.tasks)}
		results := map[string]model.PowerNodeResult{}
		for _, f := range plan.failed {
			f.Done = now
			results[f.Node] = f
			fields = append(fields, "r:"+f.Node, mustJSON(f))
		}
		tasks := make([]any, 0, 2*len(plan.tasks))
		items := make([]any, 0, len(plan.tasks))
		for _, t := range plan.tasks {
			r := model.PowerNodeResult{Node: t.Task.Node, Status: model.PowerNodeQueued, Method: t.Task.Method}
			results[r.Node] = r
			fields = append(fields, "r:"+r.Node, mustJSON(r))
			tasks = append(tasks, t.Task.Node, mustJSON(t))
			items = append(items, queueItem(id, t.Task.Node))
		}
		job.State = model.PowerJobQueued
		if len(plan.tasks) == 0 {
			job.State = model.PowerJobDone
		}
		fields = append(fields, "state", string(job.State))
		for _, n := range names {
			job.Results = append(job.Results, results[n])
		}
		job.Counts = countResults(job.Results)
		return func(pipe redis.Pipeliner) error {
			jk, tk, ek := s.powerJobKey(id), s.powerTasksKey(id), s.powerEventsKey(id)
			pipe.HSet(ctx, jk, fields...)
			pipe.Expire(ctx, jk, PowerJobRetention)
			if len(tasks) > 0 {
				pipe.HSet(ctx, tk, tasks...)
				pipe.Expire(ctx, tk, PowerJobRetention)
				pipe.RPush(ctx, s.powerReadyKey(), items...)
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.powerWakeKey(), MaxLen: 100, Approx: true, Values: []string{"job", id}})
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: ek, Values: []string{"rev", "1"}})
			pipe.Expire(ctx, ek, PowerJobRetention)
			pipe.ZAdd(ctx, s.powerJobsKey(), redis.Z{Score: float64(now.UnixMilli()), Member: id})
			pipe.ZRemRangeByScore(ctx, s.powerJobsKey(), "-inf", strconv.FormatInt(now.Add(-PowerJobRetention).UnixMilli(), 10))
			if idem != "" {
				pipe.Set(ctx, idem, id, PowerJobRetention)
			}
			s.addAudit(ctx, pipe, a, powerAudit(job, req))
			return nil
		}, nil
	})
	if err != nil {
		return job, false, err
	}
	if existing != "" {
		old, err := s.GetPowerJob(ctx, existing)
		if err != nil {
			return old, false, err
		}
		if old.Action != req.Action || old.Method != req.Method || old.Force != req.Force || !slices.Equal(old.Nodes, names) {
			return old, false, errf(KindConflict, "Idempotency-Key", "the key was used for another request (power job %s): use a new key for a new request", existing)
		}
		return old, false, nil
	}
	return job, true, nil
}

// powerAudit records who powered what: the action, method and nodes. No
// target, user name or secret of a BMC or PDU goes into it.
func powerAudit(job model.PowerJob, req model.PowerRequest) model.AuditEvent {
	rng := noderange.Fold(job.Nodes)
	method := string(req.Method)
	if method == "" {
		method = "each node's own"
	}
	msg := fmt.Sprintf("power %s %s (%s) via %s", job.Action, rng, plural(len(job.Nodes), "node"), method)
	if req.Force {
		msg += ", forced"
	}
	refs := []string{"power/" + job.ID}
	// Node refs make a node's power history show in its audit; a huge job
	// names its nodes in the extras only.
	if len(job.Nodes) <= 1000 {
		for _, n := range job.Nodes {
			refs = append(refs, "node/"+n)
		}
	}
	extras := map[string]string{"job": job.ID, "action": string(job.Action), "nodes": rng, "method": method,
		"force": strconv.FormatBool(req.Force)}
	if job.Counts.Failed > 0 {
		extras["refused"] = strconv.Itoa(job.Counts.Failed)
	}
	return model.AuditEvent{Kind: "power", Method: string(job.Action), Refs: refs, Msg: msg, Extras: extras}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func dedup(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// powerWorld reads what planning a job needs: the nodes with their
// effective settings, the power connections of those switched through a
// PDU, the PDUs, everything plugged into the outlets used, and which
// secrets are set.
func (s *Store) powerWorld(ctx context.Context, req model.PowerRequest, names []string) (powerWorld, error) {
	w := powerWorld{nodes: map[string]model.Node{}, conns: map[string][]model.Connection{}, devices: map[string]model.Device{},
		feeds: map[outletRef][]model.Connection{}}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.nodeKey(n)
	}
	nodes, err := mgetJSON[model.Node](ctx, s.rdb, keys)
	if err != nil {
		return w, fmt.Errorf("read nodes: %w", err)
	}
	ptrs := make([]*model.Node, len(nodes))
	for i := range nodes {
		ptrs[i] = &nodes[i]
	}
	if err := s.resolveNodes(ctx, ptrs); err != nil {
		return w, err
	}
	var refs []string
	var pduNodes []string
	for _, n := range nodes {
		w.nodes[n.Name] = n
		switch methodFor(req, n) {
		case model.PowerPDU:
			pduNodes = append(pduNodes, n.Name)
		default:
			if n.BMC.CredentialRef != "" {
				refs = append(refs, n.BMC.CredentialRef)
			}
		}
	}
	if len(pduNodes) > 0 {
		conns, err := s.powerConnsOf(ctx, pduNodes, s.nodeConnsKey)
		if err != nil {
			return w, err
		}
		var devNames []string
		for _, c := range conns {
			w.conns[c.Node] = append(w.conns[c.Node], c)
			if !slices.Contains(devNames, c.Device) {
				devNames = append(devNames, c.Device)
			}
		}
		dkeys := make([]string, len(devNames))
		for i, d := range devNames {
			dkeys[i] = s.deviceKey(d)
		}
		devs, err := mgetJSON[model.Device](ctx, s.rdb, dkeys)
		if err != nil {
			return w, fmt.Errorf("read PDUs: %w", err)
		}
		for _, d := range devs {
			w.devices[d.Name] = d
			if d.CredentialRef != "" {
				refs = append(refs, d.CredentialRef)
			}
		}
		if req.Action.Destructive() {
			feeds, err := s.powerConnsOf(ctx, devNames, s.deviceConnsKey)
			if err != nil {
				return w, err
			}
			for _, c := range feeds {
				r := outletRef{c.Device, c.Port}
				w.feeds[r] = append(w.feeds[r], c)
			}
		}
	}
	slices.Sort(refs)
	if w.secrets, err = s.secretsExist(ctx, s.rdb, slices.Compact(refs)); err != nil {
		return w, err
	}
	return w, nil
}

// powerConnsOf reads the power connections in the index sets of owners
// (nodes or devices), sorted by id.
func (s *Store) powerConnsOf(ctx context.Context, owners []string, setKey func(string) string) ([]model.Connection, error) {
	cmds := make([]*redis.StringSliceCmd, len(owners))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, o := range owners {
			cmds[i] = pipe.SMembers(ctx, setKey(o))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read power connections: %w", err)
	}
	var ids []string
	for _, c := range cmds {
		for _, id := range c.Val() {
			if strings.HasPrefix(id, string(model.ConnPower)+":") {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.connKey(id)
	}
	return mgetJSON[model.Connection](ctx, s.rdb, keys)
}

func countResults(rs []model.PowerNodeResult) model.PowerCounts {
	c := model.PowerCounts{Total: len(rs)}
	for _, r := range rs {
		switch r.Status {
		case model.PowerNodeQueued:
			c.Queued++
		case model.PowerNodeRunning:
			c.Running++
		case model.PowerNodeOK:
			c.OK++
		case model.PowerNodeFailed:
			c.Failed++
		}
	}
	return c
}

// jobFromHash builds a job from its hash; with results false it leaves
// Results out but still counts them.
func jobFromHash(id string, h map[string]string, results bool) (model.PowerJob, error) {
	var hdr powerJobHeader
	if err := json.Unmarshal([]byte(h["job"]), &hdr); err != nil {
		return model.PowerJob{}, fmt.Errorf("decode power job %s: %w", id, err)
	}
	j := model.PowerJob{ID: id, Action: hdr.Action, Method: hdr.Method, Force: hdr.Force, CycleWaitMS: hdr.CycleWaitMS,
		Nodes: hdr.Nodes, User: hdr.User, Created: hdr.Created, State: model.PowerJobState(h["state"])}
	j.Revision, _ = strconv.ParseInt(h["rev"], 10, 64)
	j.Updated, _ = time.Parse(time.RFC3339Nano, h["updated"])
	rs := make([]model.PowerNodeResult, 0, len(hdr.Nodes))
	for _, n := range hdr.Nodes {
		r := model.PowerNodeResult{Node: n, Status: model.PowerNodeQueued}
		if raw, ok := h["r:"+n]; ok {
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return j, fmt.Errorf("decode power job %s result of %s: %w", id, n, err)
			}
		}
		rs = append(rs, r)
	}
	j.Counts = countResults(rs)
	if results {
		j.Results = rs
	}
	return j, nil
}

// GetPowerJob reads a job with every node's result.
func (s *Store) GetPowerJob(ctx context.Context, id string) (model.PowerJob, error) {
	h, err := s.rdb.HGetAll(ctx, s.powerJobKey(id)).Result()
	if err != nil {
		return model.PowerJob{}, fmt.Errorf("read power job %s: %w", id, err)
	}
	if len(h) == 0 {
		return model.PowerJob{}, notFound("power job", id)
	}
	return jobFromHash(id, h, true)
}

// WaitPowerJob returns the job once its revision is above after, or it is
// done, or wait has passed, whichever comes first.
func (s *Store) WaitPowerJob(ctx context.Context, id string, after int64, wait time.Duration) (model.PowerJob, error) {
	deadline := time.Now().Add(wait)
	for {
		var (
			rev   *redis.SliceCmd
			last  *redis.XMessageSliceCmd
			jk    = s.powerJobKey(id)
			event = s.powerEventsKey(id)
		)
		_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			rev = pipe.HMGet(ctx, jk, "rev", "state")
			last = pipe.XRevRangeN(ctx, event, "+", "-", 1)
			return nil
		})
		if err != nil {
			return model.PowerJob{}, fmt.Errorf("follow power job %s: %w", id, err)
		}
		vals := rev.Val()
		rs, _ := vals[0].(string)
		if rs == "" {
			return model.PowerJob{}, notFound("power job", id)
		}
		n, _ := strconv.ParseInt(rs, 10, 64)
		state, _ := vals[1].(string)
		left := time.Until(deadline)
		if n > after || state == string(model.PowerJobDone) || left <= 0 {
			return s.GetPowerJob(ctx, id)
		}
		from := "0-0"
		if msgs := last.Val(); len(msgs) == 1 {
			from = msgs[0].ID
		}
		_, err = s.xread(ctx, redis.XReadArgs{Streams: []string{event, from}, Count: 1}, max(left, time.Millisecond))
		if err != nil && !errors.Is(err, redis.Nil) {
			return model.PowerJob{}, fmt.Errorf("follow power job %s: %w", id, err)
		}
		if err == nil {
			// Results arrive in many small reports; answering each one
			// would send the whole job (a thousand results) dozens of
			// times a second. Let the next few land first.
			select {
			case <-time.After(min(followCoalesce, max(time.Until(deadline), 0))):
			case <-ctx.Done():
			}
		}
	}
}

// followCoalesce is how long WaitPowerJob lets results gather after the
// first change before it answers.
const followCoalesce = 250 * time.Millisecond

// ListPowerJobs returns the newest jobs first, without per-node results.
// limit 0 means 100.
func (s *Store) ListPowerJobs(ctx context.Context, limit int) (model.Page[model.PowerJob], error) {
	limit = ListOptions{Limit: limit}.limit()
	now := s.now()
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.powerJobsKey(), &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-PowerJobRetention).UnixMilli(), 10), Max: "+inf", Count: int64(limit)}).Result()
	if err != nil {
		return model.Page[model.PowerJob]{}, fmt.Errorf("list power jobs: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, s.powerJobKey(id))
		}
		return nil
	})
	if err != nil {
		return model.Page[model.PowerJob]{}, fmt.Errorf("list power jobs: %w", err)
	}
	out := make([]model.PowerJob, 0, len(ids))
	for i, id := range ids {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // expired
		}
		j, err := jobFromHash(id, h, false)
		if err != nil {
			return model.Page[model.PowerJob]{}, err
		}
		out = append(out, j)
	}
	return model.Page[model.PowerJob]{Items: out, Total: len(out)}, nil
}

// ClaimOptions say what an edge asks for.
type ClaimOptions struct {
	Edge  string        // the edge's name, shown with the results
	Max   int           // tasks at most; 0 means 1
	Wait  time.Duration // how long to wait for work when there is none
	Lease time.Duration // how long the edge holds each task; 0 means DefaultPowerLease
}

// ClaimPowerTasks hands the edge up to Max tasks, waiting up to Wait for
// some to be queued. Tasks whose lease ran out come first, with Attempt
// one higher than before: the edge that held them stopped. Each task
// carries a new lease token, which its report must send back, and the
// passwords of the secrets it names.
func (s *Store) ClaimPowerTasks(ctx context.Context, o ClaimOptions) ([]model.PowerTask, error) {
	if o.Max <= 0 {
		o.Max = 1
	}
	o.Max = min(o.Max, MaxPowerClaim)
	if o.Lease <= 0 {
		o.Lease = DefaultPowerLease
	}
	o.Lease = min(o.Lease, MaxPowerLease)
	o.Edge = model.CleanText(o.Edge, 64)
	deadline := time.Now().Add(o.Wait)
	for {
		// Note the wake stream's end before looking, so a job queued
		// between the look and the wait still wakes us.
		last, err := s.rdb.XRevRangeN(ctx, s.powerWakeKey(), "+", "-", 1).Result()
		if err != nil {
			return nil, fmt.Errorf("claim power tasks: %w", err)
		}
		from := "0-0"
		if len(last) == 1 {
			from = last[0].ID
		}
		recs, err := s.claimOnce(ctx, o)
		if err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if len(recs) > 0 || left <= 0 {
			return s.fillSecrets(ctx, recs)
		}
		// Wake for a new job, or when the next lease runs out.
		block := left
		next, err := s.rdb.ZRangeWithScores(ctx, s.powerLeasesKey(), 0, 0).Result()
		if err != nil {
			return nil, fmt.Errorf("claim power tasks: %w", err)
		}
		if len(next) == 1 {
			until := time.UnixMilli(int64(next[0].Score)).Sub(s.now()) + time.Millisecond
			block = min(block, max(until, time.Millisecond))
		}
		_, err = s.xread(ctx, redis.XReadArgs{Streams: []string{s.powerWakeKey(), from}, Count: 1}, max(block, time.Millisecond))
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("claim power tasks: %w", err)
		}
	}
}

// claimed is one task as a claim took it.
type claimed struct {
	rec   powerTaskRecord
	lease string
}

// claimOnce takes what is claimable now, in one transaction.
func (s *Store) claimOnce(ctx context.Context, o ClaimOptions) ([]claimed, error) {
	var out []claimed
	ready, leases := s.powerReadyKey(), s.powerLeasesKey()
	err := s.txn(ctx, []string{ready, leases}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		out = nil
		now := s.now()
		expired, err := tx.ZRangeByScore(ctx, leases, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10),
			Count: int64(o.Max)}).Result()
		if err != nil {
			return nil, fmt.Errorf("read power leases: %w", err)
		}
		var fresh []string
		if n := o.Max - len(expired); n > 0 {
			if fresh, err = tx.LRange(ctx, ready, 0, int64(n-1)).Result(); err != nil {
				return nil, fmt.Errorf("read power queue: %w", err)
			}
		}
		if len(expired) == 0 && len(fresh) == 0 {
			return nil, nil
		}
		items := append(slices.Clone(expired), fresh...)
		byJob := map[string][]string{}
		var jobs []string
		for _, it := range items {
			j, n := splitItem(it)
			if _, ok := byJob[j]; !ok {
				jobs = append(jobs, j)
			}
			byJob[j] = append(byJob[j], n)
		}
		type jobRead struct {
			res, recs *redis.SliceCmd
		}
		reads := make([]jobRead, len(jobs))
		_, err = tx.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, j := range jobs {
				fields := make([]string, len(byJob[j]))
				for k, n := range byJob[j] {
					fields[k] = "r:" + n
				}
				reads[i] = jobRead{res: pipe.HMGet(ctx, s.powerJobKey(j), fields...), recs: pipe.HMGet(ctx, s.powerTasksKey(j), byJob[j]...)}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read claimed power tasks: %w", err)
		}
		expiry := float64(now.Add(o.Lease).UnixMilli())
		type update struct {
			job    string
			fields []any
		}
		var updates []update
		var drop []any
		for i, j := range jobs {
			u := update{job: j}
			for k, n := range byJob[j] {
				rawRes, _ := reads[i].res.Val()[k].(string)
				rawRec, _ := reads[i].recs.Val()[k].(string)
				var r model.PowerNodeResult
				var rec powerTaskRecord
				if rawRes == "" || rawRec == "" || json.Unmarshal([]byte(rawRes), &r) != nil ||
					json.Unmarshal([]byte(rawRec), &rec) != nil || r.Status.Final() {
					drop = append(drop, queueItem(j, n)) // job expired or node already done
					continue
				}
				r.Status, r.Attempt, r.Edge = model.PowerNodeRunning, r.Attempt+1, o.Edge
				lease := newID()
				u.fields = append(u.fields, "r:"+n, mustJSON(r), "l:"+n, lease)
				rec.Task.Attempt = r.Attempt
				out = append(out, claimed{rec: rec, lease: lease})
			}
			if len(u.fields) > 0 {
				updates = append(updates, u)
			}
		}
		return func(pipe redis.Pipeliner) error {
			if len(fresh) > 0 {
				pipe.LTrim(ctx, ready, int64(len(fresh)), -1)
			}
			if len(drop) > 0 {
				pipe.ZRem(ctx, leases, drop...)
			}
			for _, c := range out {
				pipe.ZAdd(ctx, leases, redis.Z{Score: expiry, Member: queueItem(c.rec.Task.Job, c.rec.Task.Node)})
			}
			for _, u := range updates {
				jk := s.powerJobKey(u.job)
				fields := append(u.fields, "state", string(model.PowerJobRunning), "updated", now.Format(time.RFC3339Nano))
				pipe.HSet(ctx, jk, fields...)
				pipe.HIncrBy(ctx, jk, "rev", 1)
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.powerEventsKey(u.job), MaxLen: 1000, Approx: true, Values: []string{"claim", o.Edge}})
			}
			return nil
		}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim power tasks: %w", err)
	}
	return out, nil
}

// fillSecrets turns claimed records into tasks for the edge, with their
// leases and the passwords their secrets hold now.
func (s *Store) fillSecrets(ctx context.Context, cs []claimed) ([]model.PowerTask, error) {
	var names []string
	for _, c := range cs {
		if c.rec.BMCSecret != "" {
			names = append(names, c.rec.BMCSecret)
		}
		for _, ref := range c.rec.OutletSecrets {
			if ref != "" {
				names = append(names, ref)
			}
		}
	}
	slices.Sort(names)
	vals, err := s.secretValues(ctx, slices.Compact(names))
	if err != nil {
		return nil, err
	}
	out := make([]model.PowerTask, len(cs))
	for i, c := range cs {
		t := c.rec.Task
		t.Lease = c.lease
		if t.BMC != nil {
			bmc := *t.BMC
			bmc.Password = vals[c.rec.BMCSecret]
			t.BMC = &bmc
		}
		t.Outlets = slices.Clone(t.Outlets)
		for k := range t.Outlets {
			if k < len(c.rec.OutletSecrets) {
				t.Outlets[k].Password = vals[c.rec.OutletSecrets[k]]
			}
		}
		out[i] = t
	}
	return out, nil
}

// maxResultError caps an error message the edge reports.
const maxResultError = 1024

// ReportPowerResults records results the edge reports. A result counts
// only with the lease of the task's current claim; the same result sent
// again changes nothing and counts as accepted, so the edge may retry a
// report whose answer it did not get. A job is done when every node has a
// result.
func (s *Store) ReportPowerResults(ctx context.Context, results []model.PowerResult) (model.PowerReportReply, error) {
	reply := model.PowerReportReply{}
	byJob := map[string][]model.PowerResult{}
	var jobs []string
	for _, r := range results {
		if !ValidPowerJobID(r.Job) {
			reply.Refused = append(reply.Refused, model.PowerRefusal{Job: model.CleanText(r.Job, 40), Node: model.CleanText(r.Node, 64),
				Reason: "no such power job"})
			continue
		}
		if _, ok := byJob[r.Job]; !ok {
			jobs = append(jobs, r.Job)
		}
		byJob[r.Job] = append(byJob[r.Job], r)
	}
	for _, j := range jobs {
		acc, refused, err := s.reportJob(ctx, j, byJob[j])
		if err != nil {
			return reply, err
		}
		reply.Accepted += acc
		reply.Refused = append(reply.Refused, refused...)
	}
	return reply, nil
}

func (s *Store) reportJob(ctx context.Context, job string, results []model.PowerResult) (int, []model.PowerRefusal, error) {
	jk := s.powerJobKey(job)
	var (
		accepted int
		refused  []model.PowerRefusal
	)
	err := s.txn(ctx, []string{jk, s.powerLeasesKey()}, func(tx *redis.Tx) (func(redis.Pipeliner) error, error) {
		accepted, refused = 0, nil
		fields := []string{"left"}
		for _, r := range results {
			fields = append(fields, "r:"+r.Node, "l:"+r.Node)
		}
		vals, err := tx.HMGet(ctx, jk, fields...).Result()
		if err != nil {
			return nil, fmt.Errorf("read power job %s: %w", job, err)
		}
		leftStr, _ := vals[0].(string)
		if leftStr == "" {
			for _, r := range results {
				refused = append(refused, model.PowerRefusal{Job: job, Node: model.CleanText(r.Node, 64), Reason: "no such power job (it may have expired)"})
			}
			return nil, nil
		}
		left, _ := strconv.Atoi(leftStr)
		now := s.now()
		var writes []any
		var done []any
		var states []any
		var off []*model.Node
		seen := map[string]bool{}
		for i, r := range results {
			rawRes, _ := vals[1+2*i].(string)
			lease, _ := vals[2+2*i].(string)
			refuse := func(reason string) {
				refused = append(refused, model.PowerRefusal{Job: job, Node: model.CleanText(r.Node, 64), Reason: reason})
			}
			var cur model.PowerNodeResult
			switch {
			case rawRes == "":
				refuse("the node is not part of this job")
				continue
			case json.Unmarshal([]byte(rawRes), &cur) != nil:
				return nil, fmt.Errorf("decode power job %s result of %s", job, r.Node)
			case lease == "" || r.Lease != lease:
				refuse(fmt.Sprintf("lease is not current: the task was claimed again (attempt %d)", cur.Attempt))
				continue
			case cur.Status.Final() || seen[r.Node]:
				accepted++ // a repeated report: nothing changes
				continue
			}
			seen[r.Node] = true
			next := model.PowerNodeResult{Node: r.Node, Status: model.PowerNodeOK, Method: cur.Method, State: r.State,
				Attempt: cur.Attempt, Edge: cur.Edge, TookMS: max(r.TookMS, 0), Done: now}
			if r.Method != "" {
				next.Method = r.Method
			}
			switch r.State {
			case model.PowerStateOn, model.PowerStateOff, model.PowerStateUnknown:
			default:
				next.State = model.PowerStateUnknown
			}
			if r.Error != "" {
				next.Status = model.PowerNodeFailed
				next.Error = model.CleanText(r.Error, maxResultError)
			}
			writes = append(writes, "r:"+r.Node, mustJSON(next))
			done = append(done, queueItem(job, r.Node))
			if next.State == model.PowerStateOn || next.State == model.PowerStateOff {
				states = append(states, r.Node, mustJSON(model.NodePower{Node: r.Node, State: next.State, Method: next.Method, Job: job, Time: now}))
			}
			if next.State == model.PowerStateOff {
				// A node seen powered off is down, whatever its last boot
				// said; its next boot moves it on.
				n, err := s.nodeForState(ctx, tx, r.Node)
				if err != nil {
					return nil, err
				}
				off = append(off, n)
			}
			accepted++
		}
		if len(writes) == 0 {
			return nil, nil
		}
		left -= len(done)
		writes = append(writes, "left", left, "updated", now.Format(time.RFC3339Nano))
		if left <= 0 {
			writes = append(writes, "state", string(model.PowerJobDone))
		}
		return func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, jk, writes...)
			pipe.HIncrBy(ctx, jk, "rev", 1)
			pipe.ZRem(ctx, s.powerLeasesKey(), done...)
			if len(states) > 0 {
				pipe.HSet(ctx, s.powerStateKey(), states...)
			}
			for _, n := range off {
				s.setNodeState(ctx, pipe, n, model.StateDown)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.powerEventsKey(job), MaxLen: 1000, Approx: true, Values: []string{"results", strconv.Itoa(len(done))}})
			return nil
		}, nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("record power results of job %s: %w", job, err)
	}
	return accepted, refused, nil
}

// NodePowerStates returns the last known power of each of nodes that has
// one.
func (s *Store) NodePowerStates(ctx context.Context, nodes []string) (map[string]model.NodePower, error) {
	out := map[string]model.NodePower{}
	if len(nodes) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.powerStateKey(), nodes...).Result()
	if err != nil {
		return nil, fmt.Errorf("read power states: %w", err)
	}
	for i, v := range vals {
		raw, _ := v.(string)
		var p model.NodePower
		if raw != "" && json.Unmarshal([]byte(raw), &p) == nil {
			out[nodes[i]] = p
		}
	}
	return out, nil
}
