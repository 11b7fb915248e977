package disk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
)

const (
	gb  = 1000 * 1000 * 1000
	tb  = 1000 * gb
	esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	lvm = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
	rai = "A19D880F-05FC-4D3B-A006-743F0F84911E"
)

func size(s string) *model.DiskSize {
	d, err := model.ParseDiskSize(s)
	if err != nil {
		panic(err)
	}
	return &d
}

func nvme(name, serial string, bytes uint64) Detected {
	return Detected{Name: name, Serial: serial, Transport: "nvme", Size: bytes, Model: "SAMSUNG MZQL2960HCJR", Vendor: "Samsung",
		ByPath: "pci-0000:0" + name[4:5] + ":00.0-nvme-1"}
}

func hdd(name string, bytes uint64) Detected {
	return Detected{Name: name, Rotational: true, Transport: "sata", Size: bytes, Vendor: "ATA", Model: "ST1000", ByPath: "pci-0000:00:17.0-ata-" + name[2:]}
}

func ssd(name string, bytes uint64) Detected {
	return Detected{Name: name, Transport: "sata", Size: bytes, Vendor: "ATA", Model: "MZ7L3960", ByPath: "pci-0000:00:17.0-ata-" + name[2:]}
}

func layout(disks ...model.DiskSelector) *model.Layout {
	l := &model.Layout{Name: "test", Mode: model.LayoutSimple, Simple: &model.SimpleLayout{
		Filesystems: []model.SimpleFS{{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}}},
	}}
	for i, s := range disks {
		l.Disks = append(l.Disks, model.LayoutDisk{Name: fmt.Sprintf("disk%d", i), Select: s})
	}
	l.Simple.Mirror = len(disks) == 2
	return l
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     *model.Layout
		found []Detected
		want  map[string]string
		err   string // substring of the refusal
	}{
		{
			name:  "size within tolerance, extra disks ignored",
			l:     layout(model.DiskSelector{Type: model.DiskNVMe, Size: size("960GB ± 5%")}),
			found: []Detected{hdd("sda", 4*tb), nvme("nvme0n1", "S1", 950*gb), ssd("sdb", 240*gb)},
			want:  map[string]string{"disk0": "nvme0n1"},
		},
		{
			name:  "out of tolerance and wrong type, with reasons",
			l:     layout(model.DiskSelector{Type: model.DiskNVMe, Size: size("960GB ± 5%")}),
			found: []Detected{nvme("nvme0n1", "S1", 1920*gb), hdd("sda", 960*gb)},
			err:   "disk0 wants an nvme of 960GB ± 5%; found nvme0n1 1.92TB (out of tolerance), sda 960GB (hdd, not nvme)",
		},
		{
			name:  "ambiguous",
			l:     layout(model.DiskSelector{Type: model.DiskNVMe}),
			found: []Detected{nvme("nvme0n1", "S1", 960*gb), nvme("nvme1n1", "S2", 960*gb)},
			err:   "2 disks fit (nvme0n1 960GB, nvme1n1 960GB): ambiguous",
		},
		{
			name:  "serial pinning picks the fourth nvme",
			l:     layout(model.DiskSelector{Serial: "S4"}),
			found: []Detected{nvme("nvme0n1", "S1", 960*gb), nvme("nvme4n1", "S4", 960*gb)},
			want:  map[string]string{"disk0": "nvme4n1"},
		},
		{
			name:  "serial not present",
			l:     layout(model.DiskSelector{Serial: "S9"}),
			found: []Detected{nvme("nvme0n1", "S1", 960*gb)},
			err:   "disk0 wants a disk with serial S9; found nvme0n1 960GB (serial S1)",
		},
		{
			name:  "by-path pinning",
			l:     layout(model.DiskSelector{Path: "/dev/disk/by-path/pci-0000:00:17.0-ata-b"}),
			found: []Detected{ssd("sda", 960*gb), ssd("sdb", 960*gb)},
			want:  map[string]string{"disk0": "sdb"},
		},
		{
			name:  "identical mirror halves in name order",
			l:     layout(model.DiskSelector{Type: model.DiskNVMe, Size: size("960GB+-5%")}, model.DiskSelector{Type: model.DiskNVMe, Size: size("960GB+-5%")}),
			found: []Detected{nvme("nvme10n1", "S3", 960*gb), nvme("nvme2n1", "S2", 960*gb), hdd("sda", 960*gb)},
			want:  map[string]string{"disk0": "nvme2n1", "disk1": "nvme10n1"},
		},
		{
			name:  "mirror with one disk gone",
			l:     layout(model.DiskSelector{Type: model.DiskNVMe}, model.DiskSelector{Type: model.DiskNVMe}),
			found: []Detected{nvme("nvme0n1", "S1", 960*gb), hdd("sda", 960*gb)},
			err:   "disk0 and disk1 want an nvme; found sda 960GB (hdd, not nvme), nvme0n1 960GB (fits, but 2 disks are wanted)",
		},
		{
			name:  "specific selector first, the general one takes what is left",
			l:     layout(model.DiskSelector{Type: model.DiskSSD}, model.DiskSelector{Serial: "X"}),
			found: []Detected{ssd("sda", 960*gb), func() Detected { d := ssd("sdb", 960*gb); d.Serial = "X"; return d }()},
			want:  map[string]string{"disk0": "sda", "disk1": "sdb"},
		},
		{
			name:  "missing disk",
			l:     layout(model.DiskSelector{Type: model.DiskHDD}),
			found: nil,
			err:   "disk0 wants an hdd; found no disks at all",
		},
		{
			name:  "vendor and model globs, case-insensitive",
			l:     layout(model.DiskSelector{Vendor: "samsung", Model: "*MZQL2*"}),
			found: []Detected{ssd("sda", 960*gb), nvme("nvme0n1", "S1", 960*gb)},
			want:  map[string]string{"disk0": "nvme0n1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.l.Validate(); err != nil {
				t.Fatalf("layout: %v", err)
			}
			got, err := Match(tc.l, tc.found)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("match %v, want %v", got, tc.want)
			}
		})
	}
}

