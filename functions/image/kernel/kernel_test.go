package kernel

import (
	"slices"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// tree builds a sorted manifest from "path", "path/" (a directory),
// "path -> target" (a symlink) and "path => target" (a hardlink); a file's
// content is its path. Parent directories are added.
func tree(specs ...string) *manifest.Manifest {
	m := &manifest.Manifest{Version: manifest.FormatVersion}
	have := map[string]bool{}
	addDir := func(p string) {
		for d := p; d != "." && !have[d]; d = parent(d) {
			have[d] = true
			m.Entries = append(m.Entries, manifest.Entry{Path: d, Type: manifest.TypeDir, Mode: 0o755})
		}
	}
	m.Entries = append(m.Entries, manifest.Entry{Path: ".", Type: manifest.TypeDir, Mode: 0o755})
	for _, s := range specs {
		var e manifest.Entry
		switch {
		case strings.Contains(s, " -> "):
			p, target, _ := strings.Cut(s, " -> ")
			e = manifest.Entry{Path: p, Type: manifest.TypeSymlink, Mode: 0o777, LinkTarget: target}
		case strings.Contains(s, " => "):
			p, target, _ := strings.Cut(s, " => ")
			e = manifest.Entry{Path: p, Type: manifest.TypeHardlink, LinkTarget: target}
		case strings.HasSuffix(s, "/"):
			addDir(strings.TrimSuffix(s, "/"))
			continue
		default:
			e = manifest.Entry{Path: s, Type: manifest.TypeFile, Mode: 0o644, Size: uint64(len(s)), Digest: manifest.Sum([]byte(s))}
		}
		addDir(parent(e.Path))
		have[e.Path] = true
		m.Entries = append(m.Entries, e)
	}
	m.Sort()
	return m
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

func TestFind(t *testing.T) {
	const deb = "6.1.0-28-amd64"
	for _, tc := range []struct {
		name string
		m    *manifest.Manifest
		want []Kernel
	}{
		{
			name: "Debian with usrmerge",
			m: tree(
				"lib -> usr/lib",
				"vmlinuz -> boot/vmlinuz-"+deb,
				"vmlinuz.old -> boot/vmlinuz-6.1.0-9-amd64",
				"boot/vmlinuz-"+deb, "boot/initrd.img-"+deb, "boot/config-"+deb,
				"boot/vmlinuz-6.1.0-9-amd64",
				"usr/lib/modules/"+deb+"/modules.dep",
				"usr/lib/modules/"+deb+"/kernel/drivers/block/virtio_blk.ko",
				"usr/lib/modules/"+deb+"/kernel/fs/ext4/ext4.ko.xz",
				"usr/lib/modules/"+deb+"/build -> /usr/src/linux-headers-"+deb,
				"usr/lib/modules/6.1.0-9-amd64/kernel/fs/xfs/xfs.ko.zst",
			),
			want: []Kernel{
				{Version: deb, Path: "boot/vmlinuz-" + deb, File: "boot/vmlinuz-" + deb, Initrd: "boot/initrd.img-" + deb,
					ModulesDir: "usr/lib/modules/" + deb, ModuleCount: 2},
				{Version: "6.1.0-9-amd64", Path: "boot/vmlinuz-6.1.0-9-amd64", File: "boot/vmlinuz-6.1.0-9-amd64",
					ModulesDir: "usr/lib/modules/6.1.0-9-amd64", ModuleCount: 1},
			},
		},
		{
			name: "RHEL initramfs name, lib a real directory, a rescue kernel",
			m: tree(
				"boot/vmlinuz-5.14.0-427.el9.x86_64", "boot/initramfs-5.14.0-427.el9.x86_64.img",
				"boot/vmlinuz-0-rescue-4f2a", "boot/initramfs-0-rescue-4f2a.img",
				"lib/modules/5.14.0-427.el9.x86_64/kernel/drivers/nvme/host/nvme.ko.xz",
			),
			want: []Kernel{
				{Version: "5.14.0-427.el9.x86_64", Path: "boot/vmlinuz-5.14.0-427.el9.x86_64", File: "boot/vmlinuz-5.14.0-427.el9.x86_64",
					Initrd: "boot/initramfs-5.14.0-427.el9.x86_64.img", ModulesDir: "lib/modules/5.14.0-427.el9.x86_64", ModuleCount: 1},
				{Version: "0-rescue-4f2a", Path: "boot/vmlinuz-0-rescue-4f2a", File: "boot/vmlinuz-0-rescue-4f2a",
					Initrd: "boot/initramfs-0-rescue-4f2a.img"},
			},
		},
		{
			name: "boot links into the modules directory, initrd a hardlink, boot itself a symlink",
			m: tree(
				"boot -> efi/boot",
				"efi/boot/vmlinuz-6.8.0 -> ../../usr/lib/modules/6.8.0/vmlinuz",
				"efi/boot/a-initrd", "efi/boot/initrd.img-6.8.0 => efi/boot/a-initrd",
				"usr/lib/modules/6.8.0/vmlinuz",
			),
			want: []Kernel{{Version: "6.8.0", Path: "efi/boot/vmlinuz-6.8.0", File: "usr/lib/modules/6.8.0/vmlinuz",
				Initrd: "efi/boot/a-initrd", ModulesDir: "usr/lib/modules/6.8.0"}},
		},
		{
			name: "kernel only beside its modules",
			m:    tree("lib -> /usr/lib", "usr/lib/modules/6.10.2/vmlinuz", "usr/lib/modules/6.9.1/vmlinuz", "usr/lib/modules/6.9.1/kernel/a.ko"),
			want: []Kernel{
				{Version: "6.10.2", Path: "usr/lib/modules/6.10.2/vmlinuz", File: "usr/lib/modules/6.10.2/vmlinuz", ModulesDir: "usr/lib/modules/6.10.2"},
				{Version: "6.9.1", Path: "usr/lib/modules/6.9.1/vmlinuz", File: "usr/lib/modules/6.9.1/vmlinuz", ModulesDir: "usr/lib/modules/6.9.1", ModuleCount: 1},
			},
		},
		{
			name: "loops, dangling links, directories and no version are not kernels",
			m: tree(
				"boot/vmlinuz-1 -> vmlinuz-1", "boot/vmlinuz-2 -> vmlinuz-3", "boot/vmlinuz-3 -> vmlinuz-2",
				"boot/vmlinuz-4 -> /nowhere", "boot/vmlinuz-5/", "boot/vmlinuz-", "boot/vmlinuz",
				"boot/up -> ../../../boot/vmlinuz-6", "boot/vmlinuz-6 -> up",
			),
		},
		{name: "no kernel", m: tree("etc/hostname", "boot/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); err != nil {
				t.Fatal(err)
			}
			got := Find(tc.m)
			for i := range tc.want {
				w := &tc.want[i]
				w.Digest, w.Size = manifest.Sum([]byte(w.File)), uint64(len(w.File))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Find:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-28-amd64", "6.1.0-9-amd64", 1},
		{"6.10.0", "6.9.12", 1},
		{"6.1.0-28-amd64", "6.1.0-28-amd64", 0},
		{"6.1.0-28-amd64", "6.1.0-28-cloud-amd64", -1},
		{"5.14.0-427.el9.x86_64", "5.14.0-70.el9.x86_64", 1},
		{"6.1", "6.1.0", -1},
		{"6.1.0-028", "6.1.0-28", 0},
		{"6.1.0-28", "6.1.0-rc7", 1},
		{"0-rescue-4f2a", "5.14.0", -1},
		{"99999999999999999999999", "9", 1},
		{"", "6", -1},
		{"6..1", "6.1", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestSelectModules(t *testing.T) {
	const dir = "usr/lib/modules/6.1.0-28-amd64/"
	m := tree(
		"lib -> usr/lib",
		"boot/vmlinuz-6.1.0-28-amd64",
		dir+"modules.dep", dir+"modules.dep.bin", dir+"modules.alias", dir+"modules.order",
		dir+"build -> /usr/src/linux-headers",
		dir+"kernel/drivers/block/virtio_blk.ko.xz",
		dir+"kernel/drivers/net/virtio_net.ko.xz",
		dir+"kernel/drivers/net/net_failover.ko.xz",
		dir+"kernel/drivers/net/wireguard/wireguard.ko.xz",
		dir+"kernel/net/core/failover.ko.xz",
		dir+"kernel/drivers/net/ethernet/intel/e1000/e1000.ko.xz",
		dir+"kernel/drivers/net/phy/libphy.ko.xz",
		dir+"kernel/fs/ext4/ext4.ko.xz",
		dir+"kernel/fs/mbcache.ko.xz",
		dir+"kernel/fs/nfs/nfs.ko.xz",
		dir+"kernel/sound/core/snd.ko.xz",
		dir+"kernel/lib/crc16.ko.xz",
		dir+"kernel/drivers/md/raid1.ko.xz",
		dir+"kernel/drivers/md/README",
		dir+"kernel/drivers/scsi/sd_mod.ko.xz",
		dir+"kernel/drivers/scsi/alias.ko.xz -> sd_mod.ko.xz",
	)
	dep := strings.Join([]string{
		"kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz",
		"kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz",
		"kernel/drivers/net/ethernet/intel/e1000/e1000.ko.xz:",
		"kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz kernel/fs/jbd2/jbd2.ko.xz",
		"kernel/fs/nfs/nfs.ko.xz: kernel/net/sunrpc/sunrpc.ko.xz",
		"",
	}, "\n")
	ks := Find(m)
	if len(ks) != 1 {
		t.Fatalf("kernels: %+v", ks)
	}
	got := SelectModules(m, ks[0], []byte(dep))
	want := []string{
		"kernel/drivers/block/virtio_blk.ko.xz",
		"kernel/drivers/md/raid1.ko.xz",
		"kernel/drivers/net/ethernet/intel/e1000/e1000.ko.xz",
		"kernel/drivers/net/net_failover.ko.xz",
		"kernel/drivers/net/virtio_net.ko.xz",
		"kernel/drivers/scsi/alias.ko.xz",
		"kernel/drivers/scsi/sd_mod.ko.xz",
		"kernel/fs/ext4/ext4.ko.xz",
		"kernel/fs/mbcache.ko.xz",
		"kernel/lib/crc16.ko.xz",
		"kernel/net/core/failover.ko.xz",
		"modules.alias", "modules.dep", "modules.dep.bin", "modules.order",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SelectModules:\n got %q\nwant %q", got, want)
	}
	if got := SelectModules(m, Kernel{}, nil); got != nil {
		t.Errorf("without a modules directory: %q", got)
	}
}
