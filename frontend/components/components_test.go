package components

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"

	"github.com/herd-hpc/herd/functions/model"
)

// TestMain registers -update, which rewrites the golden files from what
// the components render now: go test ./frontend/components -update.
func TestMain(m *testing.M) {
	flag.Bool("update", false, "rewrite testdata/*.golden from the current output")
	flag.Parse()
	os.Exit(m.Run())
}

func updating() bool { return flag.Lookup("update").Value.String() == "true" }

// golden renders c and compares it with testdata/name.golden.
func golden(t *testing.T, name string, c templ.Component) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	got := indent(t, buf.Bytes())
	path := filepath.Join("testdata", name+".golden")
	if updating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./frontend/components -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s; if the change is meant, run go test ./frontend/components -update\ngot:\n%s", name, path, got)
	}
}

// indent writes HTML one tag or text per line, indented by depth, so that
// a golden file's diff shows what changed.
func indent(t *testing.T, page []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	depth := 0
	z := html.NewTokenizer(bytes.NewReader(page))
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatalf("tokenize rendered HTML: %v", z.Err())
			}
			return out.Bytes()
		case html.EndTagToken:
			depth = max(depth-1, 0)
		case html.TextToken:
			if len(bytes.TrimSpace(z.Raw())) == 0 {
				continue
			}
		}
		out.WriteString(strings.Repeat("  ", depth))
		out.Write(bytes.TrimSpace(z.Raw()))
		out.WriteByte('\n')
		if tt == html.StartTagToken {
			name, _ := z.TagName()
			if !voidElement(string(name)) {
				depth++
			}
		}
	}
}

// voidElement reports whether an element has no end tag.
func voidElement(name string) bool {
	switch name {
	case "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr":
		return true
	}
	return false
}

func day(h int) time.Time { return time.Date(2026, 1, 2, h, 4, 5, 0, time.UTC) }

func TestNodesTable(t *testing.T) {
	eff := model.Settings{Image: "rocky-9.4", Branch: "live"}
	v := NodesView{
		Filter: NodeFilter{Q: "node[001-003]", Group: "compute", Limit: 100, Cursor: "node000"},
		Groups: []string{"compute", "gpu"},
		Nodes: []model.Node{
			{Name: "node001", Group: "compute", State: model.StateUp, Effective: &eff,
				Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:01", Address: "10.1.0.1/16", Boot: true}},
				BMC:        model.BMC{Address: "10.2.0.1"}, Tags: []string{"rack1", "ib"}},
			{Name: "node002", Group: "compute", State: model.StateError, Settings: model.Settings{Image: "test-image"},
				Effective: &model.Settings{Image: "test-image", Branch: "live"}},
		},
		Total: 3,
		Next:  "node002",
	}
	golden(t, "nodes_table", NodesTable(v, true))
	golden(t, "nodes_table_readonly", NodesTable(v, false))
}

func TestNodeFormWithErrors(t *testing.T) {
	f := NodeForm{
		Form: Form{
			Errors:   map[string]string{"interfaces[0].mac": `"52:54:zz" is not a MAC address`, "group": `group "nope" does not exist`},
			Problems: []string{"state: cannot be set here"},
		},
		Revision: 4, Name: "node001", Group: "nope", Stateless: "true",
		Interfaces: []InterfaceRow{{Name: "eth0", MAC: "52:54:zz", Boot: true}},
		Tags:       "rack1, ib",
		Groups:     []string{"compute"},
		Inherited:  model.Settings{Image: "rocky-9.4"}, InheritedFrom: "group compute",
	}
	golden(t, "node_form_errors", NodeFormBody(f))
}

func TestAuditRows(t *testing.T) {
	events := []model.AuditEvent{
		{ID: "2-0", Time: day(15), User: "alice", Host: "10.0.0.9", Kind: "node", Method: "update",
			Refs: []string{"node/node001"}, Msg: "changed node node001", Extras: map[string]string{"changed": "group,tags", "a": "b"}},
		{ID: "1-0", Time: day(14), User: "alice", Host: "10.0.0.9", Kind: "connection", Method: "create",
			Refs: []string{"node/node001", "device/pdu1", "connection/power:node001:psu1"}, Msg: "connected node001 psu1 to pdu1 A1"},
	}
	golden(t, "audit_rows", AuditRows(events, "/audit?kind=node"))
}

func TestDiscoveredTable(t *testing.T) {
	v := DiscoveredView{
		Machines: []model.Discovered{
			{MAC: "52:54:00:00:01:02", FirstSeen: day(14), LastSeen: day(15).Add(-12 * time.Second), Count: 121, Arch: "x86_64", Platform: "efi",
				ClientAddr: "10.9.0.12", VendorClass: "PXEClient:Arch:00007", Manufacturer: "Dell Inc.", Product: "PowerEdge R650",
				Serial: "7XK2Q53", UUID: "4c4c4544-0058-4b10-8032-b7c04f513533"},
			{MAC: "52:54:00:00:01:01", FirstSeen: day(13), LastSeen: day(13), Count: 1},
		},
		Total: 2, Evicted: 3, Now: day(15),
		Candidates: []string{"node007", "node008"}, Groups: []string{"compute", "gpu"},
		Form: AssignForm{MAC: "52:54:00:00:01:01", Create: true, Node: "node 9", Group: "gpu",
			Form: Form{Errors: map[string]string{"node": `"node 9" is not a valid name`}}},
	}
	golden(t, "discovered_table", DiscoveredTable(v, true))
	golden(t, "discovered_table_readonly", DiscoveredTable(v, false))
}

func TestBootSessions(t *testing.T) {
	started := day(15)
	running := model.BootSession{ID: "0123456789abcdef0123456789abcdef", Node: "node001", MAC: "52:54:00:00:00:01", Arch: "x86_64",
		Platform: "efi", Image: "rocky-9.4", Branch: "live", State: model.BootRunning, Step: "image", Started: started,
		Updated: started.Add(3 * time.Second), Expires: started.Add(24 * time.Hour)}
	failed := model.BootSession{ID: "fedcba9876543210fedcba9876543210", Node: "node001", MAC: "52:54:00:00:00:01", Arch: "x86_64",
		Platform: "pcbios", State: model.BootFailed, Step: "disks", Reason: "disks: /dev/sdb is missing",
		Started: started.Add(-time.Hour), Updated: started.Add(-time.Hour + 95*time.Second)}
	events := []model.BootEvent{
		{ID: "1-0", Time: started, Step: "ipxe", State: model.EventOK, Message: "boot script sent", Extras: map[string]string{"platform": "efi", "arch": "x86_64"}},
		{ID: "2-0", Time: started.Add(1200 * time.Millisecond), Step: "plan", State: model.EventOK, DurationMS: 1150},
		{ID: "3-0", Time: started.Add(1300 * time.Millisecond), Step: "image", State: model.EventStart, Message: "rocky-9.4@live"},
	}
	now := started.Add(4 * time.Second)
	golden(t, "boot_sessions_live", BootSessions(BootPanel{Node: "node001", Sessions: []model.BootSession{running, failed}, Events: events, Now: now, Live: true}))
	golden(t, "boot_sessions_none", BootSessions(BootPanel{Node: "node001", Now: now, Live: true}))
	golden(t, "boot_timeline_failed", BootTimelineCard(BootSessionView{Session: failed, Now: now, Live: true,
		Events: []model.BootEvent{{ID: "1-0", Time: failed.Started.Add(95 * time.Second), Step: "disks", State: model.EventFail, Message: "/dev/sdb is missing"}}}))
}
