package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// Queue is where the edge gets power tasks and sends their results:
// functions' job queue over HTTP in production (functions/client), a
// channel in tests.
type Queue interface {
	// Claim waits up to wait for tasks and returns at most max of them,
	// each with a lease that its report must carry.
	Claim(ctx context.Context, wait time.Duration, max int) ([]model.PowerTask, error)
	// Report hands in finished tasks' results.
	Report(ctx context.Context, results []model.PowerResult) error
}

// Interrupted is the error reported, instead of running it again, for a
// task that is not idempotent and was claimed before by an edge that
// stopped without reporting: the action may already have happened, and a
// second cycle or reset is worse than none. The state reported with it is
// the node's state read now.
const Interrupted = "interrupted: the edge stopped during this operation; not repeated"

// WorkerOptions tune the worker.
type WorkerOptions struct {
	// Parallelism is how many tasks run at once (default 128). Each BMC
	// task holds one ipmitool process or HTTPS connection while it runs.
	Parallelism int
	// ClaimWait is how long one claim long-polls for work (default 25s).
	ClaimWait time.Duration
	// ReportBatch is the most results sent in one report (default 100).
	ReportBatch int
	// ReportDelay is how long a finished result waits for others to share
	// its report (default 50ms): at a thousand nodes it saves hundreds of
	// requests, and nobody notices 50ms.
	ReportDelay time.Duration
	// RetryWait is the first pause after a failed claim or report; it
	// doubles up to a minute (default 1s).
	RetryWait time.Duration
}

// Worker claims power tasks from a Queue, runs them with bounded
// parallelism on BMCs and PDUs, and reports each result with its lease as
// it finishes. A slow or dead BMC holds one slot for at most its timeout
// and never delays anyone else's result.
type Worker struct {
	queue Queue
	bmc   *BMC
	pdus  *PDUs
	opts  WorkerOptions
	log   *slog.Logger
}

// NewWorker returns a worker. pdus may be nil when the edge drives no PDUs;
// the caller owns it and closes it after Run returns.
func NewWorker(queue Queue, bmc *BMC, pdus *PDUs, opts WorkerOptions, log *slog.Logger) *Worker {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 128
	}
	if opts.ClaimWait <= 0 {
		opts.ClaimWait = 25 * time.Second
	}
	if opts.ReportBatch <= 0 {
		opts.ReportBatch = 100
	}
	if opts.ReportDelay <= 0 {
		opts.ReportDelay = 50 * time.Millisecond
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = time.Second
	}
	if bmc == nil {
		bmc = NewBMC(BMCOptions{})
	}
	return &Worker{queue: queue, bmc: bmc, pdus: pdus, opts: opts, log: log}
}

// Run claims and runs tasks until ctx ends. Tasks already running then
// finish (each within its device timeouts) and are reported before Run
// returns, so a stopping edge leaves as few interrupted tasks as it can.
func (w *Worker) Run(ctx context.Context) error {
	n := w.opts.Parallelism
	slots := make(chan struct{}, n)
	results := make(chan model.PowerResult, n)
	reported := make(chan struct{})
	// Reports and running tasks outlive ctx: see above.
	detached := context.WithoutCancel(ctx)
	go func() {
		defer close(reported)
		w.reportLoop(detached, results)
	}()

	var running sync.WaitGroup
	retry := w.opts.RetryWait
	for {
		free, ok := w.takeSlots(ctx, slots)
		if !ok {
			break
		}
		tasks, err := w.queue.Claim(ctx, w.opts.ClaimWait, free)
		if len(tasks) > free {
			// Never run more than the slots taken, whatever the queue did.
			err = errors.Join(err, fmt.Errorf("claim returned %d tasks for %d slots", len(tasks), free))
			tasks = tasks[:free]
		}
		for range free - len(tasks) {
			<-slots
		}
		if err != nil && len(tasks) == 0 {
			if ctx.Err() != nil {
				break
			}
			w.log.Warn("claim power tasks", "err", err, "retry_in", retry)
			if !sleep(ctx, retry) {
				break
			}
			retry = min(2*retry, time.Minute)
			continue
		}
		retry = w.opts.RetryWait
		if len(tasks) > 0 {
			w.log.Debug("claimed power tasks", "tasks", len(tasks))
		}
		for _, t := range tasks {
			running.Go(func() {
				defer func() { <-slots }()
				results <- w.RunTask(detached, t)
			})
		}
	}
	running.Wait()
	close(results)
	<-reported
	return nil
}

