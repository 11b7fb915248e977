package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// MaxPoolSize bounds the discovery pool (a /14 worth of addresses); its
// bookkeeping is a few dozen bytes per address.
const MaxPoolSize = 1 << 18

// LeaseOpKind says what a decision does to the discovery pool.
type LeaseOpKind uint8

const (
	LeaseNone     LeaseOpKind = iota
	LeaseOffer                // set Addr aside for MAC until Until
	LeaseBind                 // lease Addr to MAC until Until
	LeaseRelease              // MAC gives Addr back (it stays MAC's first choice)
	LeaseWithdraw             // MAC took another server's offer: drop an offer it holds
	LeaseDecline              // Addr is in use by someone else: keep it out until Until
)

// LeaseOp is the change to the pool a decision asks for; the server
// applies it under the same lock the decision was taken under.
type LeaseOp struct {
	Kind  LeaseOpKind
	MAC   MAC
	Addr  netip.Addr
	Until time.Time
}

// PoolView is what a decision reads of the discovery pool.
type PoolView interface {
	// Contains reports whether a is in the pool's range.
	Contains(a netip.Addr) bool
	// Held is the address mac holds or last held, as long as nobody else
	// has taken it since.
	Held(mac MAC) (netip.Addr, bool)
	// Available reports whether a may be leased to mac now.
	Available(mac MAC, a netip.Addr, now time.Time) bool
	// Free is the next address nobody holds, skipping those skip refuses.
	Free(now time.Time, skip func(netip.Addr) bool) (netip.Addr, bool)
}

type leaseState uint8

const (
	stateFree leaseState = iota
	stateOffered
	stateBound
	stateReleased
	stateDeclined
)

type poolEntry struct {
	mac     MAC
	hasMAC  bool
	state   leaseState
	expires int64 // unix nanoseconds
}

// Pool is the discovery pool: a range of addresses leased in memory, with
// expiry. The same MAC gets the same address back while nobody else took
// it; free addresses are handed out round robin, so a released one is
// reused as late as possible. A Pool is not safe for concurrent use.
type Pool struct {
	first   uint32
	entries []poolEntry
	byMAC   map[MAC]uint32
	next    uint32
}

// NewPool makes a pool of the addresses from start to end, inclusive.
func NewPool(start, end netip.Addr) (*Pool, error) {
	if !start.Is4() || !end.Is4() {
		return nil, fmt.Errorf("discovery pool %s-%s: want IPv4 addresses", start, end)
	}
	s, e := u32(start), u32(end)
	if s > e {
		return nil, fmt.Errorf("discovery pool %s-%s: start is after end", start, end)
	}
	if n := uint64(e) - uint64(s) + 1; n > MaxPoolSize {
		return nil, fmt.Errorf("discovery pool %s-%s: %d addresses, more than the %d supported", start, end, n, MaxPoolSize)
	}
	return &Pool{first: s, entries: make([]poolEntry, e-s+1), byMAC: map[MAC]uint32{}}, nil
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func (p *Pool) index(a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		return 0, false
	}
	v := u32(a)
	if v < p.first || v-p.first >= uint32(len(p.entries)) {
		return 0, false
	}
	return v - p.first, true
}

func (p *Pool) addr(i uint32) netip.Addr { return addrOf(p.first + i) }

func (e *poolEntry) active(now int64) bool {
	switch e.state {
	case stateOffered, stateBound, stateDeclined:
		return e.expires > now
	}
	return false
}

// Size is the number of addresses in the pool.
func (p *Pool) Size() int { return len(p.entries) }

// Contains reports whether a is in the pool's range.
func (p *Pool) Contains(a netip.Addr) bool { _, ok := p.index(a); return ok }

// Held is the address mac holds or last held.
func (p *Pool) Held(mac MAC) (netip.Addr, bool) {
	i, ok := p.byMAC[mac]
	if !ok {
		return netip.Addr{}, false
	}
	return p.addr(i), true
}

// Available reports whether a may be leased to mac now: it is in the pool,
// not set aside after a decline, and nobody else holds it.
func (p *Pool) Available(mac MAC, a netip.Addr, now time.Time) bool {
	i, ok := p.index(a)
	if !ok {
		return false
	}
	e := &p.entries[i]
	if !e.active(now.UnixNano()) {
		return true
	}
	return e.state != stateDeclined && e.hasMAC && e.mac == mac
}

// Free is the next address, from where the last one was handed out, that
// nobody holds and skip does not refuse.
func (p *Pool) Free(now time.Time, skip func(netip.Addr) bool) (netip.Addr, bool) {
	n := uint32(len(p.entries))
	t := now.UnixNano()
	for k := uint32(0); k < n; k++ {
		i := (p.next + k) % n
		if p.entries[i].active(t) {
			continue
		}
		if a := p.addr(i); skip == nil || !skip(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Apply carries out a decision's change to the pool. Operations that no
// longer fit (an address out of range, a release by a MAC that does not
// hold it) change nothing.
func (p *Pool) Apply(op LeaseOp) {
	switch op.Kind {
	case LeaseOffer, LeaseBind:
		i, ok := p.index(op.Addr)
		if !ok {
			return
		}
		p.take(i, op.MAC)
		e := &p.entries[i]
		e.state, e.expires = stateOffered, op.Until.UnixNano()
		if op.Kind == LeaseBind {
			e.state = stateBound
		}
		p.next = (i + 1) % uint32(len(p.entries))
	case LeaseRelease:
		if i, ok := p.index(op.Addr); ok && p.entries[i].hasMAC && p.entries[i].mac == op.MAC {
			p.entries[i].state, p.entries[i].expires = stateReleased, 0
		}
	case LeaseWithdraw:
		if i, ok := p.byMAC[op.MAC]; ok && p.entries[i].state == stateOffered {
			p.entries[i].state, p.entries[i].expires = stateReleased, 0
		}
	case LeaseDecline:
		i, ok := p.index(op.Addr)
		if !ok {
			return
		}
		p.drop(i)
		p.entries[i] = poolEntry{state: stateDeclined, expires: op.Until.UnixNano()}
	}
}

// take gives entry i to mac: whoever held it before forgets it, and so does
// the entry mac held before.
func (p *Pool) take(i uint32, mac MAC) {
	if j, ok := p.byMAC[mac]; ok && j != i {
		p.entries[j] = poolEntry{}
	}
	p.drop(i)
	p.entries[i].mac, p.entries[i].hasMAC = mac, true
	p.byMAC[mac] = i
}

// drop detaches entry i from the MAC that held it.
func (p *Pool) drop(i uint32) {
	e := &p.entries[i]
	if e.hasMAC {
		if j, ok := p.byMAC[e.mac]; ok && j == i {
			delete(p.byMAC, e.mac)
		}
	}
	e.hasMAC = false
}

// MACAt is the MAC holding a bound, unexpired lease on a.
func (p *Pool) MACAt(a netip.Addr, now time.Time) (MAC, bool) {
	i, ok := p.index(a)
	if !ok {
		return MAC{}, false
	}
	e := &p.entries[i]
	if e.state != stateBound || !e.active(now.UnixNano()) || !e.hasMAC {
		return MAC{}, false
	}
	return e.mac, true
}

// Bound counts unexpired bound leases.
func (p *Pool) Bound(now time.Time) int {
	t, n := now.UnixNano(), 0
	for i := range p.entries {
		if p.entries[i].state == stateBound && p.entries[i].active(t) {
			n++
		}
	}
	return n
}
