package boot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// adminClient serves the REST API beside the boot function, over the same
// store, and returns a client logged in as an admin.
func (e *env) adminClient() *client.Client {
	e.t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword("correct horse battery")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateUser(ctx, admin(), "alice", model.RoleAdmin, hash); err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(e.st, e.au, e.log))
	e.t.Cleanup(srv.Close)
	c := client.New(srv.URL, "", nil)
	lr, err := c.Login(ctx, "alice", "correct horse battery")
	if err != nil {
		e.t.Fatal(err)
	}
	return c.WithToken(lr.Token)
}

// TestUnknownToAssignedBoots is the new-node workflow: a machine boots
// unknown, shows up as discovered, an admin assigns it, and its next retry
// boots it as the node.
func TestUnknownToAssignedBoots(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	c := e.adminClient()
	e.group(model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9"}})
	e.image("rocky9", boot.LiveBranch)
	e.node(model.Node{Name: "node001", Group: "compute", Interfaces: []model.Interface{{Name: "eth0", Address: "10.0.0.5/16", Boot: true}}})

	const mac = "52:54:00:00:01:01"
	retry := "/boot/ipxe?mac=" + mac + "&arch=x86_64&platform=pcbios&product=R650&serial=ABC123"
	if status, _, body := e.get(retry); status != 200 || !strings.Contains(string(body), "not assigned yet") {
		t.Fatalf("unknown: %d\n%s", status, body)
	}
	all, err := c.AllDiscovered(ctx)
	if err != nil || len(all) != 1 || all[0].MAC != mac || all[0].Product != "R650" || all[0].Serial != "ABC123" {
		t.Fatalf("discovered: %+v %v", all, err)
	}
	one, err := c.GetDiscovered(ctx, "52-54-00-00-01-01")
	if err != nil || one.Count != 1 {
		t.Fatalf("one: %+v %v", one, err)
	}

	n, err := c.AssignDiscovered(ctx, mac, model.AssignRequest{Node: "node001"})
	if err != nil || n.Interfaces[0].MAC != mac || !n.Interfaces[0].Boot || n.Interfaces[0].Address != "10.0.0.5/16" || n.Revision != 2 {
		t.Fatalf("assign: %+v %v", n, err)
	}
	if all, _ := c.AllDiscovered(ctx); len(all) != 0 {
		t.Fatalf("still discovered: %+v", all)
	}
	audit, err := c.Audit(ctx, client.AuditQuery{Method: "assign"})
	if err != nil || len(audit.Items) != 1 || audit.Items[0].User != "alice" ||
		audit.Items[0].Extras["interface"] != "eth0" || audit.Items[0].Extras["product"] != "R650" {
		t.Fatalf("audit: %+v %v", audit.Items, err)
	}

	// The machine's next retry boots it as node001.
	status, _, body := e.get(retry)
	if status != 200 || !strings.Contains(string(body), "herd: booting node001 (MAC "+mac+")") {
		t.Fatalf("after assign: %d\n%s", status, body)
	}
	id, token := bootParams(t, body)

	// Admins see the session and follow it live, as `herd boot watch`.
	list, err := c.BootSessions(ctx, "node001", 0)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("sessions: %+v %v", list, err)
	}
	bc := client.NewBoot(e.srv.URL, token, nil)
	var seen []string
	done := make(chan error, 1)
	go func() {
		_, err := c.WatchBootSession(ctx, id, func(s model.BootSession, ev model.BootEvent) error {
			seen = append(seen, ev.Step+":"+string(ev.State))
			return nil
		})
		done <- err
	}()
	for _, ev := range []model.BootEvent{{Step: "plan", State: model.EventOK}, {Step: "image", State: model.EventOK}, {Step: model.StepDone, State: model.EventOK}} {
		time.Sleep(20 * time.Millisecond)
		if _, err := bc.PostEvent(ctx, id, ev); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end when the session was done")
	}
	if strings.Join(seen, " ") != "ipxe:ok plan:ok image:ok done:ok" {
		t.Fatalf("watched %v", seen)
	}
	detail, err := c.BootSession(ctx, id)
	if err != nil || detail.Session.State != model.BootDone || len(detail.Events) != 4 {
		t.Fatalf("detail: %+v %v", detail, err)
	}
}

