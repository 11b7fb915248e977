// Package ui is the web page function: server-rendered pages for nodes
// (with their boot sessions), the machines waiting to become nodes,
// groups, images (branches, history, diffs), devices, connections and the
// audit stream, served at "/" beside the REST API at /api/v1. Every page
// works with plain links and forms; htmx, when installed, only makes them
// quicker (live filters, bulk actions and form posts without a full
// reload, audit auto-refresh, live boot timelines).
//
// Like every function it holds no state between requests: sessions live in
// the store, one-time messages after a redirect ride in a short-lived
// cookie.
package ui

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"

	"github.com/herd-hpc/herd/frontend"
	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// StaticPrefix is where the stylesheet and scripts are served.
const StaticPrefix = "/static/"

// maxForm caps a form body; the largest is a bulk action naming a few
// thousand nodes.
const maxForm = 1 << 20

// flashCookie carries a one-time message from a POST to the page it
// redirects to.
const flashCookie = "herd_flash"

// UI serves the web pages.
type UI struct {
	store  *store.Store
	images *imgstore.Store // nil when herd runs without an object store
	auth   *auth.Service
	log    *slog.Logger
	static *staticFiles
	mux    *http.ServeMux
	// Routes lists every "METHOD /path" pattern served.
	Routes []string
}

// New builds the web page handler. images may be nil: the image pages
// then say that this herd keeps no images.
func New(st *store.Store, images *imgstore.Store, au *auth.Service, log *slog.Logger) *UI {
	u := &UI{store: st, images: images, auth: au, log: log, mux: http.NewServeMux()}
	u.static = loadStatic(frontend.Static(), log)
	u.routes()
	return u
}

// handler answers one authenticated request; id is who sent it.
type handler func(w http.ResponseWriter, r *http.Request, id auth.Identity) error

func (u *UI) routes() {
	u.mux.Handle("GET "+StaticPrefix, http.StripPrefix(StaticPrefix, u.static))
	u.Routes = append(u.Routes, "GET "+StaticPrefix)
	u.mux.HandleFunc("GET /login", u.loginForm)
	u.mux.HandleFunc("POST /login", u.login)
	u.mux.HandleFunc("POST /logout", u.logout)
	u.Routes = append(u.Routes, "GET /login", "POST /login", "POST /logout")

	u.handle("GET /{$}", u.dashboard)

	u.handle("GET /nodes", u.nodes)
	u.handle("POST /nodes/bulk", u.nodesBulk)
	u.handle("GET /nodes/new", u.newNodeForm)
	u.handle("POST /nodes/new", u.createNode)
	u.handle("GET /nodes/{name}", u.node)
	u.handle("GET /nodes/{name}/edit", u.editNodeForm)
	u.handle("POST /nodes/{name}/edit", u.saveNode)
	u.handle("POST /nodes/{name}/delete", u.deleteNode)
	u.handle("POST /nodes/{name}/power", u.nodePower)
	u.handle("POST /power/bulk", u.powerBulk)
	u.handle("GET /power/jobs", u.powerJobs)
	u.handle("GET /power/jobs/{id}", u.powerJob)

	u.handle("GET /discovered", u.discovered)
	u.handle("POST /discovered/{mac}/assign", u.assignDiscovered)
	u.handle("POST /discovered/{mac}/forget", u.forgetDiscovered)
	// Not under /boot/: that path belongs to the boot function, which
	// answers nodes.
	u.handle("GET /boot-sessions/{id}", u.bootSession)

	u.handle("GET /groups", u.groups)
	u.handle("GET /groups/new", u.newGroupForm)
	u.handle("POST /groups/new", u.createGroup)
	u.handle("GET /groups/{name}/edit", u.editGroupForm)
	u.handle("POST /groups/{name}/edit", u.saveGroup)
	u.handle("POST /groups/{name}/delete", u.deleteGroup)

	// An image name is one path segment however many slashes it has:
	// links escape them (%2F) and PathValue unescapes.
	u.handle("GET /images", u.imagesList)
	u.handle("GET /images/{image}", u.imagePage)
	u.handle("POST /images/{image}/branches", u.createBranch)
	u.handle("POST /images/{image}/live", u.setLive)
	u.handle("POST /images/{image}/rename", u.renameImage)
	u.handle("POST /images/{image}/delete", u.deleteImage)
	u.handle("GET /images/{image}/diff", u.imageDiff)
	u.handle("POST /images/{image}/branches/{branch}/rename", u.renameBranch)
	u.handle("POST /images/{image}/branches/{branch}/delete", u.deleteBranch)
	u.handle("GET /images/{image}/branches/{branch}/history", u.branchHistory)
	u.handle("POST /images/{image}/branches/{branch}/rollback", u.rollback)

	u.handle("GET /devices", u.devices)
	u.handle("GET /devices/new", u.newDeviceForm)
	u.handle("POST /devices/new", u.createDevice)
	u.handle("GET /devices/{name}", u.device)
	u.handle("GET /devices/{name}/edit", u.editDeviceForm)
	u.handle("POST /devices/{name}/edit", u.saveDevice)
	u.handle("POST /devices/{name}/delete", u.deleteDevice)

	u.handle("GET /connections", u.connections)
	u.handle("POST /connections", u.connect)
	u.handle("POST /connections/delete", u.disconnect)

	u.handle("GET /audit", u.audit)

	u.mux.HandleFunc("/", u.withIdentity(func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		return &pageError{status: http.StatusNotFound, title: "No such page",
			detail: fmt.Sprintf("herd has no page at %s.", r.URL.Path)}
	}))
}

