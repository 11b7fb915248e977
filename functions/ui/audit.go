package ui

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/store"
)

// auditPageSize is how many events one audit page shows.
const auditPageSize = 100

func (u *UI) audit(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	q := r.URL.Query()
	f := components.AuditFilter{}
	for _, p := range []struct {
		dst *string
		key string
	}{{&f.Since, "since"}, {&f.Until, "until"}, {&f.User, "user"}, {&f.Kind, "kind"}, {&f.Method, "method"}, {&f.Ref, "ref"}} {
		*p.dst = strings.TrimSpace(q.Get(p.key))
	}
	v := components.AuditView{Filter: f, Cursor: q.Get("cursor")}
	aq := store.AuditQuery{User: f.User, Kind: f.Kind, Method: f.Method, Ref: f.Ref, Before: v.Cursor, Limit: auditPageSize}
	var problems []string
	var err error
	now := time.Now()
	if aq.Since, err = parseWhen(f.Since, now); err != nil {
		problems = append(problems, "since: "+err.Error())
	}
	if aq.Until, err = parseWhen(f.Until, now); err != nil {
		problems = append(problems, "until: "+err.Error())
	}
	if len(problems) > 0 {
		v.FilterError = strings.Join(problems, "; ")
	} else {
		page, err := u.store.Audit(r.Context(), aq)
		if err != nil {
			return err
		}
		v.Events, v.Next = page.Items, page.Next
		// Only the newest page of an open-ended query can grow.
		if v.Cursor == "" && f.Until == "" && u.static.url(htmxPath) != "" {
			v.Live = "/audit"
			if qs := f.Query(""); qs != "" {
				v.Live += "?" + qs
			}
		}
	}
	if fragment(r, "audit-rows") {
		return u.render(w, r, http.StatusOK, components.AuditRows(v.Events, v.Live))
	}
	return u.render(w, r, http.StatusOK, components.AuditPage(u.frame(w, r, id, "audit", "Audit"), v))
}

// parseWhen reads a time as admins type it: RFC 3339, a date, a date and
// time (UTC), or a duration meaning that long ago.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write 2026-01-02, 2026-01-02 15:04 (UTC), 2026-01-02T15:04:05Z or a duration ago such as 90m or 24h", s)
}
