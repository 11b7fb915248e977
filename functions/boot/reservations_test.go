package boot_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

func TestReservations(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	e.node(model.Node{Name: "node001", Interfaces: []model.Interface{
		{Name: "eth0", MAC: "52:54:00:12:34:56", Address: "10.0.0.5/16", Boot: true},
		{Name: "ib0", MAC: "52:54:00:12:34:01"},
		{Name: "eth1"}}})
	e.node(model.Node{Name: "node002", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:02", Address: "10.0.0.6"}}})

	for _, secret := range []string{"", "wrong"} {
		status, _, _ := e.do("GET", "/boot/reservations", nil, auth.HeaderEdgeSecret, secret)
		if status != 403 {
			t.Errorf("edge secret %q: %d, want 403", secret, status)
		}
	}
	status, h, raw := e.do("GET", "/boot/reservations", nil, auth.HeaderEdgeSecret, edgeSecret)
	var got model.Reservations
	if status != 200 || json.Unmarshal(raw, &got) != nil {
		t.Fatalf("%d %s", status, raw)
	}
	want := []model.Reservation{
		{MAC: "52:54:00:00:00:02", Node: "node002", Address: "10.0.0.6"},
		{MAC: "52:54:00:12:34:01", Node: "node001", Address: ""},
		{MAC: "52:54:00:12:34:56", Node: "node001", Address: "10.0.0.5/16"},
	}
	if !slices.Equal(got.Reservations, want) {
		t.Fatalf("reservations %+v, want %+v", got.Reservations, want)
	}
	etag := h.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}
	// The raw answer matches the contract byte for byte in shape.
	var rawMap map[string][]map[string]string
	if json.Unmarshal(raw, &rawMap) != nil || len(rawMap["reservations"]) != 3 || rawMap["reservations"][1]["address"] != "" {
		t.Fatalf("wire form: %s", raw)
	}

	// The edge's client: unchanged table, 304.
	bc := client.NewBoot(e.srv.URL, "", nil).WithEdgeSecret(edgeSecret)
	res, tag, changed, err := bc.Reservations(ctx, etag)
	if err != nil || changed || res != nil || tag != etag {
		t.Fatalf("unchanged: %v %v %q %v", res, changed, tag, err)
	}
	if status, _, _ := e.do("GET", "/boot/reservations", nil, auth.HeaderEdgeSecret, edgeSecret, "If-None-Match", `"other", W/`+etag); status != 304 {
		t.Errorf("If-None-Match list with a weak match: %d", status)
	}
	// A change to something else of a node keeps the tag.
	n, _ := e.st.GetNode(ctx, "node002")
	n.Tags = []string{"gpu"}
	if _, err := e.st.ReplaceNode(ctx, admin(), n, 0); err != nil {
		t.Fatal(err)
	}
	if _, tag, changed, _ = bc.Reservations(ctx, etag); changed {
		t.Errorf("a tag change changed the reservations")
	}
	// A new address changes it.
	n, _ = e.st.GetNode(ctx, "node002")
	n.Interfaces[0].Address = "10.0.0.7"
	if _, err := e.st.ReplaceNode(ctx, admin(), n, 0); err != nil {
		t.Fatal(err)
	}
	res, tag, changed, err = bc.Reservations(ctx, etag)
	if err != nil || !changed || tag == etag || res[0].Address != "10.0.0.7" {
		t.Fatalf("after an address change: %+v %q %v %v", res, tag, changed, err)
	}
	// And a deleted node's MACs go.
	if err := e.st.DeleteNode(ctx, admin(), "node001", 0); err != nil {
		t.Fatal(err)
	}
	res, _, changed, _ = bc.Reservations(ctx, tag)
	if !changed || len(res) != 1 {
		t.Fatalf("after deleting node001: %+v", res)
	}
}
