package dhcp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Reservation is one known node: its MAC, its name and, when it has one,
// its reserved address with the prefix length of its network.
type Reservation struct {
	MAC  MAC
	Node string
	// Addr is invalid for a node known without an address: it gets a
	// discovery-pool lease with the full options. Bits is the prefix
	// length; 0 when the table gave a bare address (the subnet's applies).
	Addr netip.Addr
	Bits int
}

// Table is an immutable snapshot of the reservation table functions
// publish at /boot/reservations. Lookups are safe from many goroutines.
type Table struct {
	byMAC  map[MAC]Reservation
	byAddr map[netip.Addr]MAC
	// ETag is the entity tag functions sent with it, for If-None-Match.
	ETag string
}

// NewTable indexes reservations. Entries that clash with an earlier one
// (same MAC, or an address already reserved for another MAC) are left out
// and reported; the rest of the table is kept.
func NewTable(rs []Reservation) (*Table, []error) {
	t := &Table{byMAC: make(map[MAC]Reservation, len(rs)), byAddr: make(map[netip.Addr]MAC, len(rs))}
	var errs []error
	for _, r := range rs {
		if prev, dup := t.byMAC[r.MAC]; dup {
			errs = append(errs, fmt.Errorf("MAC %s of node %q is already reserved for node %q", r.MAC, r.Node, prev.Node))
			continue
		}
		if r.Addr.IsValid() {
			if other, dup := t.byAddr[r.Addr]; dup {
				errs = append(errs, fmt.Errorf("address %s of node %q is already reserved for %s (node %q)", r.Addr, r.Node, other, t.byMAC[other].Node))
				continue
			}
			t.byAddr[r.Addr] = r.MAC
		}
		t.byMAC[r.MAC] = r
	}
	return t, errs
}

// Lookup finds the reservation of mac.
func (t *Table) Lookup(mac MAC) (Reservation, bool) {
	r, ok := t.byMAC[mac]
	return r, ok
}

// Reserved reports whether a is some node's reserved address; the discovery
// pool never hands those out.
func (t *Table) Reserved(a netip.Addr) bool {
	_, ok := t.byAddr[a]
	return ok
}

// MACAt is the MAC an address is reserved for.
func (t *Table) MACAt(a netip.Addr) (MAC, bool) {
	m, ok := t.byAddr[a]
	return m, ok
}

// Len is the number of known MACs.
func (t *Table) Len() int { return len(t.byMAC) }

// tableJSON is the body of GET /boot/reservations.
type tableJSON struct {
	Reservations []struct {
		MAC     string `json:"mac"`
		Node    string `json:"node"`
		Address string `json:"address"`
	} `json:"reservations"`
}

// maxTableBytes bounds the body read from functions: 64 MiB is about half a
// million entries.
const maxTableBytes = 64 << 20

// DecodeTable reads a /boot/reservations body. A body that is not the
// expected JSON is an error; single bad entries are skipped and reported,
// so one typo in inventory does not stop every node from booting.
func DecodeTable(r io.Reader, etag string) (*Table, []error, error) {
	var body tableJSON
	dec := json.NewDecoder(io.LimitReader(r, maxTableBytes))
	if err := dec.Decode(&body); err != nil {
		return nil, nil, fmt.Errorf("decode reservation table: %w", err)
	}
	if body.Reservations == nil {
		return nil, nil, fmt.Errorf("decode reservation table: no \"reservations\" list")
	}
	rs := make([]Reservation, 0, len(body.Reservations))
	var errs []error
	for i, e := range body.Reservations {
		mac, err := ParseMAC(e.MAC)
		if err != nil {
			errs = append(errs, fmt.Errorf("reservations[%d] (node %q): %w", i, e.Node, err))
			continue
		}
		res := Reservation{MAC: mac, Node: e.Node}
		if e.Address != "" {
			res.Addr, res.Bits, err = parseReservedAddr(e.Address)
			if err != nil {
				errs = append(errs, fmt.Errorf("reservations[%d] (node %q): %w", i, e.Node, err))
				continue
			}
		}
		rs = append(rs, res)
	}
	t, clashes := NewTable(rs)
	t.ETag = etag
	return t, append(errs, clashes...), nil
}

// parseReservedAddr reads "10.0.0.5/16" or a bare "10.0.0.5".
func parseReservedAddr(s string) (netip.Addr, int, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p.Bits() == 0 {
			return netip.Addr{}, 0, fmt.Errorf("address %q is not an IPv4 address with a prefix length such as 10.0.0.5/16", s)
		}
		return p.Addr(), p.Bits(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, 0, fmt.Errorf("address %q is not an IPv4 address", s)
	}
	return a, 0, nil
}

// hostname is the node name as option 12, or "" when it cannot be one.
// Node names are 1–63 letters, digits, '.', '_' or '-', starting with a
// letter or digit (functions/model.CheckName); anything else is not sent.
func hostname(node string) string {
	if node == "" || len(node) > 63 {
		return ""
	}
	for i := 0; i < len(node); i++ {
		c := node[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return ""
		}
	}
	return node
}

// TableSource hands out the current reservation table; *Reservations is
// the real one, tests use a fixed table.
type TableSource interface {
	// Table is the newest snapshot, nil until one has been loaded.
	Table() *Table
	// Wake asks for an early refresh (an unknown MAC showed up); it never
	// blocks.
	Wake()
}

// StaticTable is a TableSource that never changes.
type StaticTable struct{ T *Table }

// Table returns the fixed table.
func (s StaticTable) Table() *Table { return s.T }

// Wake does nothing.
func (StaticTable) Wake() {}

// offerHold is how long an offered pool address stays set aside for the
// client before its REQUEST; declineHold is how long an address a client
// found in use stays out of the pool.
const (
	offerHold   = time.Minute
	declineHold = 10 * time.Minute
)
