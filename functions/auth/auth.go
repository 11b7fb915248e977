// Package auth decides who a request comes from: login sessions (web page
// cookie or CLI bearer), API tokens for scripts, and the edge's trusted
// headers describing the client. Passwords are hashed with argon2id.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// CookieName is the web login session cookie.
const CookieName = "herd_session"

// Header names the edge sets; functions trust them only with the secret.
const (
	HeaderEdgeSecret = "X-Herd-Edge-Secret"
	HeaderClientAddr = "X-Herd-Client-Addr"
	HeaderClientMAC  = "X-Herd-Client-MAC"
	// HeaderNodeCert is "verified" when the client showed the edge a
	// certificate of the cluster CA (a node's bootenv).
	HeaderNodeCert = "X-Herd-Node-Cert"
)

// argon2id parameters: OWASP's 2023 recommendation (19 MiB, 2 passes, 1
// lane) keeps a login near 30 ms on a small appliance while making offline
// guessing expensive.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an encoded argon2id hash of pw with a random salt.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("password is too short: use at least 8 characters")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches an encoded argon2id hash.
func VerifyPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 16 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// NewSecret returns a random secret with a readable prefix.
func NewSecret(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a short random identifier of hex digits: safe as a
// command-line argument (it never starts with '-') and inside secrets
// whose parts are separated by '_'.
func NewID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Identity is the authenticated user behind a request.
type Identity struct {
	User model.User
	Host string // client address as the edge saw it
	// Cookie is true when the request authenticated with the web cookie;
	// such requests must pass the same-origin check to change anything.
	Cookie bool
}

// Actor is the identity as the store records it in audit events.
func (id Identity) Actor() store.Actor {
	return store.Actor{User: id.User.Name, UID: id.User.UID, Host: id.Host}
}

// CanWrite reports whether the identity may change things.
func (id Identity) CanWrite() bool { return id.User.Role == model.RoleAdmin }

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity set by Service.Authenticate.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Service logs users in and out and authenticates requests.
type Service struct {
	Store      *store.Store
	SessionTTL time.Duration
	// EdgeSecret, when set, is what the edge sends in HeaderEdgeSecret;
	// X-Herd-Client-* headers are believed only with it.
	EdgeSecret string
	Log        *slog.Logger
}

// ClientHost is the client's address: the edge's word for it when the edge
// proved itself, else the peer address.
func (s *Service) ClientHost(r *http.Request) string {
	if s.FromEdge(r) {
		if a := r.Header.Get(HeaderClientAddr); a != "" {
			return a
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// FromEdge reports whether r carries the edge's shared secret.
func (s *Service) FromEdge(r *http.Request) bool {
	got := r.Header.Get(HeaderEdgeSecret)
	return s.EdgeSecret != "" && got != "" && hmac.Equal([]byte(got), []byte(s.EdgeSecret))
}

// ErrNoCredentials is returned for a request that carries neither a
// session nor an API token.
var ErrNoCredentials = errors.New("log in first: no session or API token was sent")

// ErrBadLogin is returned for an unknown user or a wrong password alike, so
// the answer does not reveal which accounts exist.
var ErrBadLogin = errors.New("wrong user name or password")

// Login checks a password and opens a session. It returns the session
// secret, to be sent back as a cookie or bearer token.
func (s *Service) Login(ctx context.Context, user, password, host string) (string, time.Time, model.User, error) {
	u, hash, err := s.Store.UserHash(ctx, user)
	if store.IsKind(err, store.KindNotFound) {
		// Spend the same time as a real check so timing does not tell.
		VerifyPassword("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", password)
		s.Log.Info("login refused", "user", user, "host", host, "reason", "unknown user")
		return "", time.Time{}, u, ErrBadLogin
	}
	if err != nil {
		return "", time.Time{}, u, err
	}
	if !VerifyPassword(hash, password) {
		s.Log.Info("login refused", "user", user, "host", host, "reason", "wrong password")
		return "", time.Time{}, u, ErrBadLogin
	}
	secret := NewSecret("hs_")
	exp, err := s.Store.CreateSession(ctx, u.Name, secret, s.SessionTTL)
	if err != nil {
		return "", time.Time{}, u, err
	}
	_ = s.Store.Record(ctx, store.Actor{User: u.Name, UID: u.UID, Host: host},
		model.AuditEvent{Kind: "session", Method: "login", Refs: []string{"user/" + u.Name}, Msg: u.Name + " logged in"})
	return secret, exp, u, nil
}

// Secret returns the session or token secret a request carries: a bearer
// token first, then the web cookie.
func Secret(r *http.Request) (secret string, cookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if v, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(v), false
		}
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value, true
	}
	return "", false
}

// Authenticate resolves the request's credentials to an identity.
func (s *Service) Authenticate(r *http.Request) (Identity, error) {
	secret, cookie := Secret(r)
	if secret == "" {
		return Identity{}, ErrNoCredentials
	}
	u, err := s.Store.Authenticate(r.Context(), secret)
	if err != nil {
		return Identity{}, err
	}
	return Identity{User: u, Host: s.ClientHost(r), Cookie: cookie}, nil
}

// SameOrigin reports whether a cookie-authenticated request that changes
// something came from herd's own pages (CSRF defence alongside SameSite).
func SameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser cross-site form: browsers send Origin on POST
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	o := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://")
	return o == host
}

// EnsureFirstAdmin creates the user "admin" with a random password when no
// account exists yet. created is false when accounts already exist.
func (s *Service) EnsureFirstAdmin(ctx context.Context, host string) (user, password string, created bool, err error) {
	n, err := s.Store.UserCount(ctx)
	if err != nil || n > 0 {
		return "", "", false, err
	}
	password = NewSecret("")[:20]
	hash, err := HashPassword(password)
	if err != nil {
		return "", "", false, err
	}
	_, err = s.Store.CreateUser(ctx, store.Actor{User: "herd", Host: host}, "admin", model.RoleAdmin, hash)
	if store.IsKind(err, store.KindConflict) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	return "admin", password, true, nil
}
