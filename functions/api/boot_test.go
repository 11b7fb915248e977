package api_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// TestOpenAPIBootSchemasMatchTypes is TestOpenAPISchemasMatchTypes for the
// boot and discovery types.
func TestOpenAPIBootSchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"BootSession": model.BootSession{}, "BootEvent": model.BootEvent{}, "BootSessionDetail": model.BootSessionDetail{},
		"BootFollowReply": model.BootFollowReply{}, "BootSessionPage": model.Page[model.BootSession]{},
		"Discovered": model.Discovered{}, "DiscoveredPage": model.DiscoveredPage{}, "AssignRequest": model.AssignRequest{},
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if want := jsonFields(reflect.TypeOf(v)); !slices.Equal(props, want) {
			t.Errorf("schema %s has %v, the Go type has %v", name, props, want)
		}
	}
}

func openSession(t *testing.T, st *store.Store, i int, node string) string {
	t.Helper()
	id := fmt.Sprintf("%032x", i)
	err := st.OpenBootSession(context.Background(), model.BootSession{ID: id, Node: node, MAC: "52:54:00:00:00:01",
		State: model.BootScriptSent, Expires: time.Now().Add(time.Hour)}, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBootSessionsAPI(t *testing.T) {
	e := newEnv(t)
	first := openSession(t, e.st, 1, "node001")
	second := openSession(t, e.st, 2, "node001")
	openSession(t, e.st, 3, "node002")

	var page model.Page[model.BootSession]
	e.must("GET", "/boot/sessions?node=node001", e.readonly, nil, 200, &page)
	if page.Total != 2 || page.Items[0].ID != second || page.Items[1].ID != first {
		t.Fatalf("node001's sessions: %+v", page)
	}
	e.must("GET", "/boot/sessions?limit=2", e.readonly, nil, 200, &page)
	if len(page.Items) != 2 || page.Items[0].Node != "node002" {
		t.Fatalf("cluster's sessions: %+v", page)
	}
	e.problemOf("GET", "/boot/sessions?node=bad%20name", e.readonly, nil, 400)
	e.problemOf("GET", "/boot/sessions?limit=0", e.readonly, nil, 400)

	var detail model.BootSessionDetail
	e.must("GET", "/boot/sessions/"+first, e.readonly, nil, 200, &detail)
	if detail.Session.ID != first || len(detail.Events) != 1 || detail.Events[0].Step != "ipxe" {
		t.Fatalf("detail: %+v", detail)
	}
	e.problemOf("GET", "/boot/sessions/"+fmt.Sprintf("%032x", 99), e.readonly, nil, 404)
	e.problemOf("GET", "/boot/sessions/not-an-id", e.readonly, nil, 404)

	// Follow: everything from the start, then a long poll woken by a new
	// event, with the session's new state.
	var fr model.BootFollowReply
	e.must("GET", "/boot/sessions/"+first+"/follow?wait=0s", e.readonly, nil, 200, &fr)
	if len(fr.Items) != 1 || fr.After == "" || fr.Session.State != model.BootScriptSent {
		t.Fatalf("follow from the start: %+v", fr)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _, _ = e.st.AddBootEvent(context.Background(), first, model.BootEvent{Step: "plan", State: model.EventStart})
	}()
	start := time.Now()
	after := fr.After
	e.must("GET", "/boot/sessions/"+first+"/follow?wait=10s&after="+after, e.readonly, nil, 200, &fr)
	if len(fr.Items) != 1 || fr.Items[0].Step != "plan" || fr.Session.State != model.BootRunning || time.Since(start) > 5*time.Second {
		t.Fatalf("long poll: %+v after %v", fr, time.Since(start))
	}
	e.must("GET", "/boot/sessions/"+first+"/follow?wait=0s&after="+fr.After, e.readonly, nil, 200, &fr)
	if len(fr.Items) != 0 {
		t.Fatalf("nothing new, got %+v", fr.Items)
	}
	e.problemOf("GET", "/boot/sessions/"+first+"/follow?wait=2m", e.readonly, nil, 400)
	e.problemOf("GET", "/boot/sessions/"+fmt.Sprintf("%032x", 99)+"/follow?wait=0s", e.readonly, nil, 404)
}

func TestDiscoveredAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i, mac := range []model.MAC{"52:54:00:00:00:01", "52:54:00:00:00:02"} {
		if _, err := e.st.Discover(ctx, model.Discovered{MAC: mac, Product: fmt.Sprint("R", i)}, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	var page model.DiscoveredPage
	e.must("GET", "/discovered?limit=1", e.readonly, nil, 200, &page)
	if page.Total != 2 || len(page.Items) != 1 || page.Items[0].MAC != "52:54:00:00:00:02" || page.Next == "" {
		t.Fatalf("first page: %+v", page)
	}
	next := page.Next
	page = model.DiscoveredPage{}
	e.must("GET", "/discovered?limit=1&cursor="+next, e.readonly, nil, 200, &page)
	if len(page.Items) != 1 || page.Items[0].MAC != "52:54:00:00:00:01" || page.Next != "" {
		t.Fatalf("second page: %+v", page)
	}
	e.problemOf("GET", "/discovered?cursor=garbage", e.readonly, nil, 422)

	var d model.Discovered
	e.must("GET", "/discovered/52-54-00-00-00-01", e.readonly, nil, 200, &d)
	if d.Product != "R0" || d.Count != 1 {
		t.Fatalf("entry: %+v", d)
	}
	e.problemOf("GET", "/discovered/52:54:00:00:00:09", e.readonly, nil, 404)
	e.problemOf("GET", "/discovered/nonsense", e.readonly, nil, 400)

	// Read-only accounts look but do not touch.
	e.problemOf("POST", "/discovered/52:54:00:00:00:01/assign", e.readonly, model.AssignRequest{Node: "node001", Create: true}, 403)
	e.problemOf("DELETE", "/discovered/52:54:00:00:00:01", e.readonly, nil, 403)
	e.problemOf("POST", "/discovered/52:54:00:00:00:01/assign", e.admin, `{"node":"node001","colour":"red"}`, 400)
	e.problemOf("POST", "/discovered/52:54:00:00:00:01/assign", e.admin, model.AssignRequest{Node: "node001", Group: "compute"}, 422)

	before := e.auditCount()
	var n model.Node
	h := e.must("POST", "/discovered/52:54:00:00:00:01/assign", e.admin, model.AssignRequest{Node: "node001", Create: true}, 201, &n)
	if n.Name != "node001" || n.Interfaces[0].MAC != "52:54:00:00:00:01" || h.Get("Location") != "/api/v1/nodes/node001" || h.Get("ETag") != `"1"` {
		t.Fatalf("created %+v %v", n, h)
	}
	e.must("DELETE", "/discovered/52:54:00:00:00:02", e.admin, nil, 204, nil)
	if e.auditCount() != before+2 {
		t.Fatalf("audit events: %d, want %d", e.auditCount(), before+2)
	}
	page = model.DiscoveredPage{}
	e.must("GET", "/discovered", e.readonly, nil, 200, &page)
	if page.Total != 0 || len(page.Items) != 0 {
		t.Fatalf("left: %+v", page)
	}
}
