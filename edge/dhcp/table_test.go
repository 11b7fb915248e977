package dhcp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
)

func TestDecodeTable(t *testing.T) {
	body := `{"reservations":[
		{"mac":"52:54:00:12:34:56","node":"node001","address":"10.0.0.5/16"},
		{"mac":"52-54-00-00-00-02","node":"node002","address":""},
		{"mac":"52:54:00:00:00:03","node":"node003","address":"10.0.0.6"},
		{"mac":"not-a-mac","node":"bad1","address":"10.0.0.7/16"},
		{"mac":"52:54:00:00:00:05","node":"bad2","address":"10.0.0.300/16"},
		{"mac":"52:54:00:00:00:06","node":"bad3","address":"fe80::1/64"},
		{"mac":"52:54:00:12:34:56","node":"dupmac","address":"10.0.0.8/16"},
		{"mac":"52:54:00:00:00:09","node":"dupaddr","address":"10.0.0.5/24"}
	]}`
	tbl, skipped, err := DecodeTable(strings.NewReader(body), `"v1"`)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Len() != 3 || tbl.ETag != `"v1"` {
		t.Fatalf("len %d etag %q", tbl.Len(), tbl.ETag)
	}
	r, ok := tbl.Lookup(mac(t, macNode1))
	if !ok || r.Node != "node001" || r.Addr != ip("10.0.0.5") || r.Bits != 16 {
		t.Errorf("node001 = %+v %v", r, ok)
	}
	if r, ok := tbl.Lookup(mac(t, macNode2)); !ok || r.Addr.IsValid() {
		t.Errorf("node002 = %+v %v (dashes should parse; no address)", r, ok)
	}
	if r, _ := tbl.Lookup(mac(t, "52:54:00:00:00:03")); r.Addr != ip("10.0.0.6") || r.Bits != 0 {
		t.Errorf("bare address = %+v", r)
	}
	if m, ok := tbl.MACAt(ip("10.0.0.5")); !ok || m != mac(t, macNode1) || !tbl.Reserved(ip("10.0.0.6")) || tbl.Reserved(ip("10.0.0.8")) {
		t.Error("address index wrong")
	}
	var all strings.Builder
	for _, e := range skipped {
		fmt.Fprintln(&all, e)
	}
	for _, want := range []string{"bad1", "10.0.0.300", "fe80::1", "dupmac", "dupaddr"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("skipped entries do not mention %q:\n%s", want, all.String())
		}
	}

	for _, bad := range []string{`[]`, `{"reservations":`, `{}`, `{"reservations":[{"mac":1}]}`} {
		if _, _, err := DecodeTable(strings.NewReader(bad), ""); err == nil {
			t.Errorf("DecodeTable(%s) accepted", bad)
		}
	}
}

