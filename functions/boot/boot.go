// Package boot is the boot function: everything a node asks for while it
// network-boots, under /boot/.
//
//   - GET /boot/ipxe: the iPXE script. Without a MAC it asks iPXE to come
//     back with what it knows about the machine; a known MAC gets a boot
//     session and the script that loads its kernel and initrds; an unknown
//     one becomes a discovery entry and is told to ask again in 30 s.
//   - GET /boot/artifacts/{key...}: the kernel and initrds, streamed from
//     the object store with Range support, for the session's boot token.
//   - POST /boot/sessions/{id}/events, GET /boot/sessions/{id}: bootenv
//     reports its steps and reads its timeline with the boot token.
//   - GET /boot/reservations: the MAC table the edge's DHCP answers from,
//     for the edge alone.
//
// Answers meant for iPXE are iPXE scripts, also when something is wrong:
// iPXE runs only a 2xx body, so to put a message on the node's console a
// bad request from iPXE (User-Agent iPXE/…) is answered 200 with a script
// that prints the problem, waits and starts over. Any other client gets
// the same text with status 400. When herd itself fails (Redis or the
// object store down) the answer is 503: iPXE then gives up and the
// firmware moves to its next boot device, the on-disk fallback bootloader.
package boot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// Prefix is where the boot function lives.
const Prefix = "/boot/"

// HeaderVendorClass carries the DHCP vendor class (option 60) the edge saw
// from the client; like the other X-Herd-Client-* headers it is believed
// only with the edge secret.
const HeaderVendorClass = "X-Herd-Client-Vendor-Class"

// Config tunes the boot function. Zero fields take the defaults.
type Config struct {
	// ServerURL is how nodes reach herd (the edge), e.g.
	// https://10.0.0.1:8443; empty means the URL the request came to, as
	// the edge reports it in X-Forwarded-Host and X-Forwarded-Proto.
	ServerURL string
	// SessionTTL is how long a boot session and its timeline are kept
	// (24h).
	SessionTTL time.Duration
	// TokenTTL is how long a boot token stays valid after its last use
	// (30m).
	TokenTTL time.Duration
	// DiscoveryCap caps the discovery list (store.DefaultDiscoveryCap).
	DiscoveryCap int
	// RequireNodeCert refuses bootenv's requests (plan, image, console,
	// events) that did not reach the edge over TLS with the cluster
	// client certificate; the boot token is needed either way.
	RequireNodeCert bool
	// UnknownRetry is how long an unassigned machine waits before asking
	// again (30s); WaitRetry the same for a node whose image is not ready
	// (60s).
	UnknownRetry, WaitRetry time.Duration
	// BlobCacheBytes bounds the in-memory cache of small image blobs
	// (each at most 1 MiB) that nodes fetch (256 MiB); negative turns it
	// off.
	BlobCacheBytes int64
}

func (c Config) withDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 24 * time.Hour
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 30 * time.Minute
	}
	if c.DiscoveryCap <= 0 {
		c.DiscoveryCap = store.DefaultDiscoveryCap
	}
	if c.UnknownRetry <= 0 {
		c.UnknownRetry = 30 * time.Second
	}
	if c.WaitRetry <= 0 {
		c.WaitRetry = 60 * time.Second
	}
	if c.BlobCacheBytes == 0 {
		c.BlobCacheBytes = defaultBlobCacheBytes
	}
	c.ServerURL = strings.TrimRight(c.ServerURL, "/")
	return c
}

// Handler serves /boot/. It holds no state between requests but a cache
// of immutable image blobs, which no other replica needs to agree with.
type Handler struct {
	store *store.Store
	auth  *auth.Service
	art   Artifacts
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	blobs *blobCache
}

// New builds the boot function.
func New(st *store.Store, au *auth.Service, art Artifacts, cfg Config, log *slog.Logger) *Handler {
	h := &Handler{store: st, auth: au, art: art, cfg: cfg.withDefaults(), log: log, mux: http.NewServeMux()}
	h.blobs = newBlobCache(h.cfg.BlobCacheBytes)
	h.mux.HandleFunc("GET /boot/ipxe", h.ipxe)
	h.mux.HandleFunc("GET /boot/reservations", h.reservations)
	h.mux.HandleFunc("GET /boot/artifacts/{key...}", h.artifact)
	h.mux.HandleFunc("POST /boot/sessions/{id}/events", h.nodeOnly(h.postEventArchiving))
	h.mux.HandleFunc("GET /boot/sessions/{id}", h.nodeOnly(h.getSession))
	h.mux.HandleFunc("GET /boot/sessions/{id}/plan", h.nodeOnly(h.plan))
	h.mux.HandleFunc("GET /boot/sessions/{id}/manifests/{digest}", h.nodeOnly(h.nodeManifest))
	h.mux.HandleFunc("GET /boot/sessions/{id}/blobs/{digest}", h.nodeOnly(h.nodeBlob))
	h.mux.HandleFunc("POST /boot/sessions/{id}/blobs", h.nodeOnly(h.nodeBlobs))
	h.mux.HandleFunc("POST /boot/sessions/{id}/console", h.nodeOnly(h.postConsole))
	h.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "No such boot endpoint",
			fmt.Sprintf("%s %s is not served by the boot function", r.Method, r.URL.Path)))
	})
	return h
}

