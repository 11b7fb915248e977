package ui

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
)

// loginForm shows the login form; next is where to go afterwards.
func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"), "/")
	p := u.frame(w, r, auth.Identity{}, "", "Log in")
	if err := u.render(w, r, http.StatusOK, components.LoginPage(p, components.LoginView{Next: next})); err != nil {
		u.fail(w, r, auth.Identity{}, err)
	}
}

// login checks the password, sets the session cookie and goes on to next.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	// Another site must not log the browser in to an account of its
	// choosing either.
	if !auth.SameOrigin(r) {
		u.fail(w, r, auth.Identity{}, crossOrigin())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, auth.Identity{}, &pageError{status: http.StatusBadRequest, title: "Unreadable form", detail: err.Error()})
		return
	}
	user := strings.TrimSpace(r.PostForm.Get("user"))
	next := localPath(r.PostForm.Get("next"), "/")
	secret, exp, _, err := u.auth.Login(r.Context(), user, r.PostForm.Get("password"), u.auth.ClientHost(r))
	if errors.Is(err, auth.ErrBadLogin) {
		p := u.frame(w, r, auth.Identity{}, "", "Log in")
		v := components.LoginView{User: user, Next: next, Error: err.Error()}
		if err := u.render(w, r, http.StatusUnauthorized, components.LoginPage(p, v)); err != nil {
			u.fail(w, r, auth.Identity{}, err)
		}
		return
	}
	if err != nil {
		u.fail(w, r, auth.Identity{}, err)
		return
	}
	c := u.sessionCookie(r, secret, 0)
	c.Expires = exp
	http.SetCookie(w, c)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and forgets the cookie.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	secret, cookie := auth.Secret(r)
	if secret != "" {
		if cookie && !auth.SameOrigin(r) {
			u.fail(w, r, auth.Identity{}, crossOrigin())
			return
		}
		if err := u.store.DeleteSession(r.Context(), secret); err != nil {
			u.fail(w, r, auth.Identity{}, err)
			return
		}
	}
	http.SetCookie(w, u.sessionCookie(r, "", -1))
	u.redirect(w, r, "/login", "You are logged out.", false)
}

// sessionCookie is the login cookie: never readable by scripts, not sent
// along with other sites' requests, and HTTPS-only when the browser came
// over HTTPS. maxAge -1 deletes it.
func (u *UI) sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: auth.CookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secureRequest(r)}
	if maxAge < 0 {
		c.Expires = time.Unix(0, 0)
	}
	return c
}
