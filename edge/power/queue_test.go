package power_test

import (
	"context"
	"sync"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// memQueue is the worker's Queue over a slice and a channel, standing in
// for functions' job queue: tasks go in with add, results come out of
// results in the order they were reported.
type memQueue struct {
	mu       sync.Mutex
	tasks    []model.PowerTask
	more     chan struct{}
	maxAsked int
	reports  int

	results chan model.PowerResult
}

func newMemQueue(capacity int) *memQueue {
	return &memQueue{more: make(chan struct{}, 1), results: make(chan model.PowerResult, capacity)}
}

func (q *memQueue) add(tasks ...model.PowerTask) {
	q.mu.Lock()
	q.tasks = append(q.tasks, tasks...)
	q.mu.Unlock()
	select {
	case q.more <- struct{}{}:
	default:
	}
}

func (q *memQueue) Claim(ctx context.Context, wait time.Duration, max int) ([]model.PowerTask, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		q.mu.Lock()
		q.maxAsked = maxInt(q.maxAsked, max)
		if len(q.tasks) > 0 {
			n := min(max, len(q.tasks))
			out := append([]model.PowerTask(nil), q.tasks[:n]...)
			q.tasks = q.tasks[n:]
			rest := len(q.tasks)
			q.mu.Unlock()
			if rest > 0 {
				select {
				case q.more <- struct{}{}:
				default:
				}
			}
			return out, nil
		}
		q.mu.Unlock()
		select {
		case <-q.more:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (q *memQueue) Report(_ context.Context, results []model.PowerResult) error {
	q.mu.Lock()
	q.reports++
	q.mu.Unlock()
	for _, r := range results {
		q.results <- r
	}
	return nil
}

// collect waits for n results, keyed by node, and their order.
func (q *memQueue) collect(ctx context.Context, n int) (map[string]model.PowerResult, []string, error) {
	byNode := map[string]model.PowerResult{}
	var order []string
	for len(order) < n {
		select {
		case r := <-q.results:
			byNode[r.Node] = r
			order = append(order, r.Node)
		case <-ctx.Done():
			return byNode, order, ctx.Err()
		}
	}
	return byNode, order, nil
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
