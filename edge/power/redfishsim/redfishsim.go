// Package redfishsim is an HTTPS server that answers like a BMC's Redfish
// service, enough for bmclib's gofish provider: the service root, session
// login and logout (SessionService) or basic auth, one ComputerSystem with
// its PowerState, and the ComputerSystem.Reset action.
//
// One Server stands in for many BMCs: each listens on its own loopback
// port, as each BMC has its own address, and all share one self-signed
// certificate. A per-request latency makes it behave like BMCs across a
// network for benchmarks.
package redfishsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/simcert"
)

// Options describe the simulated BMCs.
type Options struct {
	// BMCs is how many to simulate (default 1).
	BMCs int
	// Username and Password are every BMC's account (default admin /
	// herd-secret).
	Username string
	Password string
	// Latency holds every request this long before it is answered.
	Latency time.Duration
	// On starts the systems powered on.
	On bool
}

// Server is a running set of simulated BMCs.
type Server struct {
	opts     Options
	cert     tls.Certificate
	srv      *http.Server
	bmcs     []*bmc
	byPort   map[int]*bmc
	requests atomic.Int64
	conns    atomic.Int64
}

type bmc struct {
	addr string

	mu       sync.Mutex
	on       bool
	resets   []string
	sessions map[string]string // token → session id
	nextID   int
}

// Start starts the server, closed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("start Redfish simulator: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server outside a test (a benchmark that wants its own
// lifetime, a demo); Close stops it.
func New(opts Options) (*Server, error) {
	if opts.BMCs <= 0 {
		opts.BMCs = 1
	}
	if opts.Username == "" {
		opts.Username = "admin"
	}
	if opts.Password == "" {
		opts.Password = "herd-secret"
	}
	cert, err := simcert.SelfSigned("bmc.invalid")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, cert: cert, byPort: map[int]*bmc{}}
	// Handshakes that a client ends on purpose (a wrong pin) are not news.
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		// What BMCs and PDU cards offer; Go's default post-quantum key
		// exchange would make each simulated handshake cost several times
		// what a real one costs the edge.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
	for range opts.BMCs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("listen for BMC %d: %w", len(s.bmcs)+1, err)
		}
		b := &bmc{addr: l.Addr().String(), on: opts.On, sessions: map[string]string{}}
		s.bmcs = append(s.bmcs, b)
		s.byPort[l.Addr().(*net.TCPAddr).Port] = b
		go s.srv.Serve(tls.NewListener(l, tlsConfig)) //nolint:errcheck // ends with Close
	}
	return s, nil
}

// Close stops every BMC.
func (s *Server) Close() { _ = s.srv.Close() }

// Address is BMC i's host:port (i from 0).
func (s *Server) Address(i int) string { return s.bmcs[i].addr }

// Fingerprint is the SHA-256 of the certificate every BMC presents, as
// BMCTarget.Fingerprint carries it ("sha256:<hex>").
func (s *Server) Fingerprint() string {
	sum := sha256.Sum256(s.cert.Certificate[0])
	return "sha256:" + hex.EncodeToString(sum[:])
}

// On reports whether BMC i's system is powered on.
func (s *Server) On(i int) bool {
	b := s.bmcs[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.on
}

// SetOn powers BMC i's system on or off behind herd's back.
func (s *Server) SetOn(i int, on bool) {
	b := s.bmcs[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = on
}

// Resets lists the ResetTypes BMC i was asked for, oldest first.
func (s *Server) Resets(i int) []string {
	b := s.bmcs[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.resets...)
}

// Sessions is how many login sessions BMC i holds open.
func (s *Server) Sessions(i int) int {
	b := s.bmcs[i]
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Requests is how many requests all BMCs answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Connections is how many connections (so TLS handshakes) all BMCs
// accepted.
func (s *Server) Connections() int64 { return s.conns.Load() }

const (
	root     = "/redfish/v1"
	sessions = root + "/SessionService/Sessions"
	systems  = root + "/Systems"
	system   = systems + "/1"
	reset    = system + "/Actions/ComputerSystem.Reset"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.opts.Latency > 0 {
		select {
		case <-time.After(s.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if local == nil {
		http.Error(w, "no local address", http.StatusInternalServerError)
		return
	}
	b := s.byPort[local.Port]
	if b == nil {
		http.NotFound(w, r)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()

	path := strings.TrimSuffix(r.URL.Path, "/")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")

	switch {
	case path == root && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":      root + "/",
			"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
			"Id":             "RootService",
			"Name":           "Root Service",
			"RedfishVersion": "1.15.0",
			"UUID":           "92384634-2938-2342-8820-489239905423",
			"Systems":        odataID(systems),
			"SessionService": odataID(root + "/SessionService"),
			"Links":          map[string]any{"Sessions": odataID(sessions)},
		})
		return
	case path == sessions && r.Method == http.MethodPost:
		s.login(w, r, b)
		return
	}

	if !s.authorized(r, b) {
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
		return
	}

	switch {
	case strings.HasPrefix(path, sessions+"/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(path, sessions+"/")
		for token, sid := range b.sessions {
			if sid == id {
				delete(b.sessions, token)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case path == root+"/SessionService" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"@odata.id": root + "/SessionService", "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 300, "Sessions": odataID(sessions)})
	case path == systems && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":           systems,
			"@odata.type":         "#ComputerSystemCollection.ComputerSystemCollection",
			"Name":                "Computer System Collection",
			"Members@odata.count": 1,
			"Members":             []any{odataID(system)},
		})
	case path == system && r.Method == http.MethodGet:
		power := "Off"
		if b.on {
			power = "On"
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":   system,
			"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
			"Id":          "1",
			"Name":        "System",
			"SystemType":  "Physical",
			"PowerState":  power,
			"Actions": map[string]any{
				"#ComputerSystem.Reset": map[string]any{
					"target":                            reset,
					"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle", "Nmi"},
				},
			},
		})
	case path == reset && r.Method == http.MethodPost:
		var body struct{ ResetType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body is not JSON.")
			return
		}
		switch body.ResetType {
		case "On":
			b.on = true
		case "ForceOff", "GracefulShutdown":
			b.on = false
		case "ForceRestart", "GracefulRestart", "PowerCycle", "Nmi":
			// The system goes down and comes back within the request, as
			// far as anyone polling can tell.
		default:
			writeError(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueNotInList", "ResetType "+strconv.Quote(body.ResetType)+" is not supported.")
			return
		}
		b.resets = append(b.resets, body.ResetType)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No resource at "+path+".")
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, b *bmc) {
	var body struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body is not JSON.")
		return
	}
	if !s.credentials(body.UserName, body.Password) {
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "Invalid username or password.")
		return
	}
	b.nextID++
	id := strconv.Itoa(b.nextID)
	token := randomToken()
	b.sessions[token] = id
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", sessions+"/"+id)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.id": sessions + "/" + id, "Id": id, "Name": "User Session", "UserName": body.UserName})
}

func (s *Server) authorized(r *http.Request, b *bmc) bool {
	if token := r.Header.Get("X-Auth-Token"); token != "" {
		_, ok := b.sessions[token]
		return ok
	}
	user, password, ok := r.BasicAuth()
	return ok && s.credentials(user, password)
}

func (s *Server) credentials(user, password string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(password), []byte(s.opts.Password)) == 1
}

func odataID(id string) map[string]string { return map[string]string{"@odata.id": id} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message}})
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
