package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func initDir(t *testing.T, hosts ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir, InitOptions{EdgeHosts: hosts}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitFiles(t *testing.T) {
	dir := initDir(t, "edge.cluster", "127.0.0.1")
	for name, mode := range map[string]os.FileMode{CACert: 0o644, CAKey: 0o600, EdgeCert: 0o644, EdgeKey: 0o600, NodeCert: 0o644, NodeKey: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	ca := readCert(t, filepath.Join(dir, CACert))
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < CALifetime {
		t.Errorf("CA: IsCA=%v valid %v", ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
	edge := readCert(t, filepath.Join(dir, EdgeCert))
	if err := edge.VerifyHostname("edge.cluster"); err != nil {
		t.Error(err)
	}
	if err := edge.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if edge.NotAfter.After(ca.NotAfter) {
		t.Error("the edge certificate outlives its CA")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("%d files in %s", len(entries), dir)
	}
	// A second init keeps the CA unless forced.
	before, _ := os.ReadFile(filepath.Join(dir, CACert))
	if err := Init(dir, InitOptions{EdgeHosts: []string{"x"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CACert))
	if string(before) != string(after) {
		t.Fatal("a refused init changed the CA")
	}
	if err := Init(dir, InitOptions{EdgeHosts: []string{"x"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if forced, _ := os.ReadFile(filepath.Join(dir, CACert)); string(forced) == string(before) {
		t.Fatal("a forced init kept the old CA")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs one TLS handshake over loopback and returns the server's
// view of the connection, or the client's error.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	states := make(chan tls.ConnectionState, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(states)
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			close(states)
			return
		}
		_, _ = tc.Write([]byte("ok"))
		states <- tc.ConnectionState()
	}()
	cfg := client.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		<-states
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		<-states
		return tls.ConnectionState{}, err
	}
	return <-states, nil
}

func TestHandshake(t *testing.T) {
	dir := initDir(t, "edge.cluster", "127.0.0.1")
	cfgs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := handshake(t, cfgs.Server, cfgs.Node)
	if err != nil {
		t.Fatalf("node handshake: %v", err)
	}
	if !FromNode(&st) || st.PeerCertificates[0].Subject.CommonName != NodeCommonName {
		t.Fatalf("the server did not see a verified node: %+v", st.PeerCertificates)
	}

	// An admin's client sends no certificate and is let in, as no node.
	admin := &tls.Config{RootCAs: cfgs.Node.RootCAs}
	st, err = handshake(t, cfgs.Server, admin)
	if err != nil || FromNode(&st) {
		t.Fatalf("admin handshake: node=%v %v", FromNode(&st), err)
	}

	// A node certificate of another cluster's CA is refused.
	other, err := LoadNode(initDir(t, "other"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Config{RootCAs: cfgs.Node.RootCAs, Certificates: other.Certificates}
	if _, err := handshake(t, cfgs.Server, foreign); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
	// Without its files nothing loads.
	if _, err := LoadServer(t.TempDir()); err == nil {
		t.Fatal("loaded a server from an empty directory")
	}
}

func TestNodeRefusesAnotherEdge(t *testing.T) {
	mine, err := Load(initDir(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := Load(initDir(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, theirs.Server, mine.Node); err == nil {
		t.Fatal("a node trusted an edge of another CA")
	}
}

func TestInitNeedsAHost(t *testing.T) {
	if err := Init(t.TempDir(), InitOptions{}); err == nil {
		t.Fatal("init without an edge host succeeded")
	}
}

func BenchmarkInit(b *testing.B) {
	for b.Loop() {
		if err := Init(b.TempDir(), InitOptions{EdgeHosts: []string{"edge"}, Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
