package dhcp

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNewPoolRefuses(t *testing.T) {
	for _, tt := range []struct{ start, end, want string }{
		{"10.0.1.20", "10.0.1.10", "start is after end"},
		{"10.0.0.0", "10.255.255.255", "more than"},
		{"::1", "::2", "IPv4"},
	} {
		if _, err := NewPool(ip(tt.start), ip(tt.end)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewPool(%s, %s) = %v, want %q", tt.start, tt.end, err, tt.want)
		}
	}
	p, err := NewPool(ip("10.0.0.7"), ip("10.0.0.7"))
	if err != nil || p.Size() != 1 {
		t.Fatalf("single-address pool: %v", err)
	}
}

func TestPoolLifecycle(t *testing.T) {
	now := testNowT()
	p := testPool(t)
	a, b := mac(t, macUnknown), mac(t, macOther)

	// Offer, then bind: the address is a's and nobody else's.
	addr, ok := p.Free(now, nil)
	if !ok || addr != ip("10.0.1.10") {
		t.Fatalf("Free = %v %v", addr, ok)
	}
	p.Apply(LeaseOp{Kind: LeaseOffer, MAC: a, Addr: addr, Until: now.Add(offerHold)})
	if p.Available(b, addr, now) || !p.Available(a, addr, now) {
		t.Error("an offered address is not set aside for its MAC")
	}
	if _, ok := p.MACAt(addr, now); ok {
		t.Error("an offer counts as a lease")
	}
	p.Apply(LeaseOp{Kind: LeaseBind, MAC: a, Addr: addr, Until: now.Add(time.Hour)})
	if m, ok := p.MACAt(addr, now); !ok || m != a || p.Bound(now) != 1 {
		t.Errorf("MACAt after bind = %v %v", m, ok)
	}

	// An offer nobody requests lapses.
	if !p.Available(b, ip("10.0.1.11"), now) {
		t.Fatal("fresh address unavailable")
	}
	p.Apply(LeaseOp{Kind: LeaseOffer, MAC: b, Addr: ip("10.0.1.11"), Until: now.Add(offerHold)})
	if !p.Available(a, ip("10.0.1.11"), now.Add(offerHold+time.Second)) {
		t.Error("a lapsed offer still holds the address")
	}

	// The lease expires; a keeps first claim on it until someone takes it.
	later := now.Add(2 * time.Hour)
	if _, ok := p.MACAt(addr, later); ok {
		t.Error("expired lease still bound")
	}
	if held, ok := p.Held(a); !ok || held != addr {
		t.Errorf("Held after expiry = %v %v", held, ok)
	}

	// Moving a to another address frees the old one entirely.
	p.Apply(LeaseOp{Kind: LeaseBind, MAC: a, Addr: ip("10.0.1.15"), Until: later.Add(time.Hour)})
	if held, _ := p.Held(a); held != ip("10.0.1.15") {
		t.Errorf("Held after move = %v", held)
	}
	if !p.Available(b, addr, later) {
		t.Error("old address still taken after its MAC moved")
	}

	// Taking an address away from a MAC makes it forget it.
	p.Apply(LeaseOp{Kind: LeaseOffer, MAC: b, Addr: ip("10.0.1.15"), Until: later.Add(3 * time.Hour)})
	if _, ok := p.Held(a); ok {
		t.Error("a still holds the address b took over")
	}

	// A release by someone who does not hold it changes nothing.
	p.Apply(LeaseOp{Kind: LeaseRelease, MAC: a, Addr: ip("10.0.1.15")})
	if p.Available(a, ip("10.0.1.15"), later) {
		t.Error("foreign release freed b's offer")
	}
	// Operations outside the range are ignored.
	p.Apply(LeaseOp{Kind: LeaseBind, MAC: a, Addr: ip("10.9.9.9"), Until: later})
	p.Apply(LeaseOp{Kind: LeaseDecline, MAC: a, Addr: ip("10.9.9.9"), Until: later})
	if p.Contains(ip("10.9.9.9")) || p.Contains(ip("10.0.1.21")) || !p.Contains(ip("10.0.1.20")) {
		t.Error("Contains is wrong at the edges")
	}
}

func TestPoolRoundRobinAndWrap(t *testing.T) {
	now := testNowT()
	p := testPool(t) // 11 addresses
	var got []string
	for i := 0; i < 11; i++ {
		m := mac(t, fmt.Sprintf("52:54:00:00:03:%02x", i))
		a, ok := p.Free(now, nil)
		if !ok {
			t.Fatalf("pool empty after %d", i)
		}
		p.Apply(LeaseOp{Kind: LeaseBind, MAC: m, Addr: a, Until: now.Add(time.Duration(i+1) * time.Minute)})
		got = append(got, a.String())
	}
	if got[0] != "10.0.1.10" || got[10] != "10.0.1.20" {
		t.Errorf("handed out %v", got)
	}
	if _, ok := p.Free(now, nil); ok {
		t.Error("a full pool found a free address")
	}
	// After 90 s the first lease (1 min) has expired: it is the one reused.
	if a, ok := p.Free(now.Add(90*time.Second), nil); !ok || a != ip("10.0.1.10") {
		t.Errorf("after expiry Free = %v %v", a, ok)
	}
}

// TestPoolLarge hands out a /16's worth quickly: round robin keeps Free
// from rescanning the taken part.
func TestPoolLarge(t *testing.T) {
	now := testNowT()
	p, err := NewPool(ip("10.1.0.0"), ip("10.1.255.255"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < p.Size(); i++ {
		a, ok := p.Free(now, nil)
		if !ok {
			t.Fatalf("exhausted at %d", i)
		}
		var m MAC
		m[2], m[3], m[4], m[5] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		p.Apply(LeaseOp{Kind: LeaseBind, MAC: m, Addr: a, Until: now.Add(time.Hour)})
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("65536 leases took %v", took)
	}
	if p.Bound(now) != 65536 {
		t.Errorf("bound %d", p.Bound(now))
	}
}
