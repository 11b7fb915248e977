package disk

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
)

// The recordings in testdata are what Detect read inside the QEMU guest
// of bootenv/cmd/bootenv-disktest (Debian's kernel, virtio disks), saved
// with HERD_RECORD_TESTDATA: real output of sfdisk, blkid, mdadm and lvm.
// NAME.json is the first read of a boot, NAME-active.json the read after
// Activate assembled the array and activated the volume group.
func recording(t *testing.T, name string) *Recording {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Recording
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func detect(t *testing.T, name string) Found {
	t.Helper()
	f, err := Detect(context.Background(), recording(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func TestDetectBlankVirtioDisk(t *testing.T) {
	f := detect(t, "simple-1")
	if len(f.Disks) != 1 {
		t.Fatalf("disks: %+v", f.Disks)
	}
	d := f.Disks[0]
	if d.Name != "vda" || d.Size != 2<<30 || d.Serial != "HERD-S0" || d.Transport != "virtio" || d.Table != "" ||
		len(d.Partitions) != 0 || d.ByPath != "pci-0000:00:02.0" {
		t.Errorf("vda: %+v", d)
	}
	// virtio reports rotational=1 whatever backs it; it counts as an SSD.
	if !d.Rotational || d.Type() != model.DiskSSD {
		t.Errorf("vda type %s, rotational %v", d.Type(), d.Rotational)
	}
	if len(f.Arrays)+len(f.PVs)+len(f.LVs) != 0 {
		t.Errorf("a blank disk has arrays or LVM: %+v", f)
	}
}

func TestDetectAppliedSimpleLayout(t *testing.T) {
	f := detect(t, "simple-2")
	d := f.Disks[0]
	if d.Table != "gpt" || len(d.Partitions) != 2 {
		t.Fatalf("vda: %+v", d)
	}
	p1, p2 := d.Partitions[0], d.Partitions[1]
	if p1.Path != "/dev/vda1" || p1.Size != 512<<20 || p1.TypeGUID != esp || p1.FSType != "vfat" || p1.FSLabel != "ESP0" {
		t.Errorf("vda1: %+v", p1)
	}
	if p2.Number != 2 || p2.TypeGUID != lvm || p2.FSType != "LVM2_member" {
		t.Errorf("vda2: %+v", p2)
	}
	if len(f.PVs) != 1 || f.PVs[0] != (PV{Device: "/dev/vda2", VG: "system"}) {
		t.Errorf("PVs: %+v", f.PVs)
	}
	// Not active yet: no filesystem can be seen inside the volumes.
	for _, lv := range f.LVs {
		if lv.Active || lv.FSType != "" {
			t.Errorf("inactive LV: %+v", lv)
		}
	}
	r := &recorder{}
	changed, err := Activate(context.Background(), r, f)
	if err != nil || !changed || strings.Join(r.cmds, "\n") != "lvm vgchange --activate y" {
		t.Errorf("activate: %v %v %q", changed, err, r.cmds)
	}

	f = detect(t, "simple-2-active")
	want := map[string]LV{
		"root": {VG: "system", Name: "root", FSType: "ext4", Active: true},
		"swap": {VG: "system", Name: "swap", Size: 256 << 20, FSType: "swap", Active: true},
	}
	for _, lv := range f.LVs {
		w := want[lv.Name]
		if lv.Name == "root" {
			w.Size = lv.Size
		}
		if lv != w {
			t.Errorf("LV %+v, want %+v", lv, w)
		}
	}
	if changed, err := Activate(context.Background(), &recorder{}, f); changed || err != nil {
		t.Errorf("activate when all is active: %v %v", changed, err)
	}
}

// mirror is the layout the QEMU test applied to two 1.5GiB disks.
func mirror() *model.Layout {
	sel := model.DiskSelector{Size: size("1.5GiB ± 5%")}
	rest := model.PartSize{Rest: true}
	return &model.Layout{Name: "mirror", Mode: model.LayoutAdvanced,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: sel}, {Name: "disk1", Select: sel}},
		Advanced: &model.AdvancedLayout{
			Partitions: []model.Partition{
				{Disk: "disk0", Number: 1, Type: "raid", Size: rest},
				{Disk: "disk1", Number: 1, Type: "raid", Size: rest},
			},
			Arrays:       []model.Array{{Name: "md0", Level: 1, Devices: []string{"disk0p1", "disk1p1"}}},
			VolumeGroups: []model.VolumeGroup{{Name: "data", Devices: []string{"md0"}}},
			LogicalVolumes: []model.LogicalVolume{
				{VG: "data", Name: "root", Size: model.PartSize{Size: 512 << 20}},
				{VG: "data", Name: "srv", Size: rest},
			},
			Filesystems: []model.Filesystem{
				{Device: "data/root", Type: model.FSExt4, Mount: "/"},
				{Device: "data/srv", Type: model.FSXFS, Mount: "/srv"},
			},
		}}
}

func TestDetectMirror(t *testing.T) {
	f := detect(t, "mirror-2")
	if len(f.Arrays) != 1 {
		t.Fatalf("arrays: %+v", f.Arrays)
	}
	a := f.Arrays[0]
	if a.Name != "md0" || a.Level != 1 || a.Devices != 2 || a.Device != "" ||
		strings.Join(a.Members, " ") != "/dev/vda1 /dev/vdb1" {
		t.Errorf("array before assembly: %+v", a)
	}
	r := &recorder{}
	if _, err := Activate(context.Background(), r, f); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.cmds, "\n"); got != "mdadm --assemble /dev/md/md0 --run /dev/vda1 /dev/vdb1\nlvm vgchange --activate y" {
		t.Errorf("activate ran:\n%s", got)
	}

	f = detect(t, "mirror-2-active")
	if a := f.Arrays[0]; a.Device != "/dev/md0" {
		t.Errorf("assembled array: %+v", a)
	}
	// LVM names the array /dev/md0; Detect gives the name plans use.
	if len(f.PVs) != 1 || f.PVs[0] != (PV{Device: "/dev/md/md0", VG: "data"}) {
		t.Errorf("PVs: %+v", f.PVs)
	}
	l := mirror()
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := Match(l, f.Disks)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanLayout(l, f, m)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes() {
		t.Errorf("the applied layout plans changes:\n%s", p)
	}
	r = &recorder{}
	if err := Apply(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.cmds {
		if !strings.HasPrefix(c, "mkdir ") && !strings.HasPrefix(c, "mount ") && c != "vgchange --activate y data" {
			t.Errorf("the applied layout runs %q", c)
		}
	}
}

func TestDetectRefusesUnrecordedTools(t *testing.T) {
	r := recording(t, "simple-1")
	delete(r.Commands, "sfdisk --json /dev/vda")
	if _, err := Detect(context.Background(), r); err == nil || !strings.Contains(err.Error(), "detect disk vda") {
		t.Errorf("sfdisk missing: %v", err)
	}
}

func TestPathID(t *testing.T) {
	for _, tc := range []struct{ sys, name, transport, want string }{
		{"../devices/pci0000:00/0000:00:02.0/virtio0/block/vda", "vda", "virtio", "pci-0000:00:02.0"},
		{"../devices/pci0000:00/0000:00:1d.0/0000:3b:00.0/nvme/nvme0/nvme0n1", "nvme0n1", "nvme", "pci-0000:3b:00.0-nvme-1"},
		{"../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sda", "sata", ""},
	} {
		if got := pathID(tc.sys, tc.name, tc.transport); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.sys, got, tc.want)
		}
		if got := transportOf(tc.sys, tc.name); got != tc.transport {
			t.Errorf("%s: transport %q, want %q", tc.sys, got, tc.transport)
		}
	}
}

func TestIsPCIAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"0000:00:02.0": true, "0000:3b:00.7": true, "0000:3B:00.0": false, "0000:00:02.8": false,
		"pci0000:00": false, "virtio0": false, "0000:00:02": false,
	} {
		if isPCIAddr(s) != want {
			t.Errorf("isPCIAddr(%q) != %v", s, want)
		}
	}
}

func TestDetectNVMe(t *testing.T) {
	f := detect(t, "wrong-size")
	if len(f.Disks) != 2 {
		t.Fatalf("disks: %+v", f.Disks)
	}
	n := f.Disks[0]
	if n.Name != "nvme0n1" || n.Transport != "nvme" || n.Type() != model.DiskNVMe || n.Serial != "HERD-N0" ||
		n.Model != "QEMU NVMe Ctrl" || n.Size != 2<<30 || n.ByPath != "pci-0000:00:03.0-nvme-1" || n.PartitionPath(1) != "/dev/nvme0n1p1" {
		t.Errorf("nvme0n1: %+v", n)
	}
}
