package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
)

const testSecret = "edge-secret-for-tests"

// syncBuffer collects log output from concurrent handlers.
// syncBuffer collects log lines from concurrent goroutines.
type syncBuffer = testenv.Logs

// startProxy serves a Proxy to upstream on a real loopback listener.
func startProxy(t testing.TB, upstream string, mac ClientMACFunc) (*httptest.Server, *syncBuffer) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	p, err := New(Config{Upstream: u, Secret: testSecret, ClientMAC: mac}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/edge/health", p.Health())
	mux.Handle("/", p)
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	return front, logs
}

func TestHeaders(t *testing.T) {
	var got http.Header
	var gotHost, gotPath string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotHost, gotPath = r.Host, r.URL.RequestURI()
		// A careless function echoing what it received.
		w.Header().Set("X-Herd-Edge-Secret", r.Header.Get("X-Herd-Edge-Secret"))
		w.Header().Set("X-Herd-Node", "n001")
		w.Header().Set("Trailer", "X-Herd-Edge-Secret")
		w.WriteHeader(200)
		io.WriteString(w, "hello")
		w.Header().Set("X-Herd-Edge-Secret", r.Header.Get("X-Herd-Edge-Secret"))
	}))
	defer up.Close()

	front, _ := startProxy(t, up.URL+"/prefix", func(ip net.IP) (string, bool) {
		if ip.Equal(net.IPv4(127, 0, 0, 1)) {
			return "52-54-00-AB-CD-EF", true
		}
		return "", false
	})

	req, _ := http.NewRequest("GET", front.URL+"/boot/ipxe?mac=52:54:00:ab:cd:ef", nil)
	req.Host = "herd.example"
	req.Header.Set("X-Herd-Edge-Secret", "forged")
	req.Header.Set("X-Herd-Client-Addr", "10.9.9.9")
	req.Header.Set("X-Herd-Client-MAC", "00:11:22:33:44:55")
	req.Header["x_herd_client_addr"] = []string{"10.8.8.8"}
	req.Header.Set("X-Herd-Anything", "x")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("Accept", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()

	if string(body) != "hello" {
		t.Errorf("body = %q", body)
	}
	want := map[string]string{
		"X-Herd-Edge-Secret": testSecret,
		"X-Herd-Client-Addr": "127.0.0.1",
		"X-Herd-Client-Mac":  "52:54:00:ab:cd:ef",
		"X-Forwarded-For":    "127.0.0.1",
		"X-Forwarded-Host":   "herd.example",
		"X-Forwarded-Proto":  "http",
		"Accept":             "text/plain",
	}
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("upstream saw %s = %q, want [%q]", k, g, v)
		}
	}
	for k := range got {
		if isHerdHeader(k) {
			if _, ok := want[http.CanonicalHeaderKey(k)]; !ok {
				t.Errorf("forged header %s = %q reached functions", k, got[k])
			}
		}
	}
	if got.Get("Forwarded") != "" {
		t.Errorf("client's Forwarded header reached functions")
	}
	if gotPath != "/prefix/boot/ipxe?mac=52:54:00:ab:cd:ef" {
		t.Errorf("upstream path = %q", gotPath)
	}
	if gotHost != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream Host = %q, want the functions host", gotHost)
	}

	for k, v := range res.Header {
		if strings.Contains(strings.Join(v, ","), testSecret) {
			t.Errorf("secret leaked to client in response header %s", k)
		}
	}
	for k, v := range res.Trailer {
		if strings.Contains(strings.Join(v, ","), testSecret) {
			t.Errorf("secret leaked to client in response trailer %s", k)
		}
	}
	if res.Header.Get("X-Herd-Node") != "n001" {
		t.Errorf("other X-Herd-* response headers should pass: %v", res.Header)
	}
}

func TestNoMACWithoutHook(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	front, _ := startProxy(t, up.URL, func(net.IP) (string, bool) { return "garbage", true })
	res, err := http.Get(front.URL + "/api/v1/nodes")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got.Get(HeaderClientMAC) != "" {
		t.Errorf("unparseable MAC was forwarded: %q", got.Get(HeaderClientMAC))
	}
}

func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer up.Close()
	defer close(release)
	front, _ := startProxy(t, up.URL, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/api/v1/boots/watch", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("first event did not arrive while upstream still streams: %v", err)
	}
	if line != "data: first\n" {
		t.Fatalf("first line = %q", line)
	}
}

func TestUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	front, logs := startProxy(t, dead, nil)

	for i := 0; i < 3; i++ {
		res, err := http.Get(front.URL + "/api/v1/nodes")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway {
			t.Fatalf("status = %d", res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("content type = %q", ct)
		}
		var pr map[string]any
		if err := json.Unmarshal(body, &pr); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if pr["type"] != ProblemUnavailable || pr["status"] != float64(502) || pr["title"] == "" || pr["detail"] == "" {
			t.Errorf("problem = %v", pr)
		}
		if strings.Contains(string(body), l.Addr().String()) {
			t.Errorf("problem reveals the functions address: %s", body)
		}
	}
	if n := strings.Count(logs.String(), "functions unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs)
	}

	res, err := http.Get(front.URL + "/edge/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || h["ok"] != false || h["functions_reachable"] != false {
		t.Errorf("health while down: %d %v", res.StatusCode, h)
	}
}