func TestAssignVariants(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	c := e.adminClient()
	e.group(model.Group{Name: "compute"})
	discover := func(mac string) {
		t.Helper()
		if status, _, _ := e.get("/boot/ipxe?mac=" + mac); status != 200 {
			t.Fatalf("discover %s: %d", mac, status)
		}
	}

	// The boot interface has a MAC already: a new eth<N> gets this one.
	e.node(model.Node{Name: "node010", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:10:00", Boot: true}, {Name: "eth1"}}})
	discover("52:54:00:00:10:01")
	n, err := c.AssignDiscovered(ctx, "52:54:00:00:10:01", model.AssignRequest{Node: "node010"})
	if err != nil || len(n.Interfaces) != 3 || n.Interfaces[2] != (model.Interface{Name: "eth2", MAC: "52:54:00:00:10:01"}) {
		t.Fatalf("busy boot interface: %+v %v", n.Interfaces, err)
	}
	// No interface at all: eth0 becomes the boot interface.
	e.node(model.Node{Name: "node011"})
	discover("52:54:00:00:11:01")
	n, err = c.AssignDiscovered(ctx, "52:54:00:00:11:01", model.AssignRequest{Node: "node011"})
	if err != nil || len(n.Interfaces) != 1 || n.Interfaces[0] != (model.Interface{Name: "eth0", MAC: "52:54:00:00:11:01", Boot: true}) {
		t.Fatalf("no interface: %+v %v", n.Interfaces, err)
	}
	// Create the node from the machine.
	discover("52:54:00:00:42:01")
	n, err = c.AssignDiscovered(ctx, "52:54:00:00:42:01", model.AssignRequest{Node: "node042", Create: true, Group: "compute"})
	if err != nil || n.Group != "compute" || n.State != model.StateNew || n.Interfaces[0] != (model.Interface{Name: "eth0", MAC: "52:54:00:00:42:01", Boot: true}) {
		t.Fatalf("create: %+v %v", n, err)
	}
	// A MAC that a node has got meanwhile is refused, and not listed.
	discover("52:54:00:00:50:01")
	e.node(model.Node{Name: "node050", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:50:01"}}})
	_, err = c.AssignDiscovered(ctx, "52:54:00:00:50:01", model.AssignRequest{Node: "node011"})
	if !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("taken MAC: %v", err)
	}
	if all, _ := c.AllDiscovered(ctx); len(all) != 0 {
		t.Fatalf("listed: %+v", all)
	}
	for _, bad := range []struct {
		name   string
		mac    string
		req    model.AssignRequest
		status int
	}{
		{"unknown node", "52:54:00:00:60:01", model.AssignRequest{Node: "node999"}, 404},
		{"create an existing node", "52:54:00:00:60:01", model.AssignRequest{Node: "node010", Create: true}, 409},
		{"create in a missing group", "52:54:00:00:60:01", model.AssignRequest{Node: "node060", Create: true, Group: "nope"}, 422},
		{"bad node name", "52:54:00:00:60:01", model.AssignRequest{Node: "bad name"}, 422},
		{"never discovered", "52:54:00:00:70:01", model.AssignRequest{Node: "node010"}, 404},
		{"no MAC", "zz", model.AssignRequest{Node: "node010"}, 400},
	} {
		discover("52:54:00:00:60:01")
		if _, err := c.AssignDiscovered(ctx, model.MAC(bad.mac), bad.req); !client.IsStatus(err, bad.status) {
			t.Errorf("%s: %v, want %d", bad.name, err, bad.status)
		}
	}
	// Forgetting is audited; the entry is gone until the machine asks again.
	if err := c.ForgetDiscovered(ctx, "52:54:00:00:60:01"); err != nil {
		t.Fatal(err)
	}
	if err := c.ForgetDiscovered(ctx, "52:54:00:00:60:01"); !client.IsStatus(err, 404) {
		t.Fatalf("forget twice: %v", err)
	}
	page, _ := e.st.Audit(ctx, store.AuditQuery{Kind: "discovery"})
	if len(page.Items) != 1 || page.Items[0].Method != "delete" || page.Items[0].Refs[0] != "mac/52:54:00:00:60:01" {
		t.Fatalf("audit: %+v", page.Items)
	}
	page, _ = e.st.Audit(ctx, store.AuditQuery{Method: "assign"})
	if len(page.Items) != 3 {
		t.Fatalf("%d assign events, want 3", len(page.Items))
	}
}

// TestWatchNodeBoots follows a node across a reboot, as `herd boot watch
// node001` does: the first session's events, then the new session's.
func TestWatchNodeBoots(t *testing.T) {
	e := newEnv(t, boot.Config{})
	c := e.adminClient()
	id1, token1 := e.bootNode("node001", "52:54:00:00:00:01")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type seen struct{ session, step string }
	got := make(chan seen, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.WatchNodeBoots(ctx, "node001", 100*time.Millisecond, func(s model.BootSession, ev model.BootEvent) error {
			got <- seen{s.ID, ev.Step}
			return nil
		})
	}()
	next := func() seen {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return seen{}
		}
	}
	if s := next(); s != (seen{id1, "ipxe"}) {
		t.Fatalf("first: %+v", s)
	}
	if _, err := client.NewBoot(e.srv.URL, token1, nil).PostEvent(ctx, id1, model.BootEvent{Step: "plan", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	if s := next(); s != (seen{id1, "plan"}) {
		t.Fatalf("second: %+v", s)
	}
	// The node reboots: a new session.
	status, _, body := e.get("/boot/ipxe?mac=52:54:00:00:00:01&arch=x86_64&platform=efi")
	id2, _ := bootParams(t, body)
	if status != 200 || id2 == id1 {
		t.Fatalf("reboot: %d %s", status, id2)
	}
	if s := next(); s != (seen{id2, "ipxe"}) {
		t.Fatalf("after the reboot: %+v", s)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the watch ended without an error when its context did")
	}
}