// ServeHTTP answers one request.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages load nothing from elsewhere and run no inline script or style,
	// so a strict policy costs nothing and blunts any injection.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// handle registers a page that needs a login. Requests that change
// something (anything but GET and HEAD) need an account that may write and,
// when the login is the browser's cookie, must come from herd's own pages.
func (u *UI) handle(pattern string, h handler) {
	u.Routes = append(u.Routes, pattern)
	method, _, _ := strings.Cut(pattern, " ")
	write := method != http.MethodGet && method != http.MethodHead
	u.mux.HandleFunc(pattern, u.withIdentity(func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		if write {
			if !id.CanWrite() {
				return &pageError{status: http.StatusForbidden, title: "Read-only account",
					detail: fmt.Sprintf("User %s has the %s role and cannot change anything.", id.User.Name, id.User.Role)}
			}
			if id.Cookie && !auth.SameOrigin(r) {
				return crossOrigin()
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				return &pageError{status: http.StatusBadRequest, title: "Unreadable form", detail: err.Error()}
			}
		}
		return h(w, r, id)
	}))
}

// withIdentity authenticates the request, sends strangers to the login
// page, and turns the handler's error into an error page.
func (u *UI) withIdentity(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if secret, _ := auth.Secret(r); secret == "" {
			u.toLogin(w, r, false)
			return
		}
		id, err := u.auth.Authenticate(r)
		if store.IsKind(err, store.KindUnauthorized) {
			u.toLogin(w, r, true)
			return
		}
		if err == nil {
			err = h(w, r, id)
		}
		if err != nil {
			u.fail(w, r, id, err)
		}
	}
}

