// Package proxy forwards every HTTP request that reaches the edge (admin
// pages, /api/..., node-facing /boot/...) to herd functions, and tells
// functions who the client is in X-Herd-* headers that only the edge may set.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Headers the edge sets on every forwarded request. Functions trust the
// others only when HeaderSecret carries the shared secret. Any header a
// client sends whose name starts with X-Herd- (or x_herd_) is dropped first.
// Names are in Go's canonical form; HTTP header names are case-insensitive.
const (
	HeaderSecret     = "X-Herd-Edge-Secret"
	HeaderClientAddr = "X-Herd-Client-Addr"
	HeaderClientMAC  = "X-Herd-Client-Mac"
	// HeaderClientVendorClass is the DHCP vendor class (option 60) the
	// client last sent, for discovery entries.
	HeaderClientVendorClass = "X-Herd-Client-Vendor-Class"
	// HeaderNodeCert is "verified" when the client presented a certificate
	// the edge's TLS configuration verified: one of the cluster CA's.
	HeaderNodeCert = "X-Herd-Node-Cert"
)

// ProblemUnavailable is the RFC 9457 problem type of the answer given when
// functions cannot be reached.
const ProblemUnavailable = "https://herd.dev/problems/functions-unavailable"

// ClientMACFunc looks up the MAC address of a client by its IP address, for
// clients the edge knows from its DHCP leases.
type ClientMACFunc func(ip net.IP) (mac string, ok bool)

// Config says where and how to forward.
type Config struct {
	// Upstream is the functions base URL; its path, if any, prefixes every
	// forwarded path.
	Upstream *url.URL
	// Secret is sent as X-Herd-Edge-Secret.
	Secret string
	// ClientMAC, when set, supplies X-Herd-Client-Mac for known clients.
	ClientMAC ClientMACFunc
	// ClientVendorClass, when set, supplies X-Herd-Client-Vendor-Class.
	ClientVendorClass func(ip net.IP) (string, bool)
	// Transport carries requests to functions; nil means NewTransport().
	Transport http.RoundTripper
}

// Proxy is the http.Handler that forwards to functions.
type Proxy struct {
	upstream  *url.URL
	secret    string
	clientMAC ClientMACFunc
	vendorOf  func(ip net.IP) (string, bool)
	transport http.RoundTripper
	rp        *httputil.ReverseProxy
	log       *slog.Logger
	// down is set while functions are unreachable, so the outage is logged
	// once when it starts and once when it ends, not on every request.
	down atomic.Bool
}

// New builds a Proxy to cfg.Upstream.
func New(cfg Config, log *slog.Logger) (*Proxy, error) {
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return nil, fmt.Errorf("proxy: upstream %v is not an http(s) URL with a host", cfg.Upstream)
	}
	if cfg.Secret == "" {
		return nil, errors.New("proxy: empty shared secret")
	}
	p := &Proxy{
		upstream:  cfg.Upstream,
		secret:    cfg.Secret,
		clientMAC: cfg.ClientMAC,
		vendorOf:  cfg.ClientVendorClass,
		transport: cfg.Transport,
		log:       log,
	}
	if p.transport == nil {
		p.transport = NewTransport()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.transport,
		// Flush every write at once: consoles and boot watches stream as
		// server-sent events.
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BufferPool:     &bufferPool{},
	}
	return p, nil
}

// bufferPool reuses the 32 KiB buffers ReverseProxy copies bodies through,
// which it would otherwise allocate for every request.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

// NewTransport returns a transport made for one trusted upstream: it never
// goes through HTTP_PROXY, keeps many idle connections, passes compressed
// bodies through untouched, and has no response timeout because long polls
// and event streams stay open for as long as they need.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		DisableCompression:    true,
	}
}

