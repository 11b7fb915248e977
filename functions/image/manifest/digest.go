package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Digest is a SHA-256 content address, the one algorithm of the image store.
// SHA-256 is the OCI standard for content addressing, has no practical
// collisions, and runs with SHA-NI on x86, so hashing is rarely the import
// bottleneck.
type Digest [sha256.Size]byte

const digestPrefix = "sha256:"

// Sum returns the digest of b.
func Sum(b []byte) Digest { return Digest(sha256.Sum256(b)) }

// IsZero reports whether d is the zero value (no digest).
func (d Digest) IsZero() bool { return d == Digest{} }

// String returns the text form "sha256:<64 lowercase hex digits>".
func (d Digest) String() string { return digestPrefix + hex.EncodeToString(d[:]) }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDigest's rules.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ParseDigest parses the text form strictly: the "sha256:" prefix and exactly
// 64 lowercase hex digits, so every digest has one spelling.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	hexPart, ok := strings.CutPrefix(s, digestPrefix)
	if !ok {
		return d, fmt.Errorf("parse digest %q: want prefix %q", s, digestPrefix)
	}
	if len(hexPart) != 2*len(d) {
		return d, fmt.Errorf("parse digest %q: want %d hex digits, got %d", s, 2*len(d), len(hexPart))
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return d, fmt.Errorf("parse digest %q: %q is not a lowercase hex digit", s, c)
		}
	}
	if _, err := hex.Decode(d[:], []byte(hexPart)); err != nil {
		return d, fmt.Errorf("parse digest %q: %w", s, err)
	}
	return d, nil
}