// applied returns what a node looks like after the simple mirror layout
// was applied to nvme0n1 and nvme1n1 of 960GB.
func appliedMirror() Found {
	disk := func(name string) Detected {
		d := nvme(name, name, 960*gb)
		d.Table = "gpt"
		d.Partitions = []Partition{
			{Number: 1, Path: d.PartitionPath(1), Size: 512 * mib, TypeGUID: esp, FSType: "vfat"},
			{Number: 2, Path: d.PartitionPath(2), Size: 960*gb - gptBackup - 513*mib, TypeGUID: rai, FSType: "linux_raid_member"},
		}
		return d
	}
	return Found{
		Disks:  []Detected{disk("nvme0n1"), disk("nvme1n1"), hdd("sda", 4*tb)},
		Arrays: []Array{{Name: "md0", Level: 1, Members: []string{"/dev/nvme0n1p2", "/dev/nvme1n1p2"}, Devices: 2}},
		PVs:    []PV{{Device: "/dev/md/md0", VG: "system"}},
		LVs: []LV{
			{VG: "system", Name: "swap", Size: 8 * 1 << 30, FSType: "swap"},
			{VG: "system", Name: "var_log", Size: 20 * 1 << 30, FSType: "xfs"},
			{VG: "system", Name: "root", Size: 800 * gb, FSType: "ext4"},
		},
	}
}