// ServeHTTP forwards r to functions and copies the answer back.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.rp.ServeHTTP(w, r)
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.SetXForwarded()
	stripHerd(pr.Out.Header)
	stripHerd(pr.Out.Trailer)
	// The edge is the front door: a client's Forwarded header says nothing
	// functions may trust (X-Forwarded-* from the client are already gone).
	pr.Out.Header.Del("Forwarded")

	pr.Out.Header.Set(HeaderSecret, p.secret)
	if pr.In.TLS != nil && len(pr.In.TLS.VerifiedChains) > 0 {
		pr.Out.Header.Set(HeaderNodeCert, "verified")
	}
	ip, ok := clientIP(pr.In.RemoteAddr)
	if !ok {
		return
	}
	pr.Out.Header.Set(HeaderClientAddr, ip.String())
	if p.clientMAC == nil {
		return
	}
	mac, ok := p.clientMAC(net.IP(ip.AsSlice()))
	if !ok {
		return
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		p.log.Debug("client MAC lookup returned no usable MAC", "client", ip, "mac", mac)
		return
	}
	pr.Out.Header.Set(HeaderClientMAC, hw.String())
	if p.vendorOf == nil {
		return
	}
	if vc, ok := p.vendorOf(net.IP(ip.AsSlice())); ok && printable(vc) {
		pr.Out.Header.Set(HeaderClientVendorClass, vc)
	}
}

// printable reports whether s can go in a header as it is.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// clientIP is the address of the peer, with IPv4-mapped IPv6 unmapped.
func clientIP(remoteAddr string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// stripHerd deletes every X-Herd-* header, also spelled with underscores,
// which some servers fold into dashes.
func stripHerd(h http.Header) {
	for k := range h {
		if isHerdHeader(k) {
			delete(h, k)
		}
	}
}

func isHerdHeader(name string) bool {
	const prefix = "x-herd-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

func isSecretHeader(name string) bool {
	return len(name) == len(HeaderSecret) && isHerdHeader(name) &&
		strings.EqualFold(strings.ReplaceAll(name, "_", "-"), HeaderSecret)
}

func (p *Proxy) modifyResponse(res *http.Response) error {
	p.markUp()
	stripSecret(res.Header)
	stripSecret(res.Trailer)
	if res.StatusCode != http.StatusSwitchingProtocols && res.Body != nil {
		// Trailers arrive only when the body has been read to the end.
		res.Body = &trailerScrubber{ReadCloser: res.Body, res: res}
	}
	return nil
}

// stripSecret keeps the shared secret from going back to the client, should
// a function echo request headers.
func stripSecret(h http.Header) {
	for k := range h {
		if isSecretHeader(k) {
			delete(h, k)
		}
	}
}

type trailerScrubber struct {
	io.ReadCloser
	res *http.Response
}

func (t *trailerScrubber) Read(b []byte) (int, error) {
	n, err := t.ReadCloser.Read(b)
	if err == io.EOF {
		stripSecret(t.res.Trailer)
	}
	return n, err
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away (the server cancels the request's context
		// also when reading its body fails); nobody is left to answer.
		p.log.Debug("client gone before functions answered", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
		return
	}
	p.markDown(err, "method", r.Method, "path", r.URL.Path)
	writeProblem(w, http.StatusBadGateway, problem{
		Type:   ProblemUnavailable,
		Title:  "herd functions are unavailable",
		Detail: "The edge could not get an answer from herd functions. Try again shortly; if this persists, check that herd-functions is running.",
	})
}

func (p *Proxy) markDown(err error, args ...any) {
	if p.down.CompareAndSwap(false, true) {
		p.log.Error("functions unavailable", append([]any{"upstream", p.upstream.Redacted(), "err", err}, args...)...)
		return
	}
	p.log.Debug("functions still unavailable", append([]any{"err", err}, args...)...)
}

func (p *Proxy) markUp() {
	if p.down.CompareAndSwap(true, false) {
		p.log.Info("functions available again", "upstream", p.upstream.Redacted())
	}
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, pr problem) {
	pr.Status = status
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(pr)
}

// Health answers GET /edge/health from the edge itself: whether functions
// answer at all (any HTTP status counts). It is 200 with ok true when they
// do, 503 with ok false when they do not.
func (p *Proxy) Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, problem{
				Type:  "https://herd.dev/problems/method-not-allowed",
				Title: "Method not allowed",
			})
			return
		}
		reachable := p.probe(r.Context())
		status := http.StatusOK
		if !reachable {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			OK                 bool `json:"ok"`
			FunctionsReachable bool `json:"functions_reachable"`
		}{reachable, reachable})
	})
}

// probe asks functions for their base URL and reports whether anything
// answered within two seconds.
func (p *Proxy) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.upstream.String(), nil)
	if err != nil {
		return false
	}
	req.Header.Set(HeaderSecret, p.secret)
	res, err := p.transport.RoundTrip(req)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.markDown(err, "path", "(health probe)")
		}
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	p.markUp()
	return true
}
