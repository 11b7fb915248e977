package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// auditQuery reads the audit filters: since, until (RFC 3339 or a
// duration ago such as 2h), user, kind, method, ref, limit, cursor.
func auditQuery(r *http.Request) (store.AuditQuery, error) {
	q := r.URL.Query()
	aq := store.AuditQuery{User: q.Get("user"), Kind: q.Get("kind"), Method: q.Get("method"), Ref: q.Get("ref"), Before: q.Get("cursor")}
	var err error
	if aq.Since, err = timeParam(q.Get("since"), "since"); err != nil {
		return aq, err
	}
	if aq.Until, err = timeParam(q.Get("until"), "until"); err != nil {
		return aq, err
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return aq, problem.New(http.StatusBadRequest, "bad-query", "Bad query", "limit must be a number from 1 to 1000")
		}
		aq.Limit = n
	}
	return aq, nil
}

// timeParam accepts an RFC 3339 time or a duration meaning that long ago.
func timeParam(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	p := problem.New(http.StatusBadRequest, "bad-query", "Bad query",
		name+" must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (90m, 24h)")
	p.Errors = []model.FieldProblem{{Field: name, Message: "is not a time"}}
	return time.Time{}, p
}

func (a *API) audit(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	page, err := a.store.Audit(r.Context(), q)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, page)
}

// auditFollow long-polls for events after a stream position, so clients
// follow the audit stream without functions keeping any state.
func (a *API) auditFollow(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	items, after, err := a.store.AuditAfter(r.Context(), q, r.URL.Query().Get("after"), wait)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.AuditFollowReply{Items: items, After: after})
}

// waitParam reads how long a long poll may wait: the wait query parameter,
// 25 s when absent, at most 60 s.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 25 * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > 60*time.Second {
		return 0, problem.New(http.StatusBadRequest, "bad-query", "Bad query", "wait must be a duration up to 60s")
	}
	return d, nil
}
