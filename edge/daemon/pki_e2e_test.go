package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/edge/pki"
	"github.com/herd-hpc/herd/functions/server"
)

// TestNodeCertificateThroughTheEdge: with the cluster PKI, the edge serves
// HTTPS with its certificate, and functions that require the cluster
// client certificate refuse bootenv's endpoints to a client without one
// (403) and let one with it on to the boot-token check (401 here, as the
// test sends no token).
func TestNodeCertificateThroughTheEdge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := pki.Init(dir, pki.InitOptions{EdgeHosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	_, ecfg := startFunctions(t, func(c *server.Config) { c.RequireNodeCert = true })
	ecfg.PKIDir = dir
	ecfg.PowerOff = true
	addrs, _, _, _ := start(t, ecfg)
	url := "https://" + addrs.HTTP.String() + "/boot/sessions/0123456789abcdef0123456789abcdef/plan"

	caPEM, err := os.ReadFile(filepath.Join(dir, pki.CACert))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	admin := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	res, err := admin.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("without the cluster certificate: %d, want 403", res.StatusCode)
	}

	nodeTLS, err := pki.LoadNode(dir)
	if err != nil {
		t.Fatal(err)
	}
	node := &http.Client{Transport: &http.Transport{TLSClientConfig: nodeTLS}}
	res, err = node.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body strings.Builder
	_, _ = io.Copy(&body, res.Body)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body.String(), "boot token") {
		t.Errorf("with the cluster certificate and no token: %d %s, want 401 asking for the boot token", res.StatusCode, body.String())
	}
}