// toLogin sends a request without a valid session to the login page,
// remembering where it wanted to go.
func (u *UI) toLogin(w http.ResponseWriter, r *http.Request, expired bool) {
	if expired {
		http.SetCookie(w, u.sessionCookie(r, "", -1))
	}
	next := "/"
	if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
		next = r.URL.RequestURI()
	}
	target := "/login"
	if next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	if r.Header.Get("HX-Request") != "" {
		// A fragment request must not swap the login page into a table.
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// pageError is a failure shown as an error page with its own status.
type pageError struct {
	status        int
	title, detail string
}

func (e *pageError) Error() string { return e.title + ": " + e.detail }

func crossOrigin() *pageError {
	return &pageError{status: http.StatusForbidden, title: "Cross-origin request refused",
		detail: "A page from another site tried to use your herd login. Nothing was changed."}
}

// fail shows err as an error page and logs it once.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, id auth.Identity, err error) {
	var (
		pe *pageError
		se *store.Error
		ve *model.ValidationError
	)
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &se) && se.Kind == store.KindNotFound:
		pe = &pageError{status: http.StatusNotFound, title: "Not found", detail: upperFirst(se.Msg) + "."}
	case errors.As(err, &se) && se.Kind == store.KindConflict:
		pe = &pageError{status: http.StatusConflict, title: "Conflict", detail: upperFirst(se.Error())}
	case errors.As(err, &se) && se.Kind == store.KindPrecondition:
		pe = &pageError{status: http.StatusConflict, title: "Changed by someone else", detail: upperFirst(se.Msg)}
	case errors.As(err, &se) && se.Kind == store.KindInvalid, errors.As(err, &ve):
		pe = &pageError{status: http.StatusUnprocessableEntity, title: "Invalid input", detail: upperFirst(err.Error())}
	case errors.Is(err, store.ErrBusy):
		pe = &pageError{status: http.StatusServiceUnavailable, title: "Busy", detail: err.Error()}
	default:
		u.log.Error("page failed", "method", r.Method, "path", r.URL.Path, "user", id.User.Name, "err", err)
		pe = &pageError{status: http.StatusServiceUnavailable, title: "Storage unavailable",
			detail: "herd could not reach its database. Nothing was changed; try again shortly."}
	}
	if pe.status < 500 {
		u.log.Info("page refused", "method", r.Method, "path", r.URL.Path, "user", id.User.Name, "status", pe.status, "reason", pe.detail)
	}
	p := u.frame(w, r, id, "", pe.title)
	if err := u.render(w, r, pe.status, components.ErrorPage(p, components.ErrorView{Status: pe.status, Title: pe.title, Detail: pe.detail})); err != nil {
		u.log.Error("render error page", "path", r.URL.Path, "err", err)
	}
}

// frame builds the frame of a page and takes the flash message, if any.
func (u *UI) frame(w http.ResponseWriter, r *http.Request, id auth.Identity, section, title string) components.Page {
	p := components.Page{Title: title, Section: section, User: id.User.Name, ReadOnly: id.User.Name != "" && !id.CanWrite(),
		Assets: u.static.assets()}
	if id.User.Name != "" && section != "discovered" { // that page counts them itself
		p.Unassigned = u.unassignedCount(r)
	}
	if c, err := r.Cookie(flashCookie); err == nil {
		kind, msg, _ := strings.Cut(c.Value, ":")
		if m, err := url.QueryUnescape(msg); err == nil {
			p.Flash = components.Flash{Error: kind == "err", Msg: m}
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return p
}

// render writes a whole component, or an error page if it fails half-way.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		return fmt.Errorf("render page: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "HX-Request, HX-Target")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// redirect ends a successful POST: 303 to the page to show next, with a
// one-time message (Post/Redirect/Get).
func (u *UI) redirect(w http.ResponseWriter, r *http.Request, to string, msg string, isErr bool) {
	if msg != "" {
		kind := "ok"
		if isErr {
			kind = "err"
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: kind + ":" + url.QueryEscape(msg), Path: "/", MaxAge: 60,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secureRequest(r)})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fragment reports whether htmx asked for the element with this id alone.
func fragment(r *http.Request, id string) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Target") == id
}

// secureRequest reports whether the browser reached herd over HTTPS,
// directly or through the edge.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// localPath accepts a redirect target only if it stays on this site.
func localPath(s, fallback string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(s, "\r\n") {
		return fallback
	}
	return s
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// NewHandler is New as a plain http.Handler, the shape server.Open takes.
func NewHandler(st *store.Store, images *imgstore.Store, au *auth.Service, log *slog.Logger) http.Handler {
	return New(st, images, au, log)
}
