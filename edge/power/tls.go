package power

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrFingerprint means a device presented a certificate other than the one
// pinned for it.
var ErrFingerprint = errors.New("certificate does not match the pinned fingerprint")

// ParseFingerprint reads a pinned certificate fingerprint: "sha256:<hex>",
// the hex with or without colons (as openssl prints it), any case.
func ParseFingerprint(s string) ([]byte, error) {
	v := strings.TrimSpace(s)
	if algo, rest, ok := strings.Cut(v, ":"); ok && strings.EqualFold(algo, "sha256") {
		v = rest
	}
	v = strings.ReplaceAll(v, ":", "")
	sum, err := hex.DecodeString(v)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q: want sha256:<64 hex digits>", s)
	}
	return sum, nil
}

// Fingerprint formats the SHA-256 of a DER certificate the way BMCTarget
// and OutletTarget carry it: "sha256:<hex>".
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TLSConfig is the client TLS configuration for one device. With a
// fingerprint, the device's self-signed certificate is trusted only if its
// SHA-256 matches, whatever its names or issuer (BMCs and PDU cards rarely
// carry a name an address could verify); chain verification is replaced by
// the pin, not skipped. Without one, the system roots verify as usual.
func TLSConfig(fingerprint string) (*tls.Config, error) {
	if fingerprint == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	want, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pin in VerifyConnection replaces name and chain checks, which
		// a self-signed device certificate cannot pass.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate presented", ErrFingerprint)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], want) {
				return fmt.Errorf("%w: presented sha256:%s", ErrFingerprint, hex.EncodeToString(got[:]))
			}
			return nil
		},
	}, nil
}
