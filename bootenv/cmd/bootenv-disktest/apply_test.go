package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/bootenv/qemu"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// guest is a kernel and an initramfs with this program as /init.
type guest struct {
	kernel, initrd string
}

// buildGuest builds this program statically and packs it with the disk
// tools and modules of Debian's kernel.
func buildGuest(t *testing.T) guest {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (make deps installs qemu-system-x86): the disk apply tests need a QEMU guest")
	}
	k := testenv.DebianKernel(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "init")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the guest program: %v\n%s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	spec := initramfs.Spec{
		Init:       init,
		Tools:      initramfs.DiskTools(),
		ModulesDir: k.Modules,
		Modules:    initramfs.DiskModules(),
		Files:      map[string][]byte{"etc/lvm/lvm.conf": []byte(initramfs.LVMConf)},
	}
	if err := initramfs.Build(context.Background(), spec, &buf); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(initrd, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("initramfs: %d bytes, kernel %s", buf.Len(), k.Version)
	return guest{kernel: k.Vmlinuz, initrd: initrd}
}

// newDisk makes a sparse raw disk file.
func newDisk(t *testing.T, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineLog passes console lines to the test log.
type lineLog struct {
	t      *testing.T
	prefix string
}

func (l lineLog) Write(b []byte) (int, error) {
	l.t.Logf("%s| %s", l.prefix, strings.TrimRight(string(b), "\r\n"))
	return len(b), nil
}

type boot struct {
	layout *model.Layout
	disks  []qemu.Disk
	write  string   // marker file to write under the new root
	check  []string // files to report
}

// run boots the guest once and returns its result.
func (g guest) run(t *testing.T, name string, b boot) Result {
	t.Helper()
	raw, err := json.Marshal(b.layout)
	if err != nil {
		t.Fatal(err)
	}
	args := fmt.Sprintf("quiet loglevel=3 herd.disks=%d herd.layout=%s", len(b.disks), base64.StdEncoding.EncodeToString(raw))
	if b.write != "" {
		args += " herd.write=" + b.write
	}
	if len(b.check) > 0 {
		args += " herd.check=" + strings.Join(b.check, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	console, err := qemu.Run(ctx, qemu.Config{
		Kernel: g.kernel, Initrd: g.initrd, Append: args, Disks: b.disks,
		Console: lineLog{t: t, prefix: name},
	})
	t.Logf("%s: boot took %.1fs wall", name, time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("%s: qemu: %v", name, err)
	}
	results := qemu.Results(console, "HERD-RESULT")
	if len(results) != 1 {
		t.Fatalf("%s: %d HERD-RESULT lines on the console, want 1", name, len(results))
	}
	var r Result
	if err := json.Unmarshal(results[0], &r); err != nil {
		t.Fatalf("%s: result: %v", name, err)
	}
	t.Logf("%s: guest seconds %v", name, r.Seconds)
	// HERD_RECORD_TESTDATA=bootenv/disk/testdata keeps what Detect read
	// in the guest, for bootenv/disk's replay tests.
	if dir := os.Getenv("HERD_RECORD_TESTDATA"); dir != "" {
		for suffix, rec := range map[string]*disk.Recording{"": r.Probe, "-active": r.ProbeActive} {
			if rec == nil {
				continue
			}
			b, _ := json.MarshalIndent(rec, "", "\t")
			if err := os.WriteFile(filepath.Join(dir, name+suffix+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r
}

func mustSize(s string) *model.DiskSize {
	d, err := model.ParseDiskSize(s)
	if err != nil {
		panic(err)
	}
	return &d
}

func ps(s string) model.PartSize {
	p, err := model.ParsePartSize(s)
	if err != nil {
		panic(err)
	}
	return p
}

const gib = 1 << 30

// writes are the commands that change a disk; the rest only assemble,
// activate and mount.
func writes(cmds [][]string) [][]string {
	var out [][]string
	for _, c := range cmds {
		switch c[0] {
		case "mount", "mkdir", "vgchange":
			continue
		case "mdadm":
			if slices.Contains(c, "--assemble") {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func findLV(f *disk.Found, vg, name string) *disk.LV {
	for i := range f.LVs {
		if f.LVs[i].VG == vg && f.LVs[i].Name == name {
			return &f.LVs[i]
		}
	}
	return nil
}

func TestApplySimpleLayout(t *testing.T) {
	g := buildGuest(t)
	l := &model.Layout{Name: "simple", Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: model.DiskSelector{Type: model.DiskSSD, Size: mustSize("2GiB ± 5%")}}},
		Simple: &model.SimpleLayout{Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: ps("rest")},
			{Type: model.FSSwap, Size: ps("256MiB")},
		}}}
	disks := []qemu.Disk{{Path: newDisk(t, "d0", 2*gib), Serial: "HERD-S0"}}

	r := g.run(t, "simple-1", boot{layout: l, disks: disks, write: "/marker"})
	if r.Error != "" {
		t.Fatalf("first boot: %s", r.Error)
	}
	if !r.Changes || len(writes(r.Commands)) == 0 {
		t.Fatalf("first boot on an empty disk changed nothing: %v", r.Commands)
	}
	d := r.After.Disks[0]
	if d.Name != "vda" || d.Table != "gpt" || len(d.Partitions) != 2 || d.Serial != "HERD-S0" || d.Transport != "virtio" {
		t.Errorf("after the first boot: %+v", d)
	}
	if d.Partitions[0].FSType != "vfat" || d.Partitions[1].FSType != "LVM2_member" {
		t.Errorf("partitions after: %+v", d.Partitions)
	}
	if lv := findLV(r.After, "system", "root"); lv == nil || lv.FSType != "ext4" {
		t.Errorf("system/root after: %+v", lv)
	}
	if lv := findLV(r.After, "system", "swap"); lv == nil || lv.FSType != "swap" || lv.Size != 256<<20 {
		t.Errorf("system/swap after: %+v", lv)
	}

	r = g.run(t, "simple-2", boot{layout: l, disks: disks, check: []string{"/marker"}})
	if r.Error != "" {
		t.Fatalf("second boot: %s", r.Error)
	}
	if r.Changes || len(writes(r.Commands)) > 0 {
		t.Errorf("second boot with the same layout: changes %v, commands that write %v\n%s", r.Changes, writes(r.Commands), r.Plan)
	}
	if r.Files["/marker"] == "" {
		t.Errorf("the file written by the first boot is gone: %q", r.Files)
	}

	// A disk of the wrong size is refused with the reason and untouched.
	// An NVMe disk of the right size is there too, but it is no SSD.
	small := []qemu.Disk{
		{Path: newDisk(t, "small", 1*gib), Serial: "HERD-S1"},
		{Path: newDisk(t, "nvme", 2*gib), Serial: "HERD-N0", NVMe: true},
	}
	r = g.run(t, "wrong-size", boot{layout: l, disks: small})
	if !strings.Contains(r.Error, "disk0 wants an ssd of 2.15GB ± 5%; found nvme0n1 2.15GB (nvme, not ssd), vda 1.07GB (out of tolerance)") {
		t.Errorf("wrong size: error %q", r.Error)
	}
	if len(r.Commands) > 0 || r.Plan != nil {
		t.Errorf("wrong size: ran %v", r.Commands)
	}
}

func TestApplyMirror(t *testing.T) {
	g := buildGuest(t)
	sel := model.DiskSelector{Size: mustSize("1.5GiB ± 5%")}
	l := &model.Layout{Name: "mirror", Mode: model.LayoutAdvanced,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: sel}, {Name: "disk1", Select: sel}},
		Advanced: &model.AdvancedLayout{
			Partitions: []model.Partition{
				{Disk: "disk0", Number: 1, Type: "raid", Size: ps("rest")},
				{Disk: "disk1", Number: 1, Type: "raid", Size: ps("rest")},
			},
			Arrays:       []model.Array{{Name: "md0", Level: 1, Devices: []string{"disk0p1", "disk1p1"}}},
			VolumeGroups: []model.VolumeGroup{{Name: "data", Devices: []string{"md0"}}},
			LogicalVolumes: []model.LogicalVolume{
				{VG: "data", Name: "root", Size: ps("512MiB")},
				{VG: "data", Name: "srv", Size: ps("rest")},
			},
			Filesystems: []model.Filesystem{
				{Device: "data/root", Type: model.FSExt4, Mount: "/"},
				{Device: "data/srv", Type: model.FSXFS, Mount: "/srv"},
			},
		}}
	disks := []qemu.Disk{
		{Path: newDisk(t, "d0", 3*gib/2), Serial: "HERD-M0"},
		{Path: newDisk(t, "d1", 3*gib/2), Serial: "HERD-M1"},
	}
	r := g.run(t, "mirror-1", boot{layout: l, disks: disks, write: "/marker"})
	if r.Error != "" {
		t.Fatalf("first boot: %s", r.Error)
	}
	if len(r.After.Arrays) != 1 || r.After.Arrays[0].Name != "md0" || r.After.Arrays[0].Level != 1 || len(r.After.Arrays[0].Members) != 2 {
		t.Errorf("arrays after: %+v", r.After.Arrays)
	}
	if lv := findLV(r.After, "data", "srv"); lv == nil || lv.FSType != "xfs" {
		t.Errorf("data/srv after: %+v", lv)
	}
	// The root marker is written after mounting; /srv gets one too.
	r = g.run(t, "mirror-2", boot{layout: l, disks: disks, write: "/srv/marker", check: []string{"/marker"}})
	if r.Error != "" {
		t.Fatalf("second boot: %s", r.Error)
	}
	if r.Changes || len(writes(r.Commands)) > 0 {
		t.Errorf("second boot with the same layout: changes %v, commands that write %v\n%s", r.Changes, writes(r.Commands), r.Plan)
	}
	if r.Files["/marker"] == "" {
		t.Errorf("the file written by the first boot is gone: %q", r.Files)
	}

	// /srv becomes ext4: only it is made again; / keeps its file.
	l.Advanced.Filesystems[1].Type = model.FSExt4
	r = g.run(t, "mirror-3", boot{layout: l, disks: disks, check: []string{"/marker", "/srv/marker"}})
	if r.Error != "" {
		t.Fatalf("third boot: %s", r.Error)
	}
	w := writes(r.Commands)
	if len(w) != 1 || w[0][0] != "mkfs.ext4" || w[0][len(w[0])-1] != "/dev/data/srv" {
		t.Errorf("changing /srv to ext4 ran %v, want only mkfs.ext4 on /dev/data/srv", w)
	}
	if r.Files["/marker"] == "" {
		t.Errorf("/marker on the untouched root is gone")
	}
	if r.Files["/srv/marker"] != "" {
		t.Errorf("/srv/marker survived a new filesystem")
	}
	if lv := findLV(r.After, "data", "srv"); lv == nil || lv.FSType != "ext4" {
		t.Errorf("data/srv after: %+v", lv)
	}

	// New partition tables while the array runs and the group is active
	// (the guest assembles what it finds before planning): both must be
	// stopped before the disks are written.
	l.Advanced.Partitions = []model.Partition{
		{Disk: "disk0", Number: 1, Type: "raid", Size: ps("1GiB")},
		{Disk: "disk0", Number: 2, Type: "linux", Size: ps("rest")},
		{Disk: "disk1", Number: 1, Type: "raid", Size: ps("1GiB")},
		{Disk: "disk1", Number: 2, Type: "linux", Size: ps("rest")},
	}
	l.Advanced.Filesystems = append(l.Advanced.Filesystems, model.Filesystem{Device: "disk0p2", Type: model.FSExt4, Mount: "/scratch"})
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	r = g.run(t, "mirror-4", boot{layout: l, disks: disks, check: []string{"/marker"}})
	if r.Error != "" {
		t.Fatalf("fourth boot: %s", r.Error)
	}
	if len(r.Activated) == 0 || len(r.Commands) < 2 || strings.Join(r.Commands[0], " ") != "vgchange --activate n data" || r.Commands[1][1] != "--stop" {
		t.Errorf("repartitioning did not release the running array and group first: %v", r.Commands)
	}
	if r.Files["/marker"] != "" {
		t.Errorf("/marker survived new partitions")
	}
	if len(r.After.Arrays) != 1 || len(r.After.Arrays[0].Members) != 2 || r.After.Disks[0].Partitions[1].FSType != "ext4" {
		t.Errorf("after new partitions: arrays %+v, disk0 %+v", r.After.Arrays, r.After.Disks[0])
	}
}
