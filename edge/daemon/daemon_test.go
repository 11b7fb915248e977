package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/localdev/testenv"
	"github.com/pin/tftp/v3"
)

// syncBuffer collects log lines from concurrent goroutines.
type syncBuffer = testenv.Logs

// devConfig is what the all-in-one runner builds: everything on loopback,
// ports chosen by the kernel.
func devConfig(t testing.TB, functions string) config.Edge {
	t.Helper()
	u, err := url.Parse(functions)
	if err != nil {
		t.Fatal(err)
	}
	return config.Edge{
		Listen:       "127.0.0.1:0",
		FunctionsURL: u,
		Secret:       "dev-secret",
		TFTPListen:   "127.0.0.1:0",
		TFTPRoot:     t.TempDir(),
	}
}

// start runs an Edge until the test ends and returns its addresses.
func start(t testing.TB, cfg config.Edge) (Addrs, *syncBuffer, context.CancelFunc, <-chan error) {
	t.Helper()
	logs := &syncBuffer{}
	e, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs, err := e.Listen(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	return addrs, logs, cancel, done
}

func TestRunHTTPAndTFTP(t *testing.T) {
	var secret string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret = r.Header.Get("X-Herd-Edge-Secret")
		fmt.Fprintf(w, "functions saw %s", r.URL.Path)
	}))
	defer up.Close()
	cfg := devConfig(t, up.URL)
	os.WriteFile(filepath.Join(cfg.TFTPRoot, "undionly.kpxe"), []byte("ipxe"), 0o644)
	addrs, logs, cancel, done := start(t, cfg)

	if addrs.HTTP.(*net.TCPAddr).Port == 0 || addrs.TFTP.(*net.UDPAddr).Port == 0 {
		t.Fatalf("addresses without ports: %+v", addrs)
	}
	base := "http://" + addrs.HTTP.String()

	res, err := http.Get(base + "/boot/ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "functions saw /boot/ipxe" || secret != "dev-secret" {
		t.Errorf("proxied: %q, secret %q", body, secret)
	}

	res, err = http.Get(base + "/edge/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if res.StatusCode != 200 || h["ok"] != true {
		t.Errorf("health: %d %v", res.StatusCode, h)
	}

	res, _ = http.Get(base + "/edge/nothing-here")
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("/edge/nothing-here = %d, want 404 from the edge", res.StatusCode)
	}

	c, _ := tftp.NewClient(addrs.TFTP.String())
	c.SetBlockSize(1468)
	wt, err := c.Receive("/undionly.kpxe", "octet")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	wt.WriteTo(&buf)
	if buf.String() != "ipxe" {
		t.Errorf("tftp got %q", buf.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	for _, want := range []string{"edge listening", "TFTP listening", "DHCP off: no interfaces configured", "edge stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestMissingTFTPRootStillStarts(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	cfg := devConfig(t, up.URL)
	cfg.TFTPRoot = filepath.Join(cfg.TFTPRoot, "later")
	addrs, logs, _, _ := start(t, cfg)
	if addrs.TFTP == nil {
		t.Fatal("TFTP did not start")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "TFTP root unavailable") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "TFTP root unavailable") {
		t.Errorf("no warning about the missing root:\n%s", logs)
	}
}

func TestTFTPOff(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	cfg := devConfig(t, up.URL)
	cfg.TFTPListen = ""
	addrs, _, _, _ := start(t, cfg)
	if addrs.TFTP != nil {
		t.Errorf("TFTP address %v with TFTP off", addrs.TFTP)
	}
}

func TestTLS(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer up.Close()
	cfg := devConfig(t, up.URL)
	cfg.TLSCert, cfg.TLSKey = writeCert(t)
	addrs, _, _, _ := start(t, cfg)

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cfg.TLSCert)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get("https://" + addrs.HTTP.String() + "/api/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "https" {
		t.Errorf("functions saw X-Forwarded-Proto %q", body)
	}
}

func TestBadCertFailsInNew(t *testing.T) {
	cfg := devConfig(t, "http://127.0.0.1:1")
	cfg.TLSCert, cfg.TLSKey = "/nonexistent.crt", "/nonexistent.key"
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent.crt") {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidConfigRefused(t *testing.T) {
	cfg := devConfig(t, "http://127.0.0.1:1")
	cfg.Secret = ""
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("edge without secret accepted")
	}
}

// TestShutdownEndsStreams: an event stream that never ends must not keep
// the edge from stopping past the grace period.
func TestShutdownEndsStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the shutdown grace period")
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: hello\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	addrs, _, cancel, done := start(t, devConfig(t, up.URL))

	res, err := http.Get("http://" + addrs.HTTP.String() + "/api/v1/boots/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if line, _ := bufio.NewReader(res.Body).ReadString('\n'); line != "data: hello\n" {
		t.Fatalf("first line %q", line)
	}
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
		if took := time.Since(began); took > ShutdownGrace+3*time.Second {
			t.Errorf("shutdown took %v", took)
		}
	case <-time.After(ShutdownGrace + 5*time.Second):
		t.Fatal("open stream kept the edge running")
	}
}

func TestListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := devConfig(t, "http://127.0.0.1:1")
	cfg.Listen = busy.Addr().String()
	e, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Run on a busy port = %v", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herd edge test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}
