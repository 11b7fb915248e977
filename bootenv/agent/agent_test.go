package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/bootenv/agent"
	"github.com/herd-hpc/herd/bootenv/console"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

const edgeSecret = "edge-secret-for-tests"

// cluster is the boot function on the real Redis and MinIO, with image
// "tiny" imported from a small tree and node n001 in a stateless group.
type cluster struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	obj := testenv.Objects(t)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: edgeSecret, Log: log}
	h := boot.New(st, au, boot.ObjectArtifacts{Objects: obj, Seen: store.BootArtifacts{S: st}}, boot.Config{}, log)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// The image: a small tree with a big file, so a sync really fetches.
	src := t.TempDir()
	files := map[string]string{
		"bin/hello":                  "#!/bin/sh\necho hello\n",
		"etc/motd":                   "welcome to tiny\n",
		"etc/hosts":                  "127.0.0.1\tlocalhost\n",
		"usr/share/big":              strings.Repeat("0123456789abcdef", 1<<16), // 1 MiB
		"var/lib/empty/x":            "",
		"boot/vmlinuz-6.1.0-test":    "a kernel",
		"boot/initrd.img-6.1.0-test": "an initrd",
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(src, "bin/hello"), 0o755)
	rdb, prefix := st.Redis()
	imgs := imgstore.New(obj, rdb, prefix)
	if _, err := imgs.ImportDir(ctx, "tiny", boot.LiveBranch, src); err != nil {
		t.Fatal(err)
	}
	// The boot files iPXE would load; their content does not matter here.
	for key, data := range map[string]string{
		boot.ImageKey("tiny", boot.LiveBranch, "kernel"):         "kernel",
		boot.ImageKey("tiny", boot.LiveBranch, boot.ModulesFile): "modules",
		boot.BootenvKey: "bootenv",
	} {
		if err := obj.Put(ctx, key, strings.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	actor := store.Actor{User: "test", Host: "test"}
	stateless := true
	if _, err := st.CreateGroup(ctx, actor, model.Group{Name: "compute", Settings: model.Settings{Image: "tiny", Stateless: &stateless}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateNode(ctx, actor, model.Node{Name: "n001", Group: "compute",
		Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:01", Address: "10.0.0.11/16", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []model.PluginSettings{
		{Name: "hostname", Enabled: true, Settings: map[string]string{"domain": "cluster"}},
		{Name: "hosts", Enabled: true},
		{Name: "limits", Enabled: true, Settings: map[string]string{"memlock": "unlimited"}},
	} {
		if _, err := st.PutPlugin(ctx, actor, p, 0); err != nil {
			t.Fatal(err)
		}
	}
	return &cluster{t: t, st: st, srv: srv}
}

// boot asks for n001's boot script as iPXE behind the edge does and
// returns the session id and token its kernel command line carries.
func (c *cluster) boot() (string, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.srv.URL+"/boot/ipxe?mac=52:54:00:00:00:01&arch=x86_64&platform=efi", nil)
	req.Header.Set(auth.HeaderEdgeSecret, edgeSecret)
	req.Header.Set("X-Forwarded-Host", "10.0.0.1:8080")
	req.Header.Set("X-Forwarded-Proto", "http")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	script, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`herd\.session=([0-9a-f]{32}) herd\.server=\S+ herd\.token=(\S+)`).FindSubmatch(script)
	if resp.StatusCode != 200 || m == nil {
		c.t.Fatalf("boot script %d:\n%s", resp.StatusCode, script)
	}
	// The command line as the kernel would show it parses.
	cmd, err := agent.ParseCmdline(string(regexp.MustCompile(`herd\.session=.*`).Find(script)))
	if err != nil || cmd.Session != string(m[1]) || cmd.Token != string(m[2]) {
		c.t.Fatalf("cmdline: %+v %v", cmd, err)
	}
	return string(m[1]), string(m[2])
}

// run runs the agent for session id with network, bootloader and pivot
// turned off, streaming the console to the server.
func (c *cluster) run(id, token, root string) (*agent.Agent, string, error) {
	c.t.Helper()
	bc := client.NewBoot(c.srv.URL, token, nil)
	var local bytes.Buffer
	stream := console.New(&local, console.Options{FlushEvery: 10 * time.Millisecond})
	stream.Write([]byte("bootenv starting\n")) // before the network: sent once it is up
	log := slog.New(slog.NewTextHandler(stream, nil))
	a := agent.New(agent.Options{
		Session: id, Server: bc, Log: log, Console: stream, Root: root,
		OnNetwork: func() { stream.Start(bc, id) },
	})
	err := a.Run(context.Background())
	if cerr := stream.Close(context.Background()); cerr != nil {
		c.t.Errorf("console: %v", cerr)
	}
	return a, local.String(), err
}

type stepState struct {
	Step  string
	State model.BootEventState
}

func (c *cluster) events(id, token string) []model.BootEvent {
	c.t.Helper()
	d, err := client.NewBoot(c.srv.URL, token, nil).Session(context.Background(), id)
	if err != nil {
		c.t.Fatal(err)
	}
	return d.Events
}

func TestAgentStatelessBoot(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	root := t.TempDir()
	id, token := c.boot()
	a, local, err := c.run(id, token, root)
	if err != nil {
		t.Fatalf("run: %v\nconsole:\n%s", err, local)
	}

	// The root holds the image and what the plugins wrote.
	for p, want := range map[string]string{
		"etc/motd":                           "welcome to tiny\n",
		"bin/hello":                          "#!/bin/sh\necho hello\n",
		"etc/hostname":                       "n001\n",
		"etc/security/limits.d/90-herd.conf": "*\thard\tmemlock\tunlimited\n",
	} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q %v, want it to hold %q", p, b, err, want)
		}
	}
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	if !strings.Contains(string(hosts), "127.0.1.1\tn001.cluster\tn001") || !strings.Contains(string(hosts), "127.0.0.1\tlocalhost") {
		t.Errorf("/etc/hosts:\n%s", hosts)
	}
	if a.Plan().Node != "n001" || !a.Plan().Stateless {
		t.Errorf("plan %+v", a.Plan())
	}

	// The session's timeline: each step in order, with its duration.
	var got []stepState
	var total int64
	evs := c.events(id, token)
	for _, e := range evs {
		if e.Step == "ipxe" {
			continue // the script's own event
		}
		got = append(got, stepState{e.Step, e.State})
		total += e.DurationMS
	}
	want := []stepState{
		{"network", model.EventInfo},
		{"plan", model.EventStart}, {"plan", model.EventOK},
		{"disks", model.EventStart}, {"disks", model.EventOK},
		{"image", model.EventStart}, {"image", model.EventOK},
		{"plugins", model.EventStart}, {"plugins", model.EventOK},
		{"bootloader", model.EventInfo},
		{"pivot", model.EventInfo},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events\n%v\nwant\n%v", got, want)
	}
	if total <= 0 {
		t.Errorf("no step took any time: %+v", evs)
	}
	var image model.BootEvent
	for _, e := range evs {
		if e.Step == "image" && e.State == model.EventOK {
			image = e
		}
	}
	if image.Extras["fetched_blobs"] == "0" || image.Extras["written"] != "7" {
		t.Errorf("image event %+v: want 7 files written, blobs fetched", image)
	}

	// The console reached the server in order, the early line first.
	data, _, err := c.st.Console(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "bootenv starting\n") || !strings.Contains(string(data), "step=image") {
		t.Errorf("server console:\n%s", data)
	}
	if string(data) != local {
		t.Errorf("server console differs from the local one:\n%s\n---\n%s", data, local)
	}

	// The next boot of the same root fetches nothing and changes nothing
	// the plugins own.
	motd := filepath.Join(root, "etc/motd")
	before, _ := os.Stat(motd)
	id2, token2 := c.boot()
	if _, local, err := c.run(id2, token2, root); err != nil {
		t.Fatalf("second run: %v\n%s", err, local)
	}
	// The plugins' files are kept, /etc/hosts included though the image
	// has one too: the sync writes nothing and the plugins change nothing.
	for _, e := range c.events(id2, token2) {
		if e.Step == "image" && e.State == model.EventOK && (e.Extras["removed"] != "0" || e.Extras["written"] != "0") {
			t.Errorf("second boot: %+v", e)
		}
		if e.Step == "plugins" && e.State == model.EventOK {
			for plugin, changed := range e.Extras {
				t.Errorf("second boot: plugin %s changed %s", plugin, changed)
			}
		}
	}
	if after, _ := os.Stat(motd); !after.ModTime().Equal(before.ModTime()) {
		t.Error("second boot rewrote an unchanged image file")
	}
}

// TestAgentStopsAtAFailedStep checks that a failing step is reported with
// its reason and nothing after it runs.
func TestAgentStopsAtAFailedStep(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	actor := store.Actor{User: "test", Host: "test"}
	// An unknown unit fails the systemd plugin.
	if _, err := c.st.PutPlugin(ctx, actor, model.PluginSettings{Name: "systemd", Enabled: true, Settings: map[string]string{"enable": "nosuch.service"}}, 0); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	id, token := c.boot()
	_, _, err := c.run(id, token, root)
	var se *agent.StepError
	if !errorsAs(err, &se) || se.Step != agent.StepPlugins {
		t.Fatalf("run: %v, want the plugins step to fail", err)
	}
	evs := c.events(id, token)
	last := evs[len(evs)-1]
	if last.Step != "plugins" || last.State != model.EventFail || !strings.Contains(last.Message, "nosuch.service") {
		t.Errorf("last event %+v", last)
	}
	sess, err := c.st.BootSession(ctx, id)
	if err != nil || sess.State != model.BootFailed {
		t.Errorf("session %+v %v, want failed", sess, err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
