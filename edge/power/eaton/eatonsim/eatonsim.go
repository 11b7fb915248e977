// Package eatonsim is a test card server for Eaton's Rack PDU G4 REST API
// (/rest/mbdetnrs/2.0), the calls herd's eaton driver makes: token login
// with the password grant, one session per account (a second login while
// the account's session lives is refused), tokens that expire, outlet
// status and the switchOn / switchOff actions, logout. It serves HTTPS
// with its own self-signed certificate, as the card does.
package eatonsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/simcert"
)

// API is the REST API's root path.
const API = "/rest/mbdetnrs/2.0"

// Options describe the card.
type Options struct {
	// Outlets is how many outlets the PDU has (default 8), numbered from 1.
	Outlets int
	// Username and Password are the card's one account (default
	// herd / herd-secret).
	Username string
	Password string
	// TokenTTL is how long a token lives (default 15 minutes); its session
	// ends with it.
	TokenTTL time.Duration
	// On starts every outlet switched on.
	On bool
}

// Card is a running simulated card.
type Card struct {
	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	on       map[int]bool
	sessions map[string]*session // by token
	nextID   int
	logins   int
	refused  int
	logouts  int
	actions  []string
}

type session struct {
	id      string
	user    string
	expires time.Time
	// foreign sessions belong to someone else (the web interface): no
	// client here has their token.
	foreign bool
}

// Start starts a card, closed when the test ends.
func Start(t testing.TB, opts Options) *Card {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("start Eaton card simulator: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts a card outside a test; Close stops it.
func New(opts Options) (*Card, error) {
	if opts.Outlets <= 0 {
		opts.Outlets = 8
	}
	if opts.Username == "" {
		opts.Username = "herd"
	}
	if opts.Password == "" {
		opts.Password = "herd-secret"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 15 * time.Minute
	}
	cert, err := simcert.SelfSigned("ePDU G4")
	if err != nil {
		return nil, err
	}
	c := &Card{opts: opts, on: map[int]bool{}, sessions: map[string]*session{}}
	for n := 1; n <= opts.Outlets; n++ {
		c.on[n] = opts.On
	}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		// What BMCs and PDU cards offer; Go's default post-quantum key
		// exchange would make each simulated handshake cost several times
		// what a real one costs the edge.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	c.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	c.srv.StartTLS()
	return c, nil
}

// Close stops the card.
func (c *Card) Close() { c.srv.Close() }

// Address is the card's host:port.
func (c *Card) Address() string { return strings.TrimPrefix(c.srv.URL, "https://") }

// Fingerprint is the SHA-256 of the card's certificate, "sha256:<hex>".
func (c *Card) Fingerprint() string {
	sum := sha256.Sum256(c.srv.Certificate().Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// On reports whether outlet n is switched on.
func (c *Card) On(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on[n]
}

// SetOn switches outlet n behind the driver's back.
func (c *Card) SetOn(n int, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on[n] = on
}

// Actions lists the switch actions done, oldest first, as "3/switchOff".
func (c *Card) Actions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.actions...)
}

// Logins is how many logins the card granted; Refused how many it refused
// for a concurrent session; Logouts how many sessions were logged out.
func (c *Card) Logins() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.logins }
func (c *Card) Refused() int { c.mu.Lock(); defer c.mu.Unlock(); return c.refused }
func (c *Card) Logouts() int { c.mu.Lock(); defer c.mu.Unlock(); return c.logouts }

// Sessions is how many sessions are open.
func (c *Card) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(time.Now())
	return len(c.sessions)
}

// ExpireTokens ends every session now, as their lifetime running out does.
func (c *Card) ExpireTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(time.Now().Add(c.opts.TokenTTL + time.Hour))
}

// HoldSession opens a session for the account that no client here holds,
// as someone logged in to the web interface with it does.
func (c *Card) HoldSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	c.sessions["foreign-"+strconv.Itoa(c.nextID)] = &session{id: strconv.Itoa(c.nextID), user: c.opts.Username, expires: time.Now().Add(c.opts.TokenTTL), foreign: true}
}

// ReleaseSession ends the sessions HoldSession opened.
func (c *Card) ReleaseSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for token, s := range c.sessions {
		if s.foreign {
			delete(c.sessions, token)
		}
	}
}

