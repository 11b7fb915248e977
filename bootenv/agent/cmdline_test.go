package agent

import (
	"errors"
	"slices"
	"testing"

	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/functions/model"
)

const sid = "0123456789abcdef0123456789abcdef"

func TestParseCmdline(t *testing.T) {
	good := "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 herd.session=" + sid + " herd.server=https://10.0.0.1:8443/ herd.token=tok initrd=initrd initrd=bootenv"
	c, err := ParseCmdline(good + " herd.debug herd.init=/usr/lib/systemd/systemd\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Session != sid || c.Server != "https://10.0.0.1:8443" || c.Token != "tok" || !c.Debug ||
		c.Init != "/usr/lib/systemd/systemd" || c.Args["console"] != "ttyS0,115200" {
		t.Errorf("parsed %+v", c)
	}
	if c, _ := ParseCmdline(good + " herd.debug=0"); c.Debug {
		t.Error("herd.debug=0 turned debugging on")
	}
	for _, bad := range []string{
		"quiet",
		"herd.session=" + sid + " herd.server=https://x",
		"herd.session=nothex herd.server=https://x herd.token=t",
		"herd.session=" + sid + " herd.server=ftp://x herd.token=t",
		"herd.session=" + sid + " herd.server=https://x herd.token=t herd.init=sbin/init",
	} {
		if _, err := ParseCmdline(bad); !errors.Is(err, ErrCmdline) {
			t.Errorf("ParseCmdline(%q) = %v", bad, err)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(`a  b="c d" "e f"=g h=""` + "\n")
	want := []string{"a", "b=c d", "e f=g", "h="}
	if !slices.Equal(got, want) {
		t.Errorf("SplitCmdline = %q, want %q", got, want)
	}
}

func TestModuleNames(t *testing.T) {
	got := ModuleNames([]string{
		"/lib/modules/6.1.0-28-amd64/kernel/drivers/block/virtio_blk.ko.xz",
		"/lib/modules/6.1.0-28-amd64/kernel/drivers/md/dm-mod.ko",
		"/lib/modules/6.1.0-28-amd64/kernel/fs/ext4/ext4.ko.zst",
		"/lib/modules/6.1.0-28-amd64/modules.dep",
		"/lib/modules/6.1.0-28-amd64/kernel/fs/ext4/ext4.ko",
	})
	if want := []string{"dm_mod", "ext4", "virtio_blk"}; !slices.Equal(got, want) {
		t.Errorf("ModuleNames = %v, want %v", got, want)
	}
}

func TestDeviceNames(t *testing.T) {
	l := &model.Layout{Name: "m", Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0"}, {Name: "disk1"}},
		Simple: &model.SimpleLayout{Mirror: true, Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSXFS, Size: model.PartSize{Rest: true}},
		}}}
	found := disk.Found{Disks: []disk.Detected{
		{Name: "nvme0n1", Partitions: []disk.Partition{{Number: 1, FSUUID: "AAAA-0001"}, {Number: 2}}},
		{Name: "nvme1n1", Partitions: []disk.Partition{{Number: 1, FSUUID: "AAAA-0002"}, {Number: 2}}},
	}}
	src, espDisk, espPart := DeviceNames(l.Expand(), map[string]string{"disk0": "nvme1n1", "disk1": "nvme0n1"}, found, "/boot/efi")
	if src["disk0p1"] != "UUID=AAAA-0002" || src["disk1p1"] != "UUID=AAAA-0001" || src["system/root"] != "/dev/system/root" {
		t.Errorf("sources %v", src)
	}
	if espDisk != "/dev/nvme1n1" || espPart != 1 {
		t.Errorf("ESP %s %d, want disk0's first partition", espDisk, espPart)
	}
}

func TestMirrorBootParts(t *testing.T) {
	l := &model.Layout{Name: "m", Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0"}, {Name: "disk1"}},
		Simple: &model.SimpleLayout{Mirror: true, Firmware: model.FirmwareBIOS, Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSXFS, Size: model.PartSize{Rest: true}},
		}}}
	found := disk.Found{Disks: []disk.Detected{
		{Name: "sda", Partitions: []disk.Partition{{Number: 1, Path: "/dev/sda1"}, {Number: 2, Path: "/dev/sda2"}}},
		{Name: "sdb", Partitions: []disk.Partition{{Number: 1, Path: "/dev/sdb1"}, {Number: 2, Path: "/dev/sdb2"}}},
	}}
	got := MirrorBootParts(l.Expand(), map[string]string{"disk0": "sda", "disk1": "sdb"}, found, model.BIOSBootMount)
	if want := []MirrorPart{{Disk: "/dev/sdb", Part: 1, Dev: "/dev/sdb1"}}; !slices.Equal(got, want) {
		t.Errorf("mirror boot partitions %+v, want %+v", got, want)
	}
	l.Simple.Mirror, l.Disks = false, l.Disks[:1]
	if got := MirrorBootParts(l.Expand(), map[string]string{"disk0": "sda"}, found, model.BIOSBootMount); len(got) != 0 {
		t.Errorf("one disk: %+v", got)
	}
}