func mirrorLayout() *model.Layout {
	s := model.DiskSelector{Type: model.DiskNVMe, Size: size("960GB ± 5%")}
	l := layout(s, s)
	l.Simple.Filesystems = []model.SimpleFS{
		{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
		{Mount: "/var/log", Type: model.FSXFS, Size: model.PartSize{Size: 20 << 30}},
		{Type: model.FSSwap, Size: model.PartSize{Size: 8 << 30}},
	}
	return l
}

func kinds(p Plan) string {
	var k []string
	for _, s := range p.Steps {
		k = append(k, string(s.Kind)+" "+s.Target)
	}
	return strings.Join(k, "; ")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Found)
		want   string // the steps before the mounts
	}{
		{"existing matching layout", func(*Found) {}, "assemble-array /dev/md/md0; activate-vg system"},
		{"one filesystem changed", func(f *Found) { f.LVs[1].FSType = "ext4" }, "assemble-array /dev/md/md0; activate-vg system; mkfs /dev/system/var_log"},
		{"one volume resized", func(f *Found) { f.LVs[1].Size = 10 << 30 },
			"assemble-array /dev/md/md0; activate-vg system; create-lv system/var_log; mkfs /dev/system/var_log"},
		{"blank disks", func(f *Found) {
			for i := range f.Disks {
				f.Disks[i].Table, f.Disks[i].Partitions = "", nil
			}
			f.Arrays, f.PVs, f.LVs = nil, nil, nil
		}, "partition disk0 (/dev/nvme0n1); partition disk1 (/dev/nvme1n1); create-array /dev/md/md0; create-vg system; " +
			"create-lv system/var_log; create-lv system/swap; create-lv system/root; mkfs /dev/nvme0n1p1; mkfs /dev/nvme1n1p1; " +
			"mkfs /dev/system/root; mkfs /dev/system/var_log; mkfs /dev/system/swap"},
		{"one disk's table differs", func(f *Found) { f.Disks[1].Partitions[0].TypeGUID = lvm },
			"partition disk1 (/dev/nvme1n1); create-array /dev/md/md0; create-vg system; create-lv system/var_log; create-lv system/swap; " +
				"create-lv system/root; mkfs /dev/nvme1n1p1; mkfs /dev/system/root; mkfs /dev/system/var_log; mkfs /dev/system/swap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := mirrorLayout()
			if err := l.Validate(); err != nil {
				t.Fatal(err)
			}
			f := appliedMirror()
			tc.change(&f)
			m, err := Match(l, f.Disks)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PlanLayout(l, f, m)
			if err != nil {
				t.Fatal(err)
			}
			got := kinds(p)
			mounts := "; mount /newroot; mount /newroot/boot/efi; mount /newroot/var/log"
			if got != tc.want+mounts {
				t.Errorf("steps:\n%s\nwant:\n%s", got, tc.want+mounts)
			}
			if strings.Contains(p.String(), "sda") {
				t.Errorf("the plan touches a disk the layout does not name:\n%s", p)
			}
			if tc.name == "existing matching layout" && (p.Changes() || !strings.Contains(p.String(), "nothing to do")) {
				t.Errorf("matching layout:\n%s", p)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	l := mirrorLayout()
	f := appliedMirror()
	f.PVs = append(f.PVs, PV{Device: "/dev/sda1", VG: "system"})
	m, err := Match(l, f.Disks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PlanLayout(l, f, m); err == nil || !strings.Contains(err.Error(), "/dev/sda1, which this layout does not name") {
		t.Errorf("VG on an unnamed disk: %v", err)
	}
	tooSmall := appliedMirror()
	tooSmall.Disks[0].Size = 100 * mib
	tooSmall.Disks[1].Size = 100 * mib
	if _, err := PlanLayout(l, tooSmall, map[string]string{"disk0": "nvme0n1", "disk1": "nvme1n1"}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("too small: %v", err)
	}
	if _, err := PlanLayout(l, f, map[string]string{"disk0": "nvme0n1"}); err == nil {
		t.Error("planned with disk1 unmatched")
	}
}

// recorder is a Runner that records commands and can fail one.
type recorder struct {
	cmds []string
	fail string
}

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	c := strings.Join(append([]string{name}, args...), " ")
	r.cmds = append(r.cmds, c)
	if r.fail != "" && strings.HasPrefix(c, r.fail) {
		return nil, errors.New("exit status 1")
	}
	return nil, nil
}

func TestApplyRunsExactCommands(t *testing.T) {
	l := &model.Layout{Name: "one", Mode: model.LayoutSimple, Disks: []model.LayoutDisk{{Name: "disk0", Select: model.DiskSelector{Type: model.DiskSSD}}},
		Simple: &model.SimpleLayout{Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
			{Type: model.FSSwap, Size: model.PartSize{Size: 1 << 30}},
		}}}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	f := Found{Disks: []Detected{ssd("sda", 240*gb), nvme("nvme0n1", "x", 960*gb)}}
	m, err := Match(l, f.Disks)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanLayout(l, f, m)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if err := Apply(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"wipefs --all --force /dev/sda",
		"sgdisk --zap-all /dev/sda",
		"sgdisk --new=1:0:+512M --typecode=1:" + esp + " --new=2:0:0 --typecode=2:" + lvm + " /dev/sda",
		"blockdev --rereadpt /dev/sda",
		"wipefs --all --force /dev/sda1",
		"wipefs --all --force /dev/sda2",
		"pvcreate --force --force --yes /dev/sda2",
		"vgcreate --yes system /dev/sda2",
		"lvcreate --yes --wipesignatures y --name swap --size 1073741824b system",
		"lvcreate --yes --wipesignatures y --name root --extents 100%FREE system",
		"mkfs.vfat -F 32 -n ESP0 /dev/sda1",
		"mkfs.ext4 -F /dev/system/root",
		"mkswap -f /dev/system/swap",
		"mkdir -p /newroot",
		"mount -t ext4 /dev/system/root /newroot",
		"mkdir -p /newroot/boot/efi",
		"mount -t vfat /dev/sda1 /newroot/boot/efi",
	}
	if strings.Join(r.cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(r.cmds, "\n"), strings.Join(want, "\n"))
	}
	r = &recorder{fail: "vgcreate"}
	err = Apply(context.Background(), p, r)
	if err == nil || !strings.Contains(err.Error(), "create-vg system") || strings.Contains(strings.Join(r.cmds, "\n"), "lvcreate") {
		t.Errorf("failing vgcreate: %v, ran %q", err, r.cmds)
	}
}

