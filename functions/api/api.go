// Package api is the REST function: /api/v1 for nodes, groups, devices,
// connections, audit, users and tokens. It is an http.Handler holding no
// state between requests; the store holds everything.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/auth"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// Prefix is where the API lives.
const Prefix = "/api/v1"

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document describing this API.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// maxBody caps request bodies; inventory objects are small.
const maxBody = 1 << 20

// API serves /api/v1.
type API struct {
	store *store.Store
	auth  *auth.Service
	log   *slog.Logger
	mux   *http.ServeMux
	// Objects, when set, is checked by /health beside Redis.
	Objects interface{ Ping(context.Context) error }
	// Images, when set, serves /images, /blobs and /manifests.
	Images *imgstore.Store
	// Routes lists every "METHOD /path" pattern served, for the OpenAPI test.
	Routes []string
}

// New builds the API handler.
func New(st *store.Store, au *auth.Service, log *slog.Logger) *API {
	a := &API{store: st, auth: au, log: log, mux: http.NewServeMux()}
	a.routes()
	return a
}

// handle registers an authenticated route. write routes need an admin.
func (a *API) handle(pattern string, h func(w http.ResponseWriter, r *http.Request, id auth.Identity) error) {
	method, _, _ := strings.Cut(pattern, " ")
	write := method != http.MethodGet && method != http.MethodHead
	a.Routes = append(a.Routes, pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		id, err := a.auth.Authenticate(r)
		if err != nil {
			if !store.IsKind(err, store.KindUnauthorized) && !errors.Is(err, auth.ErrNoCredentials) {
				a.fail(w, r, err)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="herd"`)
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "Not logged in", err.Error()))
			return
		}
		if write && !id.CanWrite() {
			problem.Write(w, r, problem.New(http.StatusForbidden, "forbidden", "Read-only account",
				fmt.Sprintf("user %s has the %s role and cannot change anything", id.User.Name, id.User.Role)))
			return
		}
		if write && id.Cookie && !auth.SameOrigin(r) {
			problem.Write(w, r, problem.New(http.StatusForbidden, "cross-origin", "Cross-origin request refused",
				"a request from another site tried to use your herd login"))
			return
		}
		if err := h(w, r, id); err != nil {
			a.fail(w, r, err)
		}
	})
}

func (a *API) routes() {
	a.handle("GET "+Prefix+"/openapi.json", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(openAPI)
		return err
	})
	a.mux.HandleFunc("POST "+Prefix+"/login", a.login)
	a.Routes = append(a.Routes, "POST "+Prefix+"/login")
	a.handle("POST "+Prefix+"/logout", a.logout)
	a.handle("GET "+Prefix+"/whoami", a.whoami)
	a.handle("GET "+Prefix+"/health", a.health)

	nodes(a)
	groups(a)
	devices(a)
	connections(a)
	a.handle("GET "+Prefix+"/audit", a.audit)
	a.handle("GET "+Prefix+"/audit/follow", a.auditFollow)
	accounts(a)
	bootRoutes(a)
	imageRoutes(a)
	bootenvRoutes(a)
	powerRoutes(a)
	provisionRoutes(a)

	a.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "No such endpoint",
			fmt.Sprintf("%s %s is not part of the API; see %s/openapi.json", r.Method, r.URL.Path, Prefix)))
	})
}

// ServeHTTP answers one request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, r)
}

// fail turns an error into a problem answer and logs it once.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	if p.Status >= 500 {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", p.Status, "reason", p.Detail)
	}
	problem.Write(w, r, p)
}

func toProblem(err error) *problem.Problem {
	if p := store.ProblemOf(err); p != nil {
		return p
	}
	return problem.New(http.StatusServiceUnavailable, "unavailable", "Storage unavailable",
		"the request could not be completed and changed nothing; retry shortly")
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors naming what was wrong.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", "the body holds more than one JSON value")
	}
	return nil
}

func badJSON(err error) *problem.Problem {
	var (
		te *json.UnmarshalTypeError
		se *json.SyntaxError
		me *http.MaxBytesError
	)
	detail := err.Error()
	var fields []model.FieldProblem
	switch {
	case errors.As(err, &te):
		detail = fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type, te.Value)
		fields = []model.FieldProblem{{Field: te.Field, Message: detail}}
	case errors.As(err, &se):
		detail = fmt.Sprintf("syntax error at byte %d: %v", se.Offset, err)
	case errors.As(err, &me):
		detail = fmt.Sprintf("the body is larger than %d bytes", me.Limit)
	case errors.Is(err, io.EOF):
		detail = "the body is empty; send a JSON object"
	case strings.HasPrefix(detail, "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(detail, "json: unknown field "), `"`)
		detail = fmt.Sprintf("unknown field %q", f)
		fields = []model.FieldProblem{{Field: f, Message: "is not a field of this object"}}
	default:
		// Errors from our own UnmarshalJSON methods (such as MAC) say what
		// was wrong already.
		detail = strings.TrimPrefix(detail, "json: ")
	}
	p := problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", detail)
	p.Errors = fields
	return p
}

// reply writes v as JSON with status.
func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// etag is the entity tag of a stored revision.
func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// ifMatch reads the If-Match precondition: 0 means none (or "*").
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	rev, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || rev <= 0 {
		return 0, problem.New(http.StatusBadRequest, "bad-precondition", "Bad If-Match",
			fmt.Sprintf("If-Match %q is not an ETag this API sent", h))
	}
	return rev, nil
}

// listOptions reads limit and cursor.
func listOptions(r *http.Request) (store.ListOptions, error) {
	q := r.URL.Query()
	opts := store.ListOptions{Cursor: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return opts, problem.New(http.StatusBadRequest, "bad-query", "Bad query", "limit must be a number from 1 to 1000")
		}
		opts.Limit = n
	}
	return opts, nil
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req model.LoginRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	secret, exp, u, err := a.auth.Login(r.Context(), req.User, req.Password, a.auth.ClientHost(r))
	if errors.Is(err, auth.ErrBadLogin) {
		problem.Write(w, r, problem.New(http.StatusUnauthorized, "bad-login", "Login failed", err.Error()))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	_ = reply(w, http.StatusOK, model.LoginReply{Token: secret, Expires: exp, User: u})
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	secret, _ := auth.Secret(r)
	if strings.HasPrefix(secret, "hs_") {
		if err := a.auth.Store.DeleteSession(r.Context(), secret); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	return reply(w, http.StatusOK, id.User)
}

func (a *API) health(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	if err := a.store.Ping(r.Context()); err != nil {
		return err
	}
	if a.Objects != nil {
		if err := a.Objects.Ping(r.Context()); err != nil {
			return problem.New(http.StatusServiceUnavailable, "unavailable", "Object store unavailable", err.Error())
		}
	}
	return reply(w, http.StatusOK, map[string]string{"status": "ok"})
}
