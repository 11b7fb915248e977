package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

func testSession(i int, node string, expires time.Time) model.BootSession {
	return model.BootSession{ID: fmt.Sprintf("%032x", i), Node: node, MAC: testMAC(1), State: model.BootScriptSent, Expires: expires}
}

func TestBootSessionsKeepTheLast50(t *testing.T) {
	s, now := openTest(t)
	ctx := context.Background()
	for i := range RecentBootsPerNode + 10 {
		*now = now.Add(time.Second)
		sess := testSession(i, "node001", time.Now().Add(time.Hour))
		if err := s.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.BootSessions(ctx, "node001", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != RecentBootsPerNode || list[0].ID != fmt.Sprintf("%032x", RecentBootsPerNode+9) || list[49].ID != fmt.Sprintf("%032x", 10) {
		t.Fatalf("%d sessions, %s..%s", len(list), list[0].ID, list[len(list)-1].ID)
	}
	if list, _ := s.BootSessions(ctx, "node001", 3); len(list) != 3 {
		t.Fatalf("limit 3: %d", len(list))
	}
	if list, _ := s.BootSessions(ctx, "", 0); len(list) != RecentBootsPerNode+10 {
		t.Fatalf("cluster-wide: %d", len(list))
	}
	// An expired session leaves the lists.
	if err := s.rdb.Del(ctx, s.bootSessionKey(list[0].ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.BootSessions(ctx, "node001", 0); len(list) != RecentBootsPerNode-1 {
		t.Fatalf("after expiry: %d", len(list))
	}
	if n, _ := s.rdb.ZCard(ctx, s.bootNodeKey("node001")).Result(); n != RecentBootsPerNode-1 {
		t.Fatalf("the expired id stays listed: %d", n)
	}
}

func TestBootEventsFollowAndCap(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	sess := testSession(1, "node001", time.Now().Add(time.Hour))
	if err := s.OpenBootSession(ctx, sess, "hash1", time.Minute, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	// Every key of the session expires with it.
	for _, k := range []string{s.bootSessionKey(sess.ID), s.bootEventsKey(sess.ID), s.bootNodeKey("node001")} {
		if ttl, _ := s.rdb.TTL(ctx, k).Result(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s: TTL %v", k, ttl)
		}
	}
	if ttl, _ := s.rdb.TTL(ctx, s.bootTokenKey("hash1")).Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("token TTL %v", ttl)
	}
	// Using the token keeps it alive longer.
	if id, err := s.BootTokenSession(ctx, "hash1", 10*time.Minute); err != nil || id != sess.ID {
		t.Fatalf("token: %q %v", id, err)
	}
	if ttl, _ := s.rdb.TTL(ctx, s.bootTokenKey("hash1")).Result(); ttl < 9*time.Minute {
		t.Errorf("token TTL after use %v", ttl)
	}
	if _, err := s.BootTokenSession(ctx, "nope", 0); !IsKind(err, KindUnauthorized) {
		t.Fatalf("unknown token: %v", err)
	}

	// From the start, then only what is new; a follower waits for it.
	items, after, err := s.BootEventsAfter(ctx, sess.ID, "", 0)
	if err != nil || len(items) != 1 {
		t.Fatalf("from the start: %+v %v", items, err)
	}
	got := make(chan []model.BootEvent, 1)
	go func() {
		items, _, _ := s.BootEventsAfter(ctx, sess.ID, after, 5*time.Second)
		got <- items
	}()
	time.Sleep(50 * time.Millisecond)
	if _, _, err := s.AddBootEvent(ctx, sess.ID, model.BootEvent{Step: "plan", State: model.EventStart}); err != nil {
		t.Fatal(err)
	}
	select {
	case items := <-got:
		if len(items) != 1 || items[0].Step != "plan" {
			t.Fatalf("followed %+v", items)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not wake up")
	}
	if items, _, _ := s.BootEventsAfter(ctx, sess.ID, "$", 0); len(items) != 0 {
		t.Fatalf("$ returned old events: %+v", items)
	}

	// A chatty node cannot grow its timeline without bound.
	for i := range MaxBootEvents + 500 {
		if _, _, err := s.AddBootEvent(ctx, sess.ID, model.BootEvent{Step: "image", State: model.EventInfo, Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, _ := s.rdb.XLen(ctx, s.bootEventsKey(sess.ID)).Result()
	if n < MaxBootEvents || n > MaxBootEvents+200 {
		t.Fatalf("timeline holds %d events, want about %d", n, MaxBootEvents)
	}
	// Events need a session.
	if _, _, err := s.AddBootEvent(ctx, fmt.Sprintf("%032x", 99), model.BootEvent{Step: "plan", State: model.EventOK}); !IsKind(err, KindNotFound) {
		t.Fatalf("event for no session: %v", err)
	}
	if n, _ := s.rdb.Exists(ctx, s.bootSessionKey(fmt.Sprintf("%032x", 99))).Result(); n != 0 {
		t.Fatal("an event created a session")
	}
}

// TestNodeStateFollowsItsBoot checks the node's state moves with its boot
// session: provisioning when the script goes out, up when bootenv is done,
// error when a step fails; without a revision bump or audit event.
func TestNodeStateFollowsItsBoot(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	if _, err := s.CreateNode(ctx, Actor{User: "t"}, model.Node{Name: "node007"}); err != nil {
		t.Fatal(err)
	}
	audit := func() int {
		p, err := s.Audit(ctx, AuditQuery{Ref: "node007"})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Items)
	}
	before := audit()
	check := func(want model.NodeState) {
		t.Helper()
		n, err := s.GetNode(ctx, "node007")
		if err != nil {
			t.Fatal(err)
		}
		if n.State != want || n.Revision != 1 {
			t.Errorf("state %q revision %d, want %q and 1", n.State, n.Revision, want)
		}
	}
	check(model.StateNew)
	sess := testSession(1, "node007", time.Now().Add(time.Hour))
	if err := s.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	check(model.StateProvisioning)
	if _, _, err := s.AddBootEvent(ctx, sess.ID, model.BootEvent{Step: model.StepDone, State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	check(model.StateUp)
	sess = testSession(2, "node007", time.Now().Add(time.Hour))
	if err := s.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddBootEvent(ctx, sess.ID, model.BootEvent{Step: "disks", State: model.EventFail, Message: "disk0 not found"}); err != nil {
		t.Fatal(err)
	}
	check(model.StateError)
	if audit() != before {
		t.Error("state changes wrote audit events")
	}
	// A session whose node is gone goes on without touching anything.
	if err := s.DeleteNode(ctx, Actor{User: "t"}, "node007", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddBootEvent(ctx, sess.ID, model.BootEvent{Step: "disks", State: model.EventInfo}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNode(ctx, "node007"); !IsKind(err, KindNotFound) {
		t.Errorf("deleted node came back: %v", err)
	}
}
