package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// openTest opens a store over a fresh prefix of the real Redis, with a
// clock the test sets.
func openTest(t testing.TB) (*Store, *time.Time) {
	t.Helper()
	s, err := Open(context.Background(), Config{RedisURL: testenv.RedisURL(t), Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	return s, &now
}

func testMAC(i int) model.MAC {
	return model.MAC(fmt.Sprintf("02:00:00:00:%02x:%02x", byte(i>>8), byte(i)))
}

func TestDiscoverUpserts(t *testing.T) {
	s, now := openTest(t)
	ctx := context.Background()
	first := *now
	d, err := s.Discover(ctx, model.Discovered{MAC: testMAC(1), Arch: "x86_64", Product: "R650\x00\x07", Serial: strings.Repeat("é", 100)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count != 1 || !d.FirstSeen.Equal(first) || d.Product != "R650" || len(d.Serial) != 128 || !strings.HasSuffix(d.Serial, "é") {
		t.Fatalf("first sighting: %+v", d)
	}
	*now = now.Add(time.Minute)
	d, err = s.Discover(ctx, model.Discovered{MAC: testMAC(1), Platform: "efi"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count != 2 || !d.FirstSeen.Equal(first) || !d.LastSeen.Equal(*now) || d.Arch != "x86_64" || d.Platform != "efi" || d.Product != "R650" {
		t.Fatalf("second sighting: %+v", d)
	}
}

func TestDiscoverCapAndPages(t *testing.T) {
	s, now := openTest(t)
	ctx := context.Background()
	// 250 machines, five per millisecond, so pages cut through ties.
	for i := range 250 {
		if i%5 == 0 {
			*now = now.Add(time.Millisecond)
		}
		if _, err := s.Discover(ctx, model.Discovered{MAC: testMAC(i)}, 200); err != nil {
			t.Fatal(err)
		}
	}
	var got []model.MAC
	opts := ListOptions{Limit: 7}
	for {
		page, err := s.ListDiscovered(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 200 || page.Evicted != 50 {
			t.Fatalf("total %d, evicted %d; want 200, 50", page.Total, page.Evicted)
		}
		for _, d := range page.Items {
			got = append(got, d.MAC)
		}
		if page.Next == "" {
			break
		}
		opts.Cursor = page.Next
	}
	if len(got) != 200 {
		t.Fatalf("%d entries over all pages, want 200", len(got))
	}
	seen := map[model.MAC]bool{}
	for i, m := range got {
		if seen[m] {
			t.Fatalf("%s listed twice", m)
		}
		seen[m] = true
		if i > 0 && !(macIndex(got[i-1])/5 > macIndex(m)/5 || macIndex(got[i-1])/5 == macIndex(m)/5 && got[i-1] > m) {
			t.Fatalf("%s listed before %s: not newest first", got[i-1], m)
		}
	}
	if seen[testMAC(49)] || !seen[testMAC(50)] {
		t.Fatalf("the oldest were not the ones evicted")
	}
	if _, err := s.ListDiscovered(ctx, ListOptions{Cursor: "nonsense"}); !IsKind(err, KindInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func macIndex(m model.MAC) int {
	var a, b int
	fmt.Sscanf(string(m), "02:00:00:00:%02x:%02x", &a, &b)
	return a<<8 | b
}

// TestAssignRace: two admins assign the same machine at once; exactly one
// wins and the other is told why.
func TestAssignRace(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a := Actor{User: "test"}
	for _, n := range []string{"node001", "node002"} {
		if _, err := s.CreateNode(ctx, a, model.Node{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 20 {
		m := testMAC(round)
		if _, err := s.Discover(ctx, model.Discovered{MAC: m}, 0); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, n := range []string{"node001", "node002"} {
			wg.Go(func() { _, _, errs[i] = s.AssignDiscovered(ctx, a, m, model.AssignRequest{Node: n}) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case IsKind(err, KindNotFound), IsKind(err, KindConflict):
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d assignments won: %v", round, won, errs)
		}
	}
	page, _ := s.Audit(ctx, AuditQuery{Method: "assign", Limit: 1000})
	if len(page.Items) != 20 {
		t.Fatalf("%d audit events, want 20", len(page.Items))
	}
}
