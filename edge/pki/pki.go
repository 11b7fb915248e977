// Package pki makes and loads the cluster's PKI: a cluster CA, the edge's
// server certificate, and one client certificate every node carries in
// bootenv's initramfs. Admins authenticate with tokens over the same TLS
// listener, so the edge asks for a client certificate but does not demand
// one: a node proves itself with it, an admin's browser sends none.
//
// Files in the PKI directory (keys 0600, certificates 0644, PEM):
//
//	ca.crt   ca.key    the cluster CA (ECDSA P-256, 10 years)
//	edge.crt edge.key  the edge's server certificate
//	node.crt node.key  the cluster client certificate for nodes
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names in the PKI directory.
const (
	CACert   = "ca.crt"
	CAKey    = "ca.key"
	EdgeCert = "edge.crt"
	EdgeKey  = "edge.key"
	NodeCert = "node.crt"
	NodeKey  = "node.key"
)

// Lifetimes of what Init makes. Leaves end before the CA does.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 5 * 365 * 24 * time.Hour
)

// NodeCommonName is the subject of the cluster client certificate.
const NodeCommonName = "herd-node"

// ErrExists is returned by Init when the directory already holds a CA and
// Force is not set: a new CA would lock out every node carrying a
// certificate of the old one.
var ErrExists = errors.New("a cluster CA exists already")

// InitOptions say what Init makes.
type InitOptions struct {
	// EdgeHosts are the names and addresses nodes and admins reach the
	// edge by; each becomes a DNS or IP subject alternative name.
	EdgeHosts []string
	// Force replaces an existing CA.
	Force bool
	// Now is the start of validity; zero means now.
	Now time.Time
}

// Init makes a new cluster CA, the edge's server certificate and the
// nodes' client certificate in dir (created 0700 if missing). Every file
// is written whole or not at all.
func Init(dir string, opts InitOptions) error {
	if len(opts.EdgeHosts) == 0 {
		return errors.New("init cluster PKI: name at least one edge host or address")
	}
	if _, err := os.Stat(filepath.Join(dir, CACert)); err == nil && !opts.Force {
		return fmt.Errorf("init cluster PKI in %s: %w (pass --force to replace it, and rebuild bootenv)", dir, ErrExists)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init cluster PKI: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	// Backdated a little so a node whose clock lags still accepts them.
	start := now.Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init cluster PKI: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "herd cluster CA", Organization: []string{"herd"}},
		NotBefore:             start,
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("init cluster PKI: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("init cluster PKI: %w", err)
	}
	edge := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: opts.EdgeHosts[0], Organization: []string{"herd"}},
		NotBefore:    start,
		NotAfter:     now.Add(LeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range opts.EdgeHosts {
		if ip := net.ParseIP(h); ip != nil {
			edge.IPAddresses = append(edge.IPAddresses, ip)
		} else if !slices.Contains(edge.DNSNames, h) {
			edge.DNSNames = append(edge.DNSNames, h)
		}
	}
	node := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: NodeCommonName, Organization: []string{"herd"}},
		NotBefore:    start,
		NotAfter:     now.Add(LeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	files := map[string][]byte{}
	for _, leaf := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{{edge, EdgeCert, EdgeKey}, {node, NodeCert, NodeKey}} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("init cluster PKI: %s: %w", leaf.key, err)
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("init cluster PKI: %s: %w", leaf.cert, err)
		}
		kb, err := keyPEM(k)
		if err != nil {
			return err
		}
		files[leaf.cert], files[leaf.key] = certPEM(der), kb
	}
	kb, err := keyPEM(caKey)
	if err != nil {
		return err
	}
	files[CACert], files[CAKey] = certPEM(caDER), kb
	// The CA goes last: until it is there, a failed init leaves nothing
	// that makes the next one refuse.
	for _, name := range []string{EdgeKey, EdgeCert, NodeKey, NodeCert, CAKey, CACert} {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".key" {
			mode = 0o600
		}
		if err := writeAtomic(filepath.Join(dir, name), files[name], mode); err != nil {
			return fmt.Errorf("init cluster PKI: %w", err)
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeAtomic writes data to a temporary file beside path with mode, syncs
// it and renames it over path.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Configs are the TLS configurations of the two ends.
type Configs struct {
	// Server is the edge's listener: its certificate, and the cluster CA
	// to verify a client certificate with when one is sent.
	Server *tls.Config
	// Node is bootenv's client: the cluster CA to trust and the node
	// certificate to show.
	Node *tls.Config
}

// Load reads the PKI directory Init wrote.
func Load(dir string) (*Configs, error) {
	srv, err := LoadServer(dir)
	if err != nil {
		return nil, err
	}
	node, err := LoadNode(dir)
	if err != nil {
		return nil, err
	}
	return &Configs{Server: srv, Node: node}, nil
}

func caPool(dir string) (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(dir, CACert))
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("load cluster CA: %s holds no PEM certificate", filepath.Join(dir, CACert))
	}
	return pool, nil
}

// LoadServer reads the edge's side: edge.crt, edge.key and ca.crt.
func LoadServer(dir string) (*tls.Config, error) {
	pool, err := caPool(dir)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, EdgeCert), filepath.Join(dir, EdgeKey))
	if err != nil {
		return nil, fmt.Errorf("load edge certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// LoadNode reads a node's side: node.crt, node.key and ca.crt (in
// bootenv's initramfs, or the PKI directory itself).
func LoadNode(dir string) (*tls.Config, error) {
	pool, err := caPool(dir)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, NodeCert), filepath.Join(dir, NodeKey))
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// FromNode reports whether a connection presented a client certificate
// the cluster CA verified: a node, not an admin.
func FromNode(cs *tls.ConnectionState) bool {
	return cs != nil && len(cs.VerifiedChains) > 0
}
