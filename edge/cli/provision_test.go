package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/edge/pki"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

func TestLayouts(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("layout", "add", "scratch", "--disk", "960GB±5%", "--disk-type", "nvme", "--mirror",
		"--fs", "/:ext4:40GB", "--fs", "swap:swap:8GB", "--fs", "/scratch:xfs:rest"))
	l := decode[model.Layout](t, h.ok(h.run("layout", "show", "scratch")).stdout)
	if l.Mode != model.LayoutSimple || len(l.Disks) != 2 || l.Disks[1].Select.Size.Tolerance != 5 ||
		l.Disks[0].Select.Type != model.DiskNVMe || !l.Simple.Mirror || len(l.Simple.Filesystems) != 3 ||
		l.Simple.Filesystems[1].Mount != "" || !l.Simple.Filesystems[2].Size.Rest || l.Simple.Filesystems[0].Size.Size != 40e9 {
		t.Fatalf("layout: %+v %+v", l, l.Simple)
	}
	// JSON from standard input; the name may be left out.
	js := `{"mode":"simple","disks":[{"name":"disk0","select":{"type":"ssd"}}],"simple":{"filesystems":[{"mount":"/","type":"xfs","size":"rest"}]}}`
	h.ok(h.runIn(js, "layout", "add", "small", "--file", "-"))
	file := filepath.Join(t.TempDir(), "l.json")
	if err := os.WriteFile(file, []byte(strings.Replace(js, `"ssd"`, `"hdd"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.ok(h.run("layout", "set", "small", "--file", file))
	if l, _ := h.api().GetLayout(context.Background(), "small"); l.Disks[0].Select.Type != model.DiskHDD || l.Revision != 2 {
		t.Fatalf("after set: %+v", l)
	}
	r := h.ok(h.run("layout", "list"))
	if !strings.Contains(r.stdout, "scratch") || !strings.Contains(r.stdout, "/scratch") || !strings.Contains(r.stdout, "small") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	checkAligned(t, r.stdout)

	h.failed(h.run("layout", "add", "bad", "--fs", "/:ext4"), exitUsage, "MOUNT:TYPE:SIZE")
	h.failed(h.run("layout", "add", "bad", "--fs", "/data:ext4:1GB"), exitFail, "mounted at /")
	h.failed(h.run("layout", "add", "bad"), exitUsage, "--file")

	// A layout in use cannot go.
	h.ok(h.run("group", "add", "compute", "--layout", "scratch"))
	h.failed(h.run("layout", "delete", "scratch"), exitFail, "group/compute")
	h.ok(h.run("group", "set", "compute", "--unset", "layout"))
	h.ok(h.run("layout", "delete", "scratch"))
	h.failed(h.run("layout", "show", "scratch"), exitFail, "does not exist")
}

func TestSimpleLayoutOf(t *testing.T) {
	for _, c := range []struct {
		disk string
		fs   []string
		ok   bool
	}{
		{"960GB±5%", []string{"/:ext4:40GB", "none:swap:8GB"}, true},
		{"", []string{"/:xfs:rest"}, true},
		{"lots", []string{"/:xfs:rest"}, false},
		{"", []string{"/:xfs:big"}, false},
		{"", []string{"/:xfs:1GB:x"}, false},
	} {
		l, err := SimpleLayoutOf("l", c.disk, "", false, "", c.fs)
		if (err == nil) != c.ok {
			t.Errorf("%q %v: %v", c.disk, c.fs, err)
			continue
		}
		if err == nil {
			if verr := l.Validate(); verr != nil {
				t.Errorf("%q %v: invalid: %v", c.disk, c.fs, verr)
			}
		}
	}
}

func TestPlugins(t *testing.T) {
	h := loggedIn(t)
	r := h.ok(h.run("plugin", "list"))
	for _, p := range append(model.Plugins(), "sync") {
		if !strings.Contains(r.stdout, p) {
			t.Errorf("list lacks %s:\n%s", p, r.stdout)
		}
	}
	h.ok(h.run("plugin", "set", "limits", "nofile=65536", "memlock=unlimited", "--enable"))
	h.ok(h.run("plugin", "set", "limits", "--unset", "memlock"))
	p := decode[model.PluginSettings](t, h.ok(h.run("plugin", "show", "limits", "--json")).stdout)
	if !p.Enabled || p.Settings["nofile"] != "65536" || len(p.Settings) != 1 || p.Revision != 2 {
		t.Fatalf("limits: %+v", p)
	}
	if r := h.ok(h.run("plugin", "show", "limits")); !strings.Contains(r.stdout, "65536") {
		t.Fatalf("show:\n%s", r.stdout)
	}
	h.failed(h.run("plugin", "set", "nfs", "a=b"), exitFail, "plugin nfs does not exist")
	h.failed(h.run("plugin", "set", "sync", "verify=sometimes"), exitFail, "sometimes")
	h.failed(h.run("plugin", "set", "limits", "novalue"), exitUsage, "KEY=VALUE")
	h.failed(h.run("plugin", "set", "limits"), exitUsage, "nothing to change")
	if got, _ := EditPluginSettings(map[string]string{"a": "1"}, []string{"b=2=3", "c="}, []string{"a"}); len(got) != 2 || got["b"] != "2=3" || got["c"] != "" {
		t.Fatalf("edit: %v", got)
	}
}

func TestBootConsole(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "compute", "--image", "rocky9"))
	h.ok(h.run("node", "add", "node001", "--group", "compute", "--mac", "52:54:00:00:00:01"))
	id, token := h.bootNode("52:54:00:00:00:01")
	bc := client.NewBoot(h.url, token, nil)
	ctx := context.Background()
	if err := bc.AppendConsole(ctx, id, 1, []byte("herd bootenv\n")); err != nil {
		t.Fatal(err)
	}
	if r := h.ok(h.run("boot", "console", "node001")); r.stdout != "herd bootenv\n" {
		t.Fatalf("console by node: %q", r.stdout)
	}
	if r := h.ok(h.run("boot", "console", id[:8])); r.stdout != "herd bootenv\n" {
		t.Fatalf("console by id prefix: %q", r.stdout)
	}
	w := h.start("boot", "console", id, "-f")
	w.waitFor("herd bootenv\n")
	if err := bc.AppendConsole(ctx, id, 2, []byte("switch_root\n")); err != nil {
		t.Fatal(err)
	}
	w.waitFor("switch_root\n")
	h.event(id, token, model.StepDone, model.EventOK, "", 0)
	if code := w.exit(); code != 0 {
		t.Fatalf("console -f of an ended session: exit %d\n%s", code, w.stderr.String())
	}
	if w.stdout.String() != "herd bootenv\nswitch_root\n" {
		t.Fatalf("followed %q", w.stdout.String())
	}
	h.failed(h.run("boot", "console", "node404"), exitFail, "no recent boot session")
}

func TestPKIInit(t *testing.T) {
	h := newHerd(t)
	dir := filepath.Join(t.TempDir(), "pki")
	r := h.ok(h.run("pki", "init", "--dir", dir, "--edge-host", "herd.cluster"))
	if !strings.Contains(r.stdout, "herd.cluster") {
		t.Fatalf("init: %s", r.stdout)
	}
	if _, err := pki.Load(dir); err != nil {
		t.Fatal(err)
	}
	h.failed(h.run("pki", "init", "--dir", dir), exitFail, "--force")
	h.ok(h.run("pki", "init", "--dir", dir, "--force"))

	_, lan, _ := net.ParseCIDR("10.0.0.1/16")
	lan.IP = net.ParseIP("10.0.0.1")
	_, ll, _ := net.ParseCIDR("fe80::1/64")
	ll.IP = net.ParseIP("fe80::1")
	got := edgeHosts([]string{"herd.cluster"}, "appliance", []net.Addr{lan, ll})
	if !slices.Equal(got, []string{"herd.cluster", "appliance", "10.0.0.1"}) {
		t.Fatalf("edge hosts: %v", got)
	}
}