func (c *Card) expire(now time.Time) {
	for token, s := range c.sessions {
		if !now.Before(s.expires) {
			delete(c.sessions, token)
		}
	}
}

func (c *Card) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(time.Now())
	w.Header().Set("Content-Type", "application/json")

	path, ok := strings.CutPrefix(r.URL.Path, API)
	if !ok {
		answer(w, http.StatusNotFound, map[string]any{"code": "NotFound"})
		return
	}
	if strings.TrimSuffix(path, "/") == "/oauth2/token" && r.Method == http.MethodPost {
		c.login(w, r)
		return
	}

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s := c.sessions[token]
	if !ok || s == nil || s.foreign {
		answer(w, http.StatusUnauthorized, map[string]any{"code": "InvalidToken", "description": "The access token is invalid or expired."})
		return
	}

	const outlets = "/powerDistributions/1/outlets"
	switch {
	case r.Method == http.MethodDelete && path == "/sessionService/sessions/"+s.id:
		delete(c.sessions, token)
		c.logouts++
		answer(w, http.StatusOK, map[string]any{})
	case r.Method == http.MethodGet && path == outlets:
		members := []any{}
		for n := 1; n <= c.opts.Outlets; n++ {
			members = append(members, map[string]any{"@id": API + outlets + "/" + strconv.Itoa(n)})
		}
		answer(w, http.StatusOK, map[string]any{"@id": API + outlets, "members@count": len(members), "members": members})
	case strings.HasPrefix(path, outlets+"/"):
		rest := strings.TrimPrefix(path, outlets+"/")
		id, action, _ := strings.Cut(rest, "/")
		n, err := strconv.Atoi(id)
		if _, known := c.on[n]; err != nil || !known {
			answer(w, http.StatusNotFound, map[string]any{"code": "NotFound", "description": "No outlet " + id + "."})
			return
		}
		switch {
		case r.Method == http.MethodGet && action == "":
			answer(w, http.StatusOK, map[string]any{
				"@id":            API + outlets + "/" + id,
				"id":             id,
				"identification": map[string]any{"physicalName": "Outlet " + id, "friendlyName": "Outlet " + id},
				"status":         map[string]any{"operating": "in service", "health": "ok", "switchedOn": c.on[n], "delayBeforeSwitchOn": -1, "delayBeforeSwitchOff": -1},
				"specifications": map[string]any{"switchable": true},
			})
		case r.Method == http.MethodPost && (action == "actions/switchOn" || action == "actions/switchOff"):
			c.on[n] = action == "actions/switchOn"
			c.actions = append(c.actions, id+"/"+strings.TrimPrefix(action, "actions/"))
			answer(w, http.StatusOK, map[string]any{})
		default:
			answer(w, http.StatusNotFound, map[string]any{"code": "NotFound"})
		}
	default:
		answer(w, http.StatusNotFound, map[string]any{"code": "NotFound"})
	}
}

func (c *Card) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType string `json:"grant_type"`
		Username  string `json:"username"`
		Password  string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.GrantType != "password" {
		answer(w, http.StatusBadRequest, map[string]any{"code": "InvalidRequest", "description": "grant_type password with username and password expected."})
		return
	}
	if req.Username != c.opts.Username || req.Password != c.opts.Password {
		answer(w, http.StatusUnauthorized, map[string]any{"code": "InvalidCredential", "description": "Invalid username or password."})
		return
	}
	for _, s := range c.sessions {
		if s.user == req.Username {
			c.refused++
			answer(w, http.StatusForbidden, map[string]any{"code": "ConcurrentSession", "description": "A session is already open for this account."})
			return
		}
	}
	c.nextID++
	c.logins++
	id := strconv.Itoa(c.nextID)
	token := randomToken()
	c.sessions[token] = &session{id: id, user: req.Username, expires: time.Now().Add(c.opts.TokenTTL)}
	answer(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(c.opts.TokenTTL.Seconds()),
		"session":      strings.TrimPrefix(API, "/rest") + "/sessionService/sessions/" + id,
	})
}

func answer(w http.ResponseWriter, status int, body any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
