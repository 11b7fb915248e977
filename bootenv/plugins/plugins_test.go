package plugins

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot records every path's mtime and content (or link target).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := info.ModTime().Format(time.RFC3339Nano) + " " + info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			tg, _ := os.Readlink(p)
			v += " -> " + tg
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testPlan() model.NodePlan {
	return model.NodePlan{
		Node: "n001", Hostname: "n001",
		Interfaces: []model.Interface{
			{Name: "eth0", MAC: "52:54:00:12:34:56", Address: "10.0.0.11/16", Boot: true},
			{Name: "ib0"},
		},
		Hosts: []model.HostEntry{{Name: "n001", Address: "10.0.0.11"}, {Name: "n002", Address: "10.0.0.12"}},
		Layout: &model.Layout{Name: "l", Mode: model.LayoutSimple, Simple: &model.SimpleLayout{
			Filesystems: []model.SimpleFS{
				{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
				{Type: model.FSSwap, Size: model.PartSize{Size: 1 << 30}},
			},
		}},
	}
}

func TestPluginsIdempotent(t *testing.T) {
	debianHosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
	unit := "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=chrony.service\n"
	cases := []struct {
		name     string
		plugin   Plugin
		files    map[string]string
		settings map[string]string
		plan     func(*model.NodePlan)
		want     map[string]string // path → substring it must hold ("" = must exist)
		gone     []string
	}{
		{
			name: "hostname", plugin: Hostname{},
			files:    map[string]string{"etc/hosts": debianHosts, "etc/hostname": "localhost\n"},
			settings: map[string]string{"domain": "cluster"},
			want: map[string]string{
				"etc/hostname": "n001\n",
				"etc/hosts":    "127.0.0.1\tlocalhost\n127.0.1.1\tn001.cluster\tn001\n::1",
			},
		},
		{
			name: "hosts", plugin: Hosts{},
			files: map[string]string{"etc/hosts": debianHosts + BeginMarker + "\n10.9.9.9 old\n" + EndMarker + "\n# tail\n"},
			want: map[string]string{
				"etc/hosts": debianHosts + BeginMarker + "\n10.0.0.11\tn001\n10.0.0.12\tn002\n" + EndMarker + "\n# tail\n",
			},
		},
		{
			name: "interfaces-ifupdown", plugin: Interfaces{},
			settings: map[string]string{"gateway": "10.0.0.1", "dns": "10.0.0.2"},
			want: map[string]string{
				"etc/network/interfaces": "iface eth0 inet static\n\taddress 10.0.0.11/16\n\tgateway 10.0.0.1\n\tdns-nameservers 10.0.0.2\n\nauto ib0\niface ib0 inet dhcp\n",
			},
		},
		{
			name: "interfaces-networkd", plugin: Interfaces{},
			files: map[string]string{
				"usr/lib/systemd/systemd-networkd":                "",
				"usr/lib/systemd/system/systemd-networkd.service": "[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\n",
				"usr/lib/systemd/system/systemd-networkd.socket":  "[Install]\nWantedBy=sockets.target\n",
			},
			want: map[string]string{
				"etc/systemd/network/10-herd-eth0.network":                            "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=10.0.0.11/16\n",
				"etc/systemd/network/10-herd-ib0.network":                             "Name=ib0\n\n[Network]\nDHCP=yes\n",
				"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "",
				"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "",
			},
		},
		{
			name: "fstab", plugin: Fstab{Sources: map[string]string{"disk0p1": "UUID=ABCD-1234"}},
			files:    map[string]string{"etc/fstab": "# UNCONFIGURED FSTAB\nproc /proc proc defaults 0 0\n/dev/sda1 / ext4 defaults 0 1\n"},
			settings: map[string]string{"mounts": "nas:/export/home /home nfs rw,hard; nas:/apps /opt/apps nfs4 ro"},
			want: map[string]string{
				"etc/fstab": "# UNCONFIGURED FSTAB\nproc /proc proc defaults 0 0\n" + BeginMarker + "\n" +
					"/dev/system/root\t/\text4\tdefaults\t0 1\n" +
					"UUID=ABCD-1234\t/boot/efi\tvfat\tdefaults\t0 2\n" +
					"/dev/system/swap\tnone\tswap\tsw\t0 0\n" +
					"nas:/export/home\t/home\tnfs\trw,hard,_netdev\t0 0\n" +
					"nas:/apps\t/opt/apps\tnfs4\tro,_netdev\t0 0\n" + EndMarker + "\n",
				"opt/apps": "",
				"boot/efi": "",
				"home":     "",
			},
		},
		{
			name: "limits", plugin: Limits{},
			settings: map[string]string{"memlock": "unlimited", "soft.nofile": "65536"},
			want: map[string]string{
				"etc/security/limits.d/90-herd.conf": "*\thard\tmemlock\tunlimited\n*\tsoft\tmemlock\tunlimited\n*\tsoft\tnofile\t65536\n",
			},
		},
		{
			name: "limits-removed", plugin: Limits{},
			files: map[string]string{"etc/security/limits.d/90-herd.conf": "old\n"},
			gone:  []string{"etc/security/limits.d/90-herd.conf"},
		},
		{
			name: "systemd", plugin: Systemd{},
			files: map[string]string{
				"lib/systemd/system/chronyd.service":                           unit,
				"lib/systemd/system/getty@.service":                            "[Install]\nWantedBy=getty.target\n",
				"lib/systemd/system/rpcbind.service":                           "[Install]\nWantedBy=multi-user.target\n",
				"etc/systemd/system/multi-user.target.wants/rpcbind.service":   "->/lib/systemd/system/rpcbind.service",
				"etc/systemd/system/multi-user.target.wants/unrelated.service": "->/lib/systemd/system/unrelated.service",
			},
			settings: map[string]string{"enable": "chronyd.service, getty@ttyS0.service", "disable": "rpcbind.service"},
			want: map[string]string{
				"etc/systemd/system/multi-user.target.wants/chronyd.service":   "",
				"etc/systemd/system/chrony.service":                            "",
				"etc/systemd/system/getty.target.wants/getty@ttyS0.service":    "",
				"etc/systemd/system/multi-user.target.wants/unrelated.service": "",
			},
			gone: []string{"etc/systemd/system/multi-user.target.wants/rpcbind.service"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, c.files)
			plan := testPlan()
			if c.plan != nil {
				c.plan(&plan)
			}
			settings := c.settings
			if settings == nil {
				settings = map[string]string{}
			}
			changed, err := c.plugin.Apply(context.Background(), root, plan, settings)
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) == 0 {
				t.Fatal("first run changed nothing")
			}
			for p, sub := range c.want {
				full := filepath.Join(root, p)
				if _, err := os.Lstat(full); err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				if sub != "" && !strings.Contains(read(t, root, p), sub) {
					t.Errorf("%s holds\n%s\nwant it to contain\n%s", p, read(t, root, p), sub)
				}
			}
			for _, p := range c.gone {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s still exists", p)
				}
			}
			before := snapshot(t, root)
			changed, err = c.plugin.Apply(context.Background(), root, plan, settings)
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) > 0 {
				t.Errorf("second run changed %v", changed)
			}
			after := snapshot(t, root)
			for p, v := range before {
				if after[p] != v {
					t.Errorf("second run touched %s: %q -> %q", p, v, after[p])
				}
			}
		})
	}
}