// claimLinger is how long the worker, once a slot is free, waits for more
// to free up before it claims: tasks finish one by one, and a claim per
// finished task would make the claim round trip the limit of the whole
// edge (about 200 claims/s), not the BMCs.
const claimLinger = 20 * time.Millisecond

// takeSlots waits for one free slot, then takes the others that free up
// within claimLinger (all of them at once if they are free already), so a
// claim asks for as much work as can start now.
func (w *Worker) takeSlots(ctx context.Context, slots chan struct{}) (int, bool) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	free := 1
	linger := time.NewTimer(claimLinger)
	defer linger.Stop()
	for free < cap(slots) {
		select {
		case slots <- struct{}{}:
			free++
		case <-linger.C:
			return free, true
		case <-ctx.Done():
			return free, true
		}
	}
	return free, true
}

// reportLoop sends results in small batches: a batch goes when it is full
// or ReportDelay after its first result.
func (w *Worker) reportLoop(ctx context.Context, results <-chan model.PowerResult) {
	var batch []model.PowerResult
	var flush <-chan time.Time
	send := func() {
		if len(batch) > 0 {
			w.report(ctx, batch)
		}
		batch, flush = nil, nil
	}
	for {
		select {
		case r, ok := <-results:
			if !ok {
				send()
				return
			}
			batch = append(batch, r)
			if len(batch) >= w.opts.ReportBatch {
				send()
			} else if flush == nil {
				flush = time.After(w.opts.ReportDelay)
			}
		case <-flush:
			send()
		}
	}
}

// report hands in one batch, retrying a few times. A batch that cannot be
// reported is dropped: its leases expire, functions hand the tasks out
// again, and the Attempt rule keeps non-idempotent ones from running twice.
func (w *Worker) report(ctx context.Context, batch []model.PowerResult) {
	wait := w.opts.RetryWait
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.queue.Report(rctx, batch)
		cancel()
		if err == nil {
			return
		}
		if attempt == 4 {
			w.log.Error("report power results; dropped, their leases will expire", "results", len(batch), "err", err)
			return
		}
		w.log.Warn("report power results", "results", len(batch), "err", err, "retry_in", wait)
		time.Sleep(wait)
		wait *= 2
	}
}

// RunTask runs one task and returns its result; it never fails, a failure
// is the result's Error.
func (w *Worker) RunTask(ctx context.Context, task model.PowerTask) model.PowerResult {
	start := time.Now()
	res := model.PowerResult{Job: task.Job, Node: task.Node, Lease: task.Lease, Method: task.Method}
	log := w.log.With("job", task.Job, "node", task.Node, "action", task.Action, "method", task.Method, "attempt", task.Attempt)

	var err error
	if task.Attempt > 1 && !task.Action.Idempotent() {
		res.State, err = w.do(ctx, task, model.PowerStatus)
		res.Error = Interrupted
		if err != nil {
			log.Warn("interrupted power task not repeated; its status read failed too", "err", err)
		} else {
			log.Warn("interrupted power task not repeated", "state", res.State)
		}
	} else {
		res.State, err = w.do(ctx, task, task.Action)
		if err != nil {
			res.Error = err.Error()
		}
	}
	res.Done = time.Now().UTC()
	res.TookMS = time.Since(start).Milliseconds()
	if res.Error != "" && res.Error != Interrupted {
		log.Warn("power task failed", "took_ms", res.TookMS, "err", res.Error)
	} else if res.Error == "" {
		log.Debug("power task done", "state", res.State, "took_ms", res.TookMS)
	}
	return res
}

func (w *Worker) do(ctx context.Context, task model.PowerTask, action model.PowerAction) (model.PowerState, error) {
	switch task.Method {
	case model.PowerIPMI, model.PowerRedfish:
		if task.BMC == nil {
			return model.PowerStateUnknown, fmt.Errorf("power %s via %s: the task names no BMC", action, task.Method)
		}
		target := *task.BMC
		if target.Protocol == "" {
			target.Protocol = task.Method
		}
		return w.bmc.Do(ctx, target, action)
	case model.PowerPDU:
		if w.pdus == nil {
			return model.PowerStateUnknown, fmt.Errorf("power %s via PDU: this edge has no PDU drivers", action)
		}
		return w.pdus.Do(ctx, task.Outlets, action, time.Duration(task.CycleWaitMS)*time.Millisecond)
	}
	return model.PowerStateUnknown, fmt.Errorf("power %s: unknown power method %q", action, task.Method)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
