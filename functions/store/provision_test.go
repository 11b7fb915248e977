package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

func testLayout(name string) model.Layout {
	return model.Layout{Name: name, Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: model.DiskSelector{Type: model.DiskNVMe}}},
		Simple: &model.SimpleLayout{Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Size: 40e9}},
			{Type: model.FSSwap, Size: model.PartSize{Size: 8e9}},
			{Mount: "/scratch", Type: model.FSXFS, Size: model.PartSize{Rest: true}},
		}}}
}

func TestLayoutsCRUDAndInUse(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a := Actor{User: "alice", Host: "test"}
	l, err := s.CreateLayout(ctx, a, testLayout("nvme"))
	if err != nil || l.Revision != 1 {
		t.Fatalf("create: %+v %v", l, err)
	}
	if _, err := s.CreateLayout(ctx, a, testLayout("nvme")); !IsKind(err, KindConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	bad := testLayout("bad")
	bad.Simple.Filesystems = bad.Simple.Filesystems[1:]
	var ve *model.ValidationError
	if _, err := s.CreateLayout(ctx, a, bad); !errors.As(err, &ve) {
		t.Fatalf("a layout without / was accepted: %v", err)
	}
	l.Simple.Mirror = true
	l.Disks = append(l.Disks, model.LayoutDisk{Name: "disk1", Select: model.DiskSelector{Type: model.DiskNVMe}})
	if _, err := s.ReplaceLayout(ctx, a, l, 7); !IsKind(err, KindPrecondition) {
		t.Fatalf("stale replace: %v", err)
	}
	l2, err := s.ReplaceLayout(ctx, a, l, 1)
	if err != nil || l2.Revision != 2 || !l2.Simple.Mirror {
		t.Fatalf("replace: %+v %v", l2, err)
	}
	got, err := s.GetLayout(ctx, "nvme")
	if err != nil || len(got.Disks) != 2 || got.Simple.Filesystems[2].Size.Rest != true {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := s.ListLayouts(ctx, ListOptions{})
	if err != nil || page.Total != 1 || page.Items[0].Name != "nvme" {
		t.Fatalf("list: %+v %v", page, err)
	}

	if _, err := s.CreateGroup(ctx, a, model.Group{Name: "compute", Settings: model.Settings{DiskLayout: "nvme"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateNode(ctx, a, model.Node{Name: "node001", Settings: model.Settings{DiskLayout: "nvme"}}); err != nil {
		t.Fatal(err)
	}
	err = s.DeleteLayout(ctx, a, "nvme", 0)
	if !IsKind(err, KindConflict) || !strings.Contains(err.Error(), "group/compute") || !strings.Contains(err.Error(), "node/node001") {
		t.Fatalf("deleting a layout in use: %v", err)
	}
	if _, err := s.ReplaceNode(ctx, a, model.Node{Name: "node001"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceGroup(ctx, a, model.Group{Name: "compute"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLayout(ctx, a, "nvme", 0); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.GetLayout(ctx, "nvme"); !IsKind(err, KindNotFound) {
		t.Fatalf("deleted layout still there: %v", err)
	}
	audit, err := s.Audit(ctx, AuditQuery{Kind: "layout"})
	if err != nil || len(audit.Items) != 3 || audit.Items[0].Method != "delete" || audit.Items[1].Extras["changed"] != "disks,simple" {
		t.Fatalf("audit: %+v %v", audit.Items, err)
	}
}

func TestPluginSettings(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a := Actor{User: "alice", Host: "test"}
	all, err := s.ListPlugins(ctx)
	if err != nil || len(all) != 7 || all[0].Name != "hostname" || !all[0].Enabled || all[4].Name != "limits" || all[4].Enabled || all[6].Name != "sync" {
		t.Fatalf("defaults: %+v %v", all, err)
	}
	if _, err := s.GetPlugin(ctx, "nfs"); !IsKind(err, KindNotFound) {
		t.Fatalf("unknown plugin: %v", err)
	}
	p, err := s.PutPlugin(ctx, a, model.PluginSettings{Name: "limits", Enabled: true, Settings: map[string]string{"nofile": "65536"}}, 0)
	if err != nil || p.Revision != 1 {
		t.Fatalf("put: %+v %v", p, err)
	}
	if _, err := s.PutPlugin(ctx, a, model.PluginSettings{Name: "limits", Enabled: false}, 5); !IsKind(err, KindPrecondition) {
		t.Fatalf("stale put: %v", err)
	}
	for _, bad := range []model.PluginSettings{
		{Name: "limits", Settings: map[string]string{"Bad Key": "1"}},
		{Name: "limits", Settings: map[string]string{"k": "two\nlines"}},
		{Name: "sync", Settings: map[string]string{"verify": "sometimes"}},
		{Name: "sync", Settings: map[string]string{"preserve": "var/log"}},
	} {
		var ve *model.ValidationError
		if _, err := s.PutPlugin(ctx, a, bad, 0); !errors.As(err, &ve) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
	got, err := s.GetPlugin(ctx, "limits")
	if err != nil || !got.Enabled || got.Settings["nofile"] != "65536" {
		t.Fatalf("get: %+v %v", got, err)
	}
	audit, err := s.Audit(ctx, AuditQuery{Kind: "plugin"})
	if err != nil || len(audit.Items) != 1 || audit.Items[0].Extras["changed"] != "enabled,settings.nofile" {
		t.Fatalf("audit: %+v %v", audit.Items, err)
	}
}

func TestConsoleAppendIsIdempotentAndFollows(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	sess := testSession(1, "node001", time.Now().Add(time.Hour))
	if err := s.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendConsole(ctx, fmtID(99), 1, []byte("x")); !IsKind(err, KindNotFound) {
		t.Fatalf("append to no session: %v", err)
	}
	for _, c := range []struct {
		seq  uint64
		data string
		want bool
	}{{1, "hello ", true}, {2, "wor", true}, {2, "wor", false}, {1, "hello ", false}, {3, "ld\n", true}} {
		ok, err := s.AppendConsole(ctx, sess.ID, c.seq, []byte(c.data))
		if err != nil || ok != c.want {
			t.Fatalf("append %d: %v %v, want %v", c.seq, ok, err, c.want)
		}
	}
	all, end, err := s.Console(ctx, sess.ID)
	if err != nil || string(all) != "hello world\n" || end.String() != "3.12" {
		t.Fatalf("console: %q %s %v", all, end, err)
	}
	if ttl := s.rdb.TTL(ctx, s.bootConsoleKey(sess.ID)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("console TTL %v", ttl)
	}
	// Reading in steps: a cursor after chunk 1, then nothing new.
	cur, _ := ParseConsoleCursor("1.6")
	got, next, err := s.ConsoleAfter(ctx, sess.ID, cur, 0)
	if err != nil || string(got) != "world\n" || next.String() != "3.12" {
		t.Fatalf("after 1.6: %q %s %v", got, next, err)
	}
	// A cursor from an archive (sequence unknown) skips by offset.
	got, _, err = s.ConsoleAfter(ctx, sess.ID, ArchiveCursor(8), 0)
	if err != nil || string(got) != "rld\n" {
		t.Fatalf("after offset 8: %q %v", got, err)
	}
	done := make(chan string)
	go func() {
		more, _, _ := s.ConsoleAfter(ctx, sess.ID, next, 5*time.Second)
		done <- string(more)
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := s.AppendConsole(ctx, sess.ID, 4, []byte("login:")); err != nil {
		t.Fatal(err)
	}
	if more := <-done; more != "login:" {
		t.Fatalf("follow woke with %q", more)
	}
	big := bytes.Repeat([]byte("x"), MaxConsoleChunk+1)
	if _, err := s.AppendConsole(ctx, sess.ID, 5, big); err == nil {
		t.Fatal("a chunk over 64 KiB was accepted")
	}
	if _, err := s.AppendConsole(ctx, sess.ID, 0, []byte("x")); err == nil {
		t.Fatal("sequence 0 was accepted")
	}
	for _, bad := range []string{"x", "1.", ".5", "1.-3"} {
		if _, err := ParseConsoleCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestConsoleFull(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	sess := testSession(2, "node001", time.Now().Add(time.Hour))
	if err := s.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("y"), MaxConsoleChunk)
	var seq uint64
	for seq = 1; seq <= MaxConsoleBytes/MaxConsoleChunk; seq++ {
		if _, err := s.AppendConsole(ctx, sess.ID, seq, chunk); err != nil {
			t.Fatalf("chunk %d: %v", seq, err)
		}
	}
	if _, err := s.AppendConsole(ctx, sess.ID, seq, []byte("z")); !errors.Is(err, ErrConsoleFull) {
		t.Fatalf("past the cap: %v", err)
	}
}

func TestHosts(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a := Actor{User: "alice"}
	for _, n := range []model.Node{
		{Name: "node002", Interfaces: []model.Interface{{Name: "ib0", Address: "10.1.0.2/16"}, {Name: "eth0", Address: "10.0.0.2/16", Boot: true}}},
		{Name: "node001", Interfaces: []model.Interface{{Name: "eth0", Address: "10.0.0.1"}}},
		{Name: "node003"},
	} {
		if _, err := s.CreateNode(ctx, a, n); err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := s.Hosts(ctx)
	want := []model.HostEntry{{Name: "node001", Address: "10.0.0.1"}, {Name: "node002", Address: "10.0.0.2"}}
	if err != nil || len(hosts) != 2 || hosts[0] != want[0] || hosts[1] != want[1] {
		t.Fatalf("hosts: %+v %v", hosts, err)
	}
}

func fmtID(i int) string { return testSession(i, "", time.Time{}).ID }
