package dhcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of ReservationsConfig.
const (
	DefaultRefresh     = 5 * time.Second
	DefaultWakeGap     = time.Second
	DefaultHTTPTimeout = 5 * time.Second
)

// HeaderEdgeSecret carries the shared secret to functions.
const HeaderEdgeSecret = "X-Herd-Edge-Secret"

// ReservationsPath is where functions publish the reservation table,
// under the functions base URL.
const ReservationsPath = "/boot/reservations"

// ReservationsConfig says where the table comes from and how often.
type ReservationsConfig struct {
	// FunctionsURL is the functions base URL (its path prefixes
	// ReservationsPath).
	FunctionsURL *url.URL
	// Secret goes out as X-Herd-Edge-Secret.
	Secret string
	// Client makes the requests; nil: a client with HTTPTimeout.
	Client *http.Client
	// Refresh is the background refresh period; 0: DefaultRefresh.
	Refresh time.Duration
	// WakeGap is the least time between refreshes asked for by Wake; 0:
	// DefaultWakeGap.
	WakeGap time.Duration
	// HTTPTimeout bounds one fetch; 0: DefaultHTTPTimeout.
	HTTPTimeout time.Duration
}

// Reservations keeps the reservation table in memory and refreshes it in
// the background, so DHCP answers never wait on functions. While functions
// cannot be reached the last table stays in use; the outage is logged when
// it starts and when it ends.
type Reservations struct {
	url     string
	secret  string
	client  *http.Client
	refresh time.Duration
	wakeGap time.Duration
	timeout time.Duration
	log     *slog.Logger

	cur  atomic.Pointer[Table]
	wake chan struct{}
	down atomic.Bool
}

// NewReservations prepares a cache of the table at
// cfg.FunctionsURL + /boot/reservations; Run fills and refreshes it.
func NewReservations(cfg ReservationsConfig, log *slog.Logger) (*Reservations, error) {
	u := cfg.FunctionsURL
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("reservation table: functions URL %v is not an http(s) URL with a host", u)
	}
	if cfg.Secret == "" {
		return nil, errors.New("reservation table: empty shared secret")
	}
	r := &Reservations{
		url:     strings.TrimSuffix(u.String(), "/") + ReservationsPath,
		secret:  cfg.Secret,
		client:  cfg.Client,
		refresh: cfg.Refresh,
		wakeGap: cfg.WakeGap,
		timeout: cfg.HTTPTimeout,
		log:     log,
		wake:    make(chan struct{}, 1),
	}
	if r.refresh <= 0 {
		r.refresh = DefaultRefresh
	}
	if r.wakeGap <= 0 {
		r.wakeGap = DefaultWakeGap
	}
	if r.timeout <= 0 {
		r.timeout = DefaultHTTPTimeout
	}
	if r.client == nil {
		r.client = &http.Client{}
	}
	return r, nil
}

// Table is the newest table, nil until the first fetch succeeded.
func (r *Reservations) Table() *Table { return r.cur.Load() }

// Wake asks Run for a refresh soon; calls within WakeGap of the last
// fetch are folded into one.
func (r *Reservations) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run fetches the table at once and then every Refresh, or sooner when
// woken, until ctx ends.
func (r *Reservations) Run(ctx context.Context) {
	tick := time.NewTicker(r.refresh)
	defer tick.Stop()
	for {
		last := time.Now()
		r.fetchAndLog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.wake:
			if wait := r.wakeGap - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
	}
}

func (r *Reservations) fetchAndLog(ctx context.Context) {
	changed, bad, err := r.Fetch(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		if !r.down.Swap(true) {
			t := r.Table()
			if t == nil {
				r.log.Warn("reservation table unavailable and none loaded yet; DHCP stays silent until functions answer", "err", err)
			} else {
				r.log.Warn("reservation table unavailable; DHCP answers from the last table", "err", err, "entries", t.Len())
			}
		}
		return
	}
	if r.down.Swap(false) {
		r.log.Info("reservation table reachable again", "entries", r.Table().Len())
	}
	if changed {
		r.log.Info("reservation table loaded", "entries", r.Table().Len())
		if len(bad) > 0 {
			r.log.Warn("reservation table entries skipped", "count", len(bad), "first", bad[0].Error())
		}
	}
}

// Fetch asks functions for the table once, with If-None-Match, and
// installs a changed one. It reports whether the table changed and the
// entries that were skipped.
func (r *Reservations) Fetch(ctx context.Context) (changed bool, skipped []error, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return false, nil, fmt.Errorf("fetch reservation table: %w", err)
	}
	req.Header.Set(HeaderEdgeSecret, r.secret)
	req.Header.Set("Accept", "application/json")
	old := r.Table()
	if old != nil && old.ETag != "" {
		req.Header.Set("If-None-Match", old.ETag)
	}
	res, err := r.client.Do(req)
	if err != nil {
		return false, nil, fmt.Errorf("fetch reservation table: %w", err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotModified && old != nil:
		return false, nil, nil
	case res.StatusCode != http.StatusOK:
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return false, nil, fmt.Errorf("fetch reservation table from %s: functions answered %s", r.url, res.Status)
	}
	t, skipped, err := DecodeTable(res.Body, res.Header.Get("ETag"))
	if err != nil {
		return false, nil, fmt.Errorf("fetch reservation table from %s: %w", r.url, err)
	}
	r.cur.Store(t)
	return true, skipped, nil
}