// TestPlanReleasesRunningArrays: at boot Activate has assembled the array
// and activated the group; repartitioning a member disk must deactivate
// and stop them first, and the group whose volumes were wiped is not
// removed again (vgremove would find nothing and fail).
func TestPlanReleasesRunningArrays(t *testing.T) {
	l := mirrorLayout()
	f := appliedMirror()
	f.Arrays[0].Device = "/dev/md127"
	for i := range f.LVs {
		f.LVs[i].Active = true
	}
	f.Disks[1].Partitions[0].TypeGUID = lvm
	m, err := Match(l, f.Disks)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanLayout(l, f, m)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if err := Apply(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.cmds, "\n")
	if !strings.HasPrefix(got, "vgchange --activate n system\nmdadm --stop /dev/md127\nwipefs --all --force /dev/nvme1n1\n") {
		t.Errorf("commands do not release the array first:\n%s", got)
	}
	if strings.Count(got, "mdadm --stop") != 1 || strings.Contains(got, "vgremove") {
		t.Errorf("stops twice or removes a wiped group:\n%s", got)
	}

	// Nothing differs: a running array is not assembled again.
	f = appliedMirror()
	f.Arrays[0].Device = "/dev/md127"
	if p, err = PlanLayout(l, f, m); err != nil {
		t.Fatal(err)
	}
	if s := p.Steps[0]; s.Kind != StepAssemble || len(s.Commands) != 0 || !strings.Contains(s.Why, "runs as /dev/md127") {
		t.Errorf("running array: %+v", s)
	}
}