func TestSystemdLinkTargets(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/lib/systemd/system/fstrim.timer": "[Install]\nWantedBy=timers.target\n",
	})
	if _, err := (Systemd{}).Apply(context.Background(), root, model.NodePlan{}, map[string]string{"enable": "fstrim.timer"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.Readlink(filepath.Join(root, "etc/systemd/system/timers.target.wants/fstrim.timer"))
	if err != nil || got != "/usr/lib/systemd/system/fstrim.timer" {
		t.Errorf("link = %q, %v", got, err)
	}
	_, err = (Systemd{}).Apply(context.Background(), root, model.NodePlan{}, map[string]string{"enable": "nosuch.service"})
	if err == nil || !strings.Contains(err.Error(), "nosuch.service") {
		t.Errorf("enabling a missing unit: %v", err)
	}
}

// TestRootStaysInside checks that an absolute symlink in the image is
// followed inside the root, never out of it.
func TestRootStaysInside(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	// The same path inside the root exists, as it would in an image.
	if err := os.MkdirAll(filepath.Join(root, outside), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewRoot(root)
	if _, err := r.WriteFile("/etc/hostname", []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the root: %v", ents)
	}
	// The link resolves to <root>/<outside>, made inside the root.
	if b, err := os.ReadFile(filepath.Join(root, outside, "hostname")); err != nil || string(b) != "x\n" {
		t.Errorf("in-root target: %q, %v", b, err)
	}
}

func TestWriteFileKeepsOwnerAndMode(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "etc/secret")
	writeTree(t, root, map[string]string{"etc/secret": "a"})
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 123, 456); err != nil {
		t.Skip("chown needs root:", err)
	}
	r := NewRoot(root)
	if ok, err := r.WriteFile("/etc/secret", []byte("b"), 0o644); err != nil || !ok {
		t.Fatal(ok, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode())
	}
	if uid, gid := ownerOf(st); uid != 123 || gid != 456 {
		t.Errorf("owner %d:%d, want 123:456", uid, gid)
	}
	if !slices.Equal(r.Changed(), []string{"/etc/secret"}) {
		t.Errorf("changed %v", r.Changed())
	}
}

