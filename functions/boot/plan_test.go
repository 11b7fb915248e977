package boot_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func testLayout(name string) model.Layout {
	return model.Layout{Name: name, Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: model.DiskSelector{Type: model.DiskNVMe}}},
		Simple: &model.SimpleLayout{Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
		}}}
}

// provisioned is a cluster ready to provision: image rocky9 with its live
// branch in the image store and boot files, group compute using it and
// layout nvme.
func (e *env) provisioned(layout string) (*imgstore.Store, manifest.Digest) {
	e.t.Helper()
	ctx := context.Background()
	rdb, prefix := e.st.Redis()
	imgs := imgstore.New(e.obj, rdb, prefix)
	d, err := imgs.CreateEmpty(ctx, "rocky9", boot.LiveBranch)
	if err != nil {
		e.t.Fatal(err)
	}
	e.image("rocky9", boot.LiveBranch)
	if _, err := e.st.CreateLayout(ctx, admin(), testLayout("nvme")); err != nil {
		e.t.Fatal(err)
	}
	e.group(model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9", DiskLayout: layout}})
	return imgs, d
}

func TestPlanImageAndConsole(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	imgs, version := e.provisioned("nvme")
	blob := []byte("#!/bin/sh\necho hello\n")
	bd := manifest.Sum(blob)
	if _, err := imgs.PutBlob(ctx, bd, bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	e.node(model.Node{Name: "login01", Interfaces: []model.Interface{{Name: "eth0", Address: "10.0.0.250/16"}}})
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	admin := e.adminClientWithObjects()
	if _, err := admin.PutPlugin(ctx, model.PluginSettings{Name: "limits", Enabled: true, Settings: map[string]string{"nofile": "65536"}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutPlugin(ctx, model.PluginSettings{Name: "sync", Settings: map[string]string{"verify": "always"}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutPlugin(ctx, model.PluginSettings{Name: "fstab"}, 0); err != nil {
		t.Fatal(err)
	}

	bc := client.NewBoot(e.srv.URL, token, nil)
	plan, err := bc.Plan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var plugins []string
	for _, p := range plan.Plugins {
		plugins = append(plugins, p.Name)
	}
	if plan.Node != "node001" || plan.Hostname != "node001" || plan.Session != id || plan.Image != "rocky9" ||
		plan.Branch != boot.LiveBranch || plan.Version != version.String() || plan.Stateless ||
		plan.Layout == nil || plan.Layout.Name != "nvme" || plan.Sync.Verify != "always" || !plan.Sync.CheckEveryBoot ||
		!slices.Contains(plan.Sync.Preserve, "/var/log/**") || len(plan.Interfaces) != 1 ||
		!slices.Equal(plugins, []string{"hostname", "hosts", "interfaces", "limits"}) || plan.Plugins[3].Settings["nofile"] != "65536" {
		t.Fatalf("plan: %+v", plan)
	}
	if len(plan.Hosts) != 1 || plan.Hosts[0] != (model.HostEntry{Name: "login01", Address: "10.0.0.250"}) {
		t.Fatalf("hosts (node001 has no address): %+v", plan.Hosts)
	}

	// The planned manifest, and no other; any blob.
	m, err := bc.Manifest(ctx, id, version)
	if err != nil || len(m.Entries) != 1 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	if _, err := bc.Manifest(ctx, id, bd); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("another manifest: %v", err)
	}
	rc, n, err := bc.OpenBlob(ctx, id, bd)
	if err != nil || n != int64(len(blob)) {
		t.Fatalf("blob: %d %v", n, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("blob content %q %v", got, err)
	}
	status, hdr, _ := e.do("GET", "/boot/sessions/"+id+"/blobs/"+bd.String(), nil, "Authorization", "Bearer "+token)
	if status != 200 || !strings.Contains(hdr.Get("Cache-Control"), "immutable") || hdr.Get("Content-Length") != "21" {
		t.Fatalf("blob headers: %d %v", status, hdr)
	}
	if _, _, err := bc.OpenBlob(ctx, id, manifest.Sum([]byte("absent"))); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("absent blob: %v", err)
	}
	// Another session's token reads nothing of this one.
	otherID, otherToken := e.bootNode("node002", "52:54:00:00:00:02")
	if _, _, err := client.NewBoot(e.srv.URL, otherToken, nil).OpenBlob(ctx, id, bd); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("blob with another session's token: %v", err)
	}
	if _, err := client.NewBoot(e.srv.URL, "nope", nil).Plan(ctx, id); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("plan with a bad token: %v", err)
	}
	// node002 did not fetch its plan: no manifest yet.
	if _, err := client.NewBoot(e.srv.URL, otherToken, nil).Manifest(ctx, otherID, version); !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("manifest before the plan: %v", err)
	}

	// The console: chunks, a retried one, read by the admin while live.
	for i, chunk := range []string{"Booting herd\n", "disk0: nvme0n1\n", "disk0: nvme0n1\n"} {
		seq := uint64(i + 1)
		if i == 2 {
			seq = 2 // a retry
		}
		if err := bc.AppendConsole(ctx, id, seq, []byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bc.AppendConsole(ctx, id, 9, bytes.Repeat([]byte("x"), 64<<10+1)); !client.IsStatus(err, http.StatusRequestEntityTooLarge) {
		t.Fatalf("a chunk over 64 KiB: %v", err)
	}
	c, err := admin.Console(ctx, id, "", 0)
	if err != nil || string(c.Data) != "Booting herd\ndisk0: nvme0n1\n" || c.Ended || c.Next == "" {
		t.Fatalf("console: %q %+v %v", c.Data, c, err)
	}
	follow := make(chan model.ConsoleChunk)
	go func() {
		more, _ := admin.Console(ctx, id, c.Next, 10*time.Second)
		follow <- more
	}()
	time.Sleep(200 * time.Millisecond)
	if err := bc.AppendConsole(ctx, id, 3, []byte("pivot\n")); err != nil {
		t.Fatal(err)
	}
	if more := <-follow; string(more.Data) != "pivot\n" {
		t.Fatalf("follow: %+v", more)
	}

	// The session ends: the console is archived and served from there once
	// the stream is gone.
	if _, err := bc.PostEvent(ctx, id, model.BootEvent{Step: model.StepDone, State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	rc2, _, err := e.obj.Get(ctx, boot.ConsoleKey(id))
	if err != nil {
		t.Fatalf("no archive: %v", err)
	}
	archived, _ := io.ReadAll(rc2)
	rc2.Close()
	const whole = "Booting herd\ndisk0: nvme0n1\npivot\n"
	if string(archived) != whole {
		t.Fatalf("archive %q", archived)
	}
	rdb, prefix := e.st.Redis()
	if err := rdb.Del(ctx, prefix+"boot:console:"+id, prefix+"boot:session:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	c, err = admin.Console(ctx, id, "", time.Second)
	if err != nil || string(c.Data) != whole || !c.Ended {
		t.Fatalf("archived console: %q %+v %v", c.Data, c, err)
	}
	c, err = admin.Console(ctx, id, c.Next, time.Second)
	if err != nil || len(c.Data) != 0 || !c.Ended {
		t.Fatalf("after the archive's end: %+v %v", c, err)
	}
	if _, err := admin.Console(ctx, strings.Repeat("ab", 16), "", 0); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("console of no session: %v", err)
	}
}

func TestPlanRefusesAMissingLayout(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	e.provisioned("gone")
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	_, err := client.NewBoot(e.srv.URL, token, nil).Plan(ctx, id)
	var p *client.Error
	if !client.IsStatus(err, http.StatusConflict) || !errorsAs(err, &p) || !strings.Contains(p.Detail, `node node001's layout "gone" does not exist`) {
		t.Fatalf("plan with a missing layout: %v", err)
	}
	events, err := e.st.BootEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Step != "plan" || last.State != model.EventFail || !strings.Contains(last.Message, "gone") {
		t.Fatalf("no plan failure on the timeline: %+v", events)
	}
	sess, _ := e.st.BootSession(ctx, id)
	if sess.State != model.BootFailed {
		t.Fatalf("session %s", sess.State)
	}
	if rc, _, err := e.obj.Get(ctx, boot.ConsoleKey(id)); err != nil {
		t.Fatalf("the failed session's console was not archived: %v", err)
	} else {
		rc.Close()
	}
}

func TestBuildPlan(t *testing.T) {
	yes := true
	layout := testLayout("nvme")
	node := model.Node{Name: "n1", Interfaces: []model.Interface{{Name: "eth0"}}}
	for _, c := range []struct {
		name     string
		in       boot.PlanInput
		check    func(model.NodePlan) bool
		wantFail bool
	}{
		{"defaults", boot.PlanInput{Node: node, Layout: &layout, Plugins: []model.PluginSettings{store.DefaultPlugin("hostname"), store.DefaultPlugin("limits")}},
			func(p model.NodePlan) bool {
				return p.Hostname == "n1" && p.Layout != nil && !p.Stateless && len(p.Plugins) == 1 && p.Plugins[0].Name == "hostname" &&
					p.Sync.Verify == "unsure" && p.Sync.CheckEveryBoot && len(p.Sync.Preserve) == 3
			}, false},
		{"stateless drops the layout", boot.PlanInput{Node: model.Node{Name: "n1", Effective: &model.Settings{Stateless: &yes}}, Layout: &layout},
			func(p model.NodePlan) bool { return p.Stateless && p.Layout == nil }, false},
		{"plugins in run order", boot.PlanInput{Node: node, Plugins: []model.PluginSettings{{Name: "systemd", Enabled: true}, {Name: "hostname", Enabled: true}}},
			func(p model.NodePlan) bool {
				return len(p.Plugins) == 2 && p.Plugins[0].Name == "hostname" && p.Plugins[1].Name == "systemd"
			}, false},
		{"sync settings", boot.PlanInput{Node: node, Plugins: []model.PluginSettings{{Name: "sync", Settings: map[string]string{"preserve": "/srv/**, /root/**", "check_every_boot": "false"}}}},
			func(p model.NodePlan) bool {
				return !p.Sync.CheckEveryBoot && slices.Equal(p.Sync.Preserve, []string{"/srv/**", "/root/**"}) && len(p.Plugins) == 0
			}, false},
		{"the node's own sync settings win over the cluster's", boot.PlanInput{
			Node:    model.Node{Name: "n1", Effective: &model.Settings{CheckEveryBoot: new(bool), SyncVerify: "always"}},
			Plugins: []model.PluginSettings{{Name: "sync", Settings: map[string]string{"check_every_boot": "true", "verify": "never"}}}},
			func(p model.NodePlan) bool { return !p.Sync.CheckEveryBoot && p.Sync.Verify == "always" }, false},
		{"the node's plugin settings over the cluster's", boot.PlanInput{
			Node: model.Node{Name: "n1", Effective: &model.Settings{Plugins: map[string]map[string]string{
				"hostname": {"enabled": "false"},
				"limits":   {"enabled": "true", "nofile": "65536"},
				"fstab":    {"mounts": "nfs:/home /home nfs defaults"},
			}}},
			Plugins: []model.PluginSettings{store.DefaultPlugin("hostname"), store.DefaultPlugin("limits"),
				{Name: "fstab", Enabled: true, Settings: map[string]string{"mounts": "old:/x /x nfs defaults", "other": "kept"}}}},
			func(p model.NodePlan) bool {
				return len(p.Plugins) == 2 && p.Plugins[0].Name == "fstab" && p.Plugins[1].Name == "limits" &&
					p.Plugins[0].Settings["mounts"] == "nfs:/home /home nfs defaults" && p.Plugins[0].Settings["other"] == "kept" &&
					p.Plugins[1].Settings["nofile"] == "65536" && p.Plugins[1].Settings["enabled"] == ""
			}, false},
		{"kernel arguments for the fallback entry", boot.PlanInput{Node: model.Node{Name: "n1", Effective: &model.Settings{KernelArgs: "console=ttyS0,115200  nomodeset"}}},
			func(p model.NodePlan) bool {
				return slices.Equal(p.KernelArgs, []string{"console=ttyS0,115200", "nomodeset"})
			}, false},
		{"bad sync settings", boot.PlanInput{Node: node, Plugins: []model.PluginSettings{{Name: "sync", Settings: map[string]string{"verify": "maybe"}}}}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := boot.BuildPlan(c.in)
			if c.wantFail {
				if err == nil {
					t.Fatalf("accepted: %+v", p)
				}
				return
			}
			if err != nil || !c.check(p) {
				t.Fatalf("%+v %v", p, err)
			}
		})
	}
}

func errorsAs(err error, p **client.Error) bool { return errors.As(err, p) }

// adminClientWithObjects is adminClient with the API reading archived
// consoles from the object store, as the server wires it.
func (e *env) adminClientWithObjects() *client.Client {
	e.t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword("correct horse battery")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateUser(ctx, admin(), "alice", model.RoleAdmin, hash); err != nil {
		e.t.Fatal(err)
	}
	a := api.New(e.st, e.au, e.log)
	a.Objects = e.obj
	srv := httptest.NewServer(a)
	e.t.Cleanup(srv.Close)
	c := client.New(srv.URL, "", nil)
	lr, err := c.Login(ctx, "alice", "correct horse battery")
	if err != nil {
		e.t.Fatal(err)
	}
	return c.WithToken(lr.Token)
}

// BenchmarkNodeBlob measures a node reading a 4 MiB blob of its image
// through the boot function (token check, object store, stream).
func BenchmarkNodeBlob(b *testing.B) {
	e := newEnv(b, boot.Config{})
	ctx := context.Background()
	imgs, _ := e.provisioned("nvme")
	blob := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	d := manifest.Sum(blob)
	if _, err := imgs.PutBlob(ctx, d, bytes.NewReader(blob), int64(len(blob))); err != nil {
		b.Fatal(err)
	}
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	bc := client.NewBoot(e.srv.URL, token, nil)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		rc, _, err := bc.OpenBlob(ctx, id, d)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != int64(len(blob)) {
			b.Fatalf("%d bytes: %v", n, err)
		}
	}
}

// BenchmarkPlan measures one node plan on a small cluster.
func BenchmarkPlan(b *testing.B) {
	e := newEnv(b, boot.Config{})
	ctx := context.Background()
	e.provisioned("nvme")
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	bc := client.NewBoot(e.srv.URL, token, nil)
	for b.Loop() {
		if _, err := bc.Plan(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
