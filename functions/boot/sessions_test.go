package boot_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// bootNode defines a node with a complete image and boots it once,
// returning its session id and boot token.
func (e *env) bootNode(name, mac string) (id, token string) {
	e.t.Helper()
	if _, err := e.st.GetGroup(context.Background(), "compute"); err != nil {
		e.group(model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9"}})
		e.image("rocky9", boot.LiveBranch)
	}
	e.node(model.Node{Name: name, Group: "compute", Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(mac), Boot: true}}})
	status, _, body := e.get("/boot/ipxe?mac=" + mac + "&arch=x86_64&platform=efi")
	if status != 200 {
		e.t.Fatalf("boot %s: %d\n%s", name, status, body)
	}
	return bootParams(e.t, body)
}

func TestEventsWithBootToken(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	otherID, otherToken := e.bootNode("node002", "52:54:00:00:00:02")

	// The typed client, as bootenv uses it.
	bc := client.NewBoot(e.srv.URL, token, nil)
	ev, err := bc.PostEvent(ctx, id, model.BootEvent{Step: "disks", State: model.EventStart, Message: "mapping disk0..1"})
	if err != nil || ev.ID == "" || ev.Time.IsZero() {
		t.Fatalf("post event: %+v %v", ev, err)
	}
	if _, err := bc.PostEvent(ctx, id, model.BootEvent{Step: "disks", State: model.EventOK, DurationMS: 1250,
		Extras: map[string]string{"changed": "none"}}); err != nil {
		t.Fatal(err)
	}
	sess, _ := e.st.BootSession(ctx, id)
	if sess.State != model.BootRunning || sess.Step != "disks" {
		t.Fatalf("session after events: %+v", sess)
	}
	detail, err := bc.Session(ctx, id)
	if err != nil || detail.Session.ID != id || len(detail.Events) != 3 || detail.Events[2].DurationMS != 1250 ||
		detail.Events[2].Extras["changed"] != "none" {
		t.Fatalf("session detail: %+v %v", detail, err)
	}
	if _, err := bc.PostEvent(ctx, id, model.BootEvent{Step: "image", State: model.EventFail, Message: "blob 12ab… unreadable"}); err != nil {
		t.Fatal(err)
	}
	sess, _ = e.st.BootSession(ctx, id)
	if sess.State != model.BootFailed || sess.Reason != "image: blob 12ab… unreadable" {
		t.Fatalf("session after a failure: %+v", sess)
	}
	if _, err := bc.PostEvent(ctx, id, model.BootEvent{Step: model.StepDone, State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	if sess, _ = e.st.BootSession(ctx, id); sess.State != model.BootDone || sess.Reason != "" {
		t.Fatalf("session after done: %+v", sess)
	}

	body := `{"step":"plan","state":"ok"}`
	for _, c := range []struct {
		name, path, auth string
		status           int
		typ              string
	}{
		{"no token", "/boot/sessions/" + id + "/events", "", 401, "unauthorized"},
		{"bad token", "/boot/sessions/" + id + "/events", "Bearer hbt_nonsense", 401, "unauthorized"},
		{"token of another session", "/boot/sessions/" + id + "/events", "Bearer " + otherToken, 403, "forbidden"},
		{"malformed id", "/boot/sessions/xyz/events", "Bearer " + token, 404, "not-found"},
	} {
		status, h, raw := e.do("POST", c.path, strings.NewReader(body), "Authorization", c.auth, "Content-Type", "application/json")
		var p problem.Problem
		if status != c.status || h.Get("Content-Type") != problem.ContentType || json.Unmarshal(raw, &p) != nil ||
			p.Type != problem.TypeBase+c.typ || p.Detail == "" {
			t.Errorf("%s: %d %s %s", c.name, status, h.Get("Content-Type"), raw)
		}
		status, _, _ = e.do("GET", strings.TrimSuffix(c.path, "/events"), nil, "Authorization", c.auth)
		if status != c.status {
			t.Errorf("GET session with %s: %d, want %d", c.name, status, c.status)
		}
	}
	for _, bad := range []string{`{"step":"","state":"ok"}`, `{"step":"disks","state":"maybe"}`, `{"step":"disks","state":"ok","unknown":1}`, `not json`} {
		status, _, raw := e.do("POST", "/boot/sessions/"+otherID+"/events", strings.NewReader(bad), "Authorization", "Bearer "+otherToken)
		if status != http.StatusUnprocessableEntity && status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, status, raw)
		}
	}
	if events, _ := e.st.BootEvents(ctx, otherID); len(events) != 1 {
		t.Fatalf("refused events were stored: %+v", events)
	}
}
