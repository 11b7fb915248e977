package ui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/functions/ui"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// env is the UI served over loopback HTTP against real Redis, with a key
// prefix of its own, and real MinIO, with a bucket of its own.
type env struct {
	t      *testing.T
	st     *store.Store
	images *imgstore.Store
	srv    *httptest.Server
}

// system is the actor tests use to set things up behind the UI's back.
func system() store.Actor { return store.Actor{User: "test", UID: 1, Host: "127.0.0.1"} }

func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.Open(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	au := &auth.Service{Store: st, SessionTTL: time.Hour, Log: log}
	mux := http.NewServeMux()
	rdb, prefix := st.Redis()
	images := imgstore.New(testenv.Objects(t), rdb, prefix)
	mux.Handle("/", ui.New(st, images, au, log))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, images: images, srv: srv}
}

// user creates an account and returns its password.
func (e *env) user(name string, role model.Role) string {
	e.t.Helper()
	pw := "password-of-" + name
	hash, err := auth.HashPassword(pw)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateUser(context.Background(), system(), name, role, hash); err != nil {
		e.t.Fatal(err)
	}
	return pw
}

// client is a browser stand-in: it keeps cookies and does not follow
// redirects, so tests see each 303.
func (e *env) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login logs a new client in as a new user of the given role.
func (e *env) login(name string, role model.Role) *http.Client {
	e.t.Helper()
	pw := e.user(name, role)
	c := e.client()
	res := e.post(c, "/login", url.Values{"user": {name}, "password": {pw}})
	if res.status != http.StatusSeeOther {
		e.t.Fatalf("login as %s: status %d, want 303\n%s", name, res.status, res.body)
	}
	return c
}

// answer is a response with its body read.
type answer struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(c *http.Client, req *http.Request) answer {
	e.t.Helper()
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) get(c *http.Client, path string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(c, req)
}

// post submits a form; extra headers are name, value pairs.
func (e *env) post(c *http.Client, path string, form url.Values, headers ...string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(c, req)
}

// nodeForm is a filled-in "Add node" form.
func nodeForm(name, mac string) url.Values {
	return url.Values{
		"name":                  {name},
		"group":                 {""},
		"interfaces[0].name":    {"eth0"},
		"interfaces[0].mac":     {mac},
		"interfaces[0].address": {"10.1.0.11/16"},
		"boot":                  {"0"},
		"interfaces[1].name":    {""},
		"interfaces[1].mac":     {""},
		"interfaces[1].address": {""},
		"bmc.address":           {"10.2.0.11"},
		"bmc.username":          {"ADMIN"},
		"bmc.credential_ref":    {"bmc-default"},
		"power_supplies":        {"psu1, psu2"},
		"tags":                  {"rack12 ib"},
		"image":                 {""},
		"branch":                {""},
		"disk_layout":           {""},
		"stateless":             {""},
		"power_method":          {"ipmi"},
	}
}

func wantContains(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}