func TestHostname(t *testing.T) {
	for in, want := range map[string]string{
		"node001": "node001", "rack1.n-2_a": "rack1.n-2_a", "": "", "-x": "", "a b": "",
		strings.Repeat("n", 64): "", "nœud": "",
	} {
		if got := hostname(in); got != want {
			t.Errorf("hostname(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeFunctions is functions/boot's reservation endpoint as the edge
// expects it: the table as JSON with an ETag, 304 on a matching
// If-None-Match, 401 without the secret.
type fakeFunctions struct {
	mu       sync.Mutex
	body     string
	etag     string
	down     bool
	requests atomic.Int64
	notMod   atomic.Int64
	srv      *httptest.Server
}

const fakeSecret = "edge-secret"

func newFakeFunctions(t testing.TB, reservations ...string) *fakeFunctions {
	f := &fakeFunctions{}
	f.set(reservations...)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		f.mu.Lock()
		body, etag, down := f.body, f.etag, f.down
		f.mu.Unlock()
		switch {
		case down:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case r.URL.Path != "/fn"+ReservationsPath || r.Method != http.MethodGet:
			http.NotFound(w, r)
		case r.Header.Get(HeaderEdgeSecret) != fakeSecret:
			http.Error(w, "no secret", http.StatusUnauthorized)
		case r.Header.Get("If-None-Match") == etag:
			f.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("ETag", etag)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// set replaces the table; each entry is "mac node address".
func (f *fakeFunctions) set(reservations ...string) {
	var items []string
	for _, r := range reservations {
		p := strings.SplitN(r, " ", 3)
		for len(p) < 3 {
			p = append(p, "")
		}
		items = append(items, fmt.Sprintf(`{"mac":%q,"node":%q,"address":%q}`, p[0], p[1], p[2]))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body = `{"reservations":[` + strings.Join(items, ",") + `]}`
	f.etag = fmt.Sprintf(`"%x"`, len(f.body)*31+len(items))
}

func (f *fakeFunctions) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeFunctions) url(t testing.TB) *url.URL {
	u, err := url.Parse(f.srv.URL + "/fn")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestReservationsFetch(t *testing.T) {
	f := newFakeFunctions(t, macNode1+" node001 10.0.0.5/16")
	logs := &syncBuffer{}
	r, err := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: fakeSecret}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r.Table() != nil {
		t.Fatal("table before any fetch")
	}
	if changed, _, err := r.Fetch(ctx); err != nil || !changed || r.Table().Len() != 1 {
		t.Fatalf("first fetch: changed %v err %v", changed, err)
	}
	first := r.Table()
	if changed, _, err := r.Fetch(ctx); err != nil || changed || r.Table() != first || f.notMod.Load() != 1 {
		t.Fatalf("second fetch: changed %v err %v, 304s %d", changed, err, f.notMod.Load())
	}
	f.set(macNode1+" node001 10.0.0.5/16", macNode2+" node002")
	if changed, _, err := r.Fetch(ctx); err != nil || !changed || r.Table().Len() != 2 {
		t.Fatalf("after change: changed %v err %v", changed, err)
	}
	f.setDown(true)
	if _, _, err := r.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("fetch while down = %v", err)
	}
	if r.Table().Len() != 2 {
		t.Error("an outage dropped the table")
	}

	bad, _ := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: "wrong"}, slog.New(slog.DiscardHandler))
	f.setDown(false)
	if _, _, err := bad.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("fetch with a wrong secret = %v", err)
	}

	if _, err := NewReservations(ReservationsConfig{FunctionsURL: &url.URL{Scheme: "ftp", Host: "x"}, Secret: "s"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, err := NewReservations(ReservationsConfig{FunctionsURL: f.url(t)}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("empty secret accepted")
	}
}

// TestReservationsRun: the background loop refreshes on its period, wakes
// early on demand at most once per gap, logs an outage once and its end
// once.
func TestReservationsRun(t *testing.T) {
	f := newFakeFunctions(t, macNode1+" node001 10.0.0.5/16")
	logs := &syncBuffer{}
	r, err := NewReservations(ReservationsConfig{FunctionsURL: f.url(t), Secret: fakeSecret,
		Refresh: time.Hour, WakeGap: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "first table", func() bool { return r.Table() != nil })

	// A storm of wakes within one gap makes one more request, not many.
	before := f.requests.Load()
	f.set(macNode1+" node001 10.0.0.5/16", macNode2+" node002")
	for i := 0; i < 50; i++ {
		r.Wake()
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "woken refresh", func() bool { return r.Table().Len() == 2 })
	time.Sleep(300 * time.Millisecond)
	if n := f.requests.Load() - before; n < 1 || n > 3 {
		t.Errorf("50 wakes in 50 ms made %d requests, want 1 to 3", n)
	}

	f.setDown(true)
	for i := 0; i < 3; i++ {
		r.Wake()
		time.Sleep(250 * time.Millisecond)
	}
	f.setDown(false)
	r.Wake()
	waitFor(t, "recovery logged", func() bool { return strings.Contains(logs.String(), "reachable again") })
	if n := strings.Count(logs.String(), "reservation table unavailable"); n != 1 {
		t.Errorf("outage logged %d times:\n%s", n, logs)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer collects log lines from concurrent goroutines.
type syncBuffer = testenv.Logs