func TestHealthUp(t *testing.T) {
	var sawSecret string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawSecret = r.Header.Get(HeaderSecret)
		http.NotFound(w, r)
	}))
	defer up.Close()
	front, _ := startProxy(t, up.URL, nil)
	res, err := http.Get(front.URL + "/edge/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != 200 || h["ok"] != true || h["functions_reachable"] != true {
		t.Errorf("health: %d %v", res.StatusCode, h)
	}
	if sawSecret != testSecret {
		t.Errorf("probe secret = %q", sawSecret)
	}
	res, _ = http.Post(front.URL+"/edge/health", "text/plain", nil)
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST health = %d", res.StatusCode)
	}
}

func TestRecoveryLogged(t *testing.T) {
	var fail sync.Mutex
	failing := true
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail.Lock()
		f := failing
		fail.Unlock()
		if f {
			// Hang up without an answer, as a crashing function would.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	front, logs := startProxy(t, up.URL, nil)
	get := func() int {
		res, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := get(); s != 502 {
		t.Fatalf("status = %d", s)
	}
	fail.Lock()
	failing = false
	fail.Unlock()
	if s := get(); s != 200 {
		t.Fatalf("status = %d", s)
	}
	if !strings.Contains(logs.String(), "functions available again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

// patternReader yields n bytes of a fixed pattern without holding them.
type patternReader struct {
	left  int64
	pos   int64
	gate  int64         // block after this many bytes ...
	until chan struct{} // ... until this closes
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if p.until != nil && p.pos >= p.gate {
		select {
		case <-p.until:
			p.until = nil
		case <-time.After(10 * time.Second):
			return 0, fmt.Errorf("upstream never saw the first bytes: the proxy buffers request bodies")
		}
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	if p.until != nil && p.pos+int64(len(b)) > p.gate {
		b = b[:p.gate-p.pos]
	}
	for i := range b {
		b[i] = byte((p.pos + int64(i)) % 251)
	}
	p.left -= int64(len(b))
	p.pos += int64(len(b))
	return len(b), nil
}

func TestLargeBodyStreams(t *testing.T) {
	const size = 64 << 20
	const gate = 1 << 20
	sawFirst := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		var n int64
		buf := make([]byte, 32<<10)
		signalled := false
		for {
			k, err := r.Body.Read(buf)
			h.Write(buf[:k])
			n += int64(k)
			if !signalled && n >= gate {
				close(sawFirst)
				signalled = true
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	defer up.Close()
	front, _ := startProxy(t, up.URL, nil)

	want := sha256.New()
	io.Copy(want, &patternReader{left: size})
	wantBody := fmt.Sprintf("%d %x", size, want.Sum(nil))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The client stops after 1 MiB until functions have received that much:
	// a proxy that buffers the whole body would never let it through.
	body := &patternReader{left: size, gate: gate, until: sawFirst}
	req, _ := http.NewRequest("PUT", front.URL+"/api/v1/images/x/blobs", body)
	req.ContentLength = size
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	runtime.ReadMemStats(&after)

	if string(got) != wantBody {
		t.Fatalf("upstream got %q, want %q", got, wantBody)
	}
	// Everything in this process (client, proxy, upstream) allocated far
	// less than the body's size: nothing held it whole.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d MiB while moving a %d MiB body", alloc>>20, size>>20)
	}
}

func TestClientAbortIsNotAnOutage(t *testing.T) {
	started := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	front, logs := startProxy(t, up.URL, nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /api/v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached functions")
	}
	conn.Close()
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(logs.String(), "functions unavailable") {
		t.Errorf("client hang-up logged as an outage:\n%s", logs)
	}
}

func TestIsHerdHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Herd-Edge-Secret": true,
		"x-herd-client-addr": true,
		"X_Herd_Client_Addr": true,
		"X-HERD-":            true,
		"X-Herd":             false,
		"X-Herdsman":         false,
		"X-Forwarded-For":    false,
		"":                   false,
	} {
		if got := isHerdHeader(name); got != want {
			t.Errorf("isHerdHeader(%q) = %v", name, got)
		}
	}
	if !isSecretHeader("x_herd_edge_secret") || isSecretHeader("X-Herd-Edge-Secrets") || isSecretHeader("X-Herd-Client-Addr") {
		t.Error("isSecretHeader")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	u, _ := url.Parse("ftp://x")
	if _, err := New(Config{Upstream: u, Secret: "s"}, log); err == nil {
		t.Error("ftp upstream accepted")
	}
	u, _ = url.Parse("http://x")
	if _, err := New(Config{Upstream: u}, log); err == nil {
		t.Error("empty secret accepted")
	}
}

func BenchmarkProxyGet(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	front, _ := startProxy(b, up.URL, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	url := front.URL + "/api/v1/nodes/n001"
	b.ReportAllocs()
	for b.Loop() {
		res, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkDirectGet is the same request without the edge, for comparison
// with BenchmarkProxyGet.
func BenchmarkDirectGet(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	url := up.URL + "/api/v1/nodes/n001"
	b.ReportAllocs()
	for b.Loop() {
		res, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}