func TestReplaceBlock(t *testing.T) {
	cases := []struct{ in, block, want string }{
		{"", "a\n", BeginMarker + "\na\n" + EndMarker + "\n"},
		{"x\ny", "a\n", "x\ny\n" + BeginMarker + "\na\n" + EndMarker + "\n"},
		{"x\n" + BeginMarker + "\nold\n" + EndMarker + "\nz\n", "", "x\n" + BeginMarker + "\n" + EndMarker + "\nz\n"},
	}
	for _, c := range cases {
		if got := ReplaceBlock(c.in, c.block); got != c.want {
			t.Errorf("ReplaceBlock(%q, %q) = %q, want %q", c.in, c.block, got, c.want)
		}
	}
}

func TestSettingErrors(t *testing.T) {
	cases := []struct {
		plugin   Plugin
		settings map[string]string
	}{
		{Limits{}, map[string]string{"bogus": "1"}},
		{Limits{}, map[string]string{"medium.nofile": "1"}},
		{Fstab{}, map[string]string{"mounts": "nas:/x relative nfs"}},
		{Interfaces{}, map[string]string{"gateway": "not-an-ip"}},
		{Systemd{}, map[string]string{"enable": "a.service", "disable": "a.service"}},
		{Systemd{}, map[string]string{"enable": "../x.service"}},
	}
	for _, c := range cases {
		root := t.TempDir()
		if _, err := c.plugin.Apply(context.Background(), root, model.NodePlan{Node: "n"}, c.settings); err == nil {
			t.Errorf("%s %v: no error", c.plugin.Name(), c.settings)
		}
	}
}

func TestRunOrderAndUnknown(t *testing.T) {
	root := t.TempDir()
	plan := testPlan()
	plan.Plugins = []model.PluginConfig{{Name: "hosts"}, {Name: "hostname"}, {Name: "sync", Settings: map[string]string{"verify": "never"}}}
	res, err := Run(context.Background(), root, plan, Set(Fstab{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Plugin)
	}
	if !slices.Equal(names, []string{"hostname", "hosts"}) {
		t.Errorf("ran %v, want hostname then hosts", names)
	}
	plan.Plugins = append(plan.Plugins, model.PluginConfig{Name: "nosuch"})
	if _, err := Run(context.Background(), root, plan, Set(Fstab{}), nil); err == nil {
		t.Error("an unknown plugin ran")
	}
}

// TestWritesKeepDirectoryTimes: a plugin's write leaves its directory's
// mtime as the image set it, to the nanosecond, so the next boot's sync
// finds nothing to set back.
func TestWritesKeepDirectoryTimes(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/hosts": "old\n"})
	etc := filepath.Join(root, "etc")
	want := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(etc, want, want); err != nil {
		t.Fatal(err)
	}
	r := NewRoot(root)
	for _, w := range []func() (bool, error){
		func() (bool, error) { return r.WriteFile("/etc/hosts", []byte("new\n"), 0o644) },          // replaced
		func() (bool, error) { return r.WriteFile("/etc/hostname", []byte("n001\n"), 0o644) },      // created
		func() (bool, error) { return r.Symlink("/proc/self/mounts", "/etc/mtab") },                // link made
		func() (bool, error) { return r.WriteFile("/etc/systemd/network/10.network", nil, 0o644) }, // directories made
	} {
		if ok, err := w(); err != nil || !ok {
			t.Fatal(ok, err)
		}
		st, err := os.Stat(etc)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(want) {
			t.Errorf("after a write /etc's mtime is %v, want %v", st.ModTime(), want)
		}
	}
}
