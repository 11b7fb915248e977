package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// CreatePowerJob queues a power request. A non-empty idemKey makes the
// call safe to retry: the same key returns the job the first call made.
func (c *Client) CreatePowerJob(ctx context.Context, req model.PowerRequest, idemKey string) (model.PowerJob, error) {
	var h http.Header
	if idemKey != "" {
		h = http.Header{"Idempotency-Key": {idemKey}}
	}
	var job model.PowerJob
	_, err := c.do(ctx, http.MethodPost, "/power/jobs", h, req, &job)
	return job, err
}

// PowerJob reads a job with every node's result.
func (c *Client) PowerJob(ctx context.Context, id string) (model.PowerJob, error) {
	var job model.PowerJob
	_, err := c.do(ctx, http.MethodGet, "/power/jobs/"+url.PathEscape(id), nil, nil, &job)
	return job, err
}

// WaitPowerJob returns the job once its revision is above after or it is
// done, or when wait has passed.
func (c *Client) WaitPowerJob(ctx context.Context, id string, after int64, wait time.Duration) (model.PowerJob, error) {
	v := url.Values{"after": {strconv.FormatInt(after, 10)}, "wait": {wait.String()}}
	var job model.PowerJob
	_, err := c.do(ctx, http.MethodGet, withQuery("/power/jobs/"+url.PathEscape(id), v), nil, nil, &job)
	return job, err
}

// FollowPowerJob calls fn with the job each time it changes, from as it
// is now, until it is done, and returns it done.
func (c *Client) FollowPowerJob(ctx context.Context, id string, fn func(model.PowerJob)) (model.PowerJob, error) {
	job, err := c.PowerJob(ctx, id)
	for err == nil {
		if fn != nil {
			fn(job)
		}
		if job.State == model.PowerJobDone {
			return job, nil
		}
		job, err = c.WaitPowerJob(ctx, id, job.Revision, 25*time.Second)
	}
	return job, err
}

// PowerJobs lists the newest jobs first, without per-node results; limit
// 0 means 100.
func (c *Client) PowerJobs(ctx context.Context, limit int) ([]model.PowerJob, error) {
	var page model.Page[model.PowerJob]
	_, err := c.do(ctx, http.MethodGet, withQuery("/power/jobs", ListOptions{Limit: limit}.values()), nil, nil, &page)
	return page.Items, err
}

// SetSecret stores a secret's value; it can never be read back.
func (c *Client) SetSecret(ctx context.Context, name, value string) (model.SecretInfo, error) {
	var info model.SecretInfo
	_, err := c.do(ctx, http.MethodPut, "/secrets/"+url.PathEscape(name), nil, model.SecretValue{Value: value}, &info)
	return info, err
}

// Secrets lists the secrets' names and when they were set.
func (c *Client) Secrets(ctx context.Context) ([]model.SecretInfo, error) {
	var page model.Page[model.SecretInfo]
	_, err := c.do(ctx, http.MethodGet, "/secrets", nil, nil, &page)
	return page.Items, err
}

// DeleteSecret removes a secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/secrets/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// ErrStaleLease means herd refused some reported results because their
// task was claimed again after its lease ran out: another edge owns them
// now, and sending them again cannot succeed.
var ErrStaleLease = errors.New("power results refused: the lease is no longer current")

// PowerQueue is the edge's side of the power queue over HTTP: it claims
// tasks and reports their results, authenticated with the edge's shared
// secret. It is what the edge's power worker takes as its Queue.
type PowerQueue struct {
	c    *Client
	auth http.Header
	// Name is the edge's name, shown with the results it reports.
	Name string
	// Lease is how long a claimed task stays the edge's before herd hands
	// it out again; 0 lets herd choose (2 minutes).
	Lease time.Duration
}

// NewPowerQueue returns the power queue of the herd at baseURL (e.g.
// http://127.0.0.1:8080) for the edge holding edgeSecret. hc may be nil;
// its timeout must exceed the longest claim wait (60s).
func NewPowerQueue(baseURL string, hc *http.Client, edgeSecret string) *PowerQueue {
	return &PowerQueue{c: New(baseURL, "", hc), auth: http.Header{edgeSecretHeader: {edgeSecret}}}
}

// edgeSecretHeader is auth.HeaderEdgeSecret; the client does not import
// the server's packages.
const edgeSecretHeader = "X-Herd-Edge-Secret"

// Claim waits up to wait for at most max tasks and returns those it got,
// none when the wait ran out. Each task holds a lease its result must
// carry.
func (q *PowerQueue) Claim(ctx context.Context, wait time.Duration, max int) ([]model.PowerTask, error) {
	v := url.Values{"wait": {min(wait, 60*time.Second).String()}, "max": {strconv.Itoa(max)}, "edge": {q.Name}}
	if q.Lease > 0 {
		v.Set("lease", q.Lease.String())
	}
	var out model.PowerClaim
	_, err := q.c.do(ctx, http.MethodPost, withQuery("/power/claim", v), q.auth.Clone(), nil, &out)
	if err != nil {
		return nil, fmt.Errorf("claim power tasks: %w", err)
	}
	return out.Tasks, nil
}

// Report sends results. Sending the same results again is harmless, so a
// report whose answer was lost may be retried. Results herd refused
// because their lease is no longer current make it return an error
// wrapping ErrStaleLease, after the others were recorded.
func (q *PowerQueue) Report(ctx context.Context, results []model.PowerResult) error {
	if len(results) == 0 {
		return nil
	}
	var out model.PowerReportReply
	_, err := q.c.do(ctx, http.MethodPost, "/power/results", q.auth.Clone(), model.PowerReport{Results: results}, &out)
	if err != nil {
		return fmt.Errorf("report %d power results: %w", len(results), err)
	}
	if len(out.Refused) > 0 {
		parts := make([]string, len(out.Refused))
		for i, r := range out.Refused {
			parts[i] = r.Node + ": " + r.Reason
		}
		return fmt.Errorf("%w: %s", ErrStaleLease, strings.Join(parts, "; "))
	}
	return nil
}