// ServeHTTP answers one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// validHost accepts host[:port] as a Host header carries it: a DNS name or
// IPv4 address, or an IPv6 address in brackets.
func validHost(h string) bool {
	host, port := h, ""
	if rest, ok := strings.CutPrefix(h, "["); ok {
		addr, after, ok := strings.Cut(rest, "]")
		if ip, err := netip.ParseAddr(addr); !ok || err != nil || !ip.Is6() {
			return false
		}
		host = "x"
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return false
			}
			port = p
			if port == "" {
				return false
			}
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if port == "" {
			return false
		}
	}
	if host == "" || len(port) > 5 {
		return false
	}
	for _, c := range []byte(port) {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range []byte(host) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// serverURL is the base URL the node used to reach herd: the configured
// one, else the host the edge says the request came to.
func (h *Handler) serverURL(r *http.Request) (string, error) {
	if h.cfg.ServerURL != "" {
		return h.cfg.ServerURL, nil
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if h.auth.FromEdge(r) {
		if fh, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ","); strings.TrimSpace(fh) != "" {
			host = strings.TrimSpace(fh)
		}
		switch p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.TrimSpace(p) {
		case "http", "https":
			scheme = strings.TrimSpace(p)
		}
	}
	if !validHost(host) {
		return "", fmt.Errorf("the request's host %q is not a host name or address", host)
	}
	return scheme + "://" + host, nil
}

// newID returns 128 random bits in hex: a session id
// (model.ValidBootSessionID).
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hashToken is how a boot token is stored: only its SHA-256. Tokens are
// 192 random bits, so a plain hash is enough.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// fail answers a JSON endpoint with a problem, logging server faults once.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := store.ProblemOf(err)
	switch {
	case p == nil:
		h.log.Error("boot request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p = problem.New(http.StatusServiceUnavailable, "unavailable", "Storage unavailable",
			"the request could not be completed; retry shortly")
	case p.Status == http.StatusUnauthorized:
		p.Title = "Bad boot token"
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herd-boot"`)
	}
	problem.Write(w, r, p)
}

// reply writes v as JSON.
func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxEventBody caps an event a node posts.
const maxEventBody = 64 << 10

// decode reads one JSON value strictly.
func decode(r *http.Request, v any) error { return decodeAtMost(r, v, maxEventBody) }

// decodeAtMost reads one JSON value strictly from a body of at most limit
// bytes.
func decodeAtMost(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		detail := strings.TrimPrefix(err.Error(), "json: ")
		var me *http.MaxBytesError
		switch {
		case errors.As(err, &me):
			detail = fmt.Sprintf("the body is larger than %d bytes", me.Limit)
		case errors.Is(err, io.EOF):
			detail = "the body is empty; send a JSON object"
		}
		return problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", detail)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", "the body holds more than one JSON value")
	}
	return nil
}

// nodeOnly refuses, when RequireNodeCert is set, a request that did not
// come through the edge with a verified cluster client certificate.
func (h *Handler) nodeOnly(next http.HandlerFunc) http.HandlerFunc {
	if !h.cfg.RequireNodeCert {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.auth.FromEdge(r) || r.Header.Get(auth.HeaderNodeCert) != "verified" {
			h.log.Info("node request without the cluster certificate refused", "path", r.URL.Path, "client", h.auth.ClientHost(r))
			problem.Write(w, r, problem.New(http.StatusForbidden, "no-node-certificate", "Cluster certificate required",
				"this herd serves bootenv only over HTTPS with the cluster's client certificate (herd pki init); build bootenv with it"))
			return
		}
		next(w, r)
	}
}

// nodeSession reads the session id of a node's request and checks its boot
// token, answering the problem itself and returning false when either
// fails.
func (h *Handler) nodeSession(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, ok := h.sessionID(w, r)
	if !ok {
		return "", false
	}
	if err := h.sessionFor(r.Context(), id, bearer(r)); err != nil {
		h.fail(w, r, err)
		return "", false
	}
	return id, true
}

// sessionFor authenticates a request with a boot token for session id: 401
// for no or an unknown token, 403 for the token of another session. Each
// use keeps the token alive for another TokenTTL.
func (h *Handler) sessionFor(ctx context.Context, id, token string) error {
	if token == "" {
		return problem.New(http.StatusUnauthorized, "unauthorized", "No boot token",
			"send the boot token from the kernel command line (herd.token) as Authorization: Bearer")
	}
	owner, err := h.store.BootTokenSession(ctx, hashToken(token), h.cfg.TokenTTL)
	if err != nil {
		return err
	}
	if owner != id {
		return problem.New(http.StatusForbidden, "forbidden", "Token of another session",
			fmt.Sprintf("this boot token belongs to another session, not %s", id))
	}
	return nil
}

// bearer returns the bearer token of a request.
func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}
