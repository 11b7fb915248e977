package disk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Probe is how Detect reads a machine: commands through Run, and files
// under /sys and /dev. MachineProbe reads this machine; a Recording of a
// real machine (captured with RecordingProbe) replays one in tests.
type Probe interface {
	Runner
	ReadFile(name string) ([]byte, error)
	// ReadDir lists the names in a directory, sorted.
	ReadDir(name string) ([]string, error)
	Readlink(name string) (string, error)
}

// MachineProbe reads this machine.
type MachineProbe struct{ ExecRunner }

// ReadFile reads a file.
func (MachineProbe) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ReadDir lists a directory.
func (MachineProbe) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}

// Readlink reads a symbolic link.
func (MachineProbe) Readlink(name string) (string, error) { return os.Readlink(name) }

// Detect reads the disks of the machine, their partition tables and
// filesystems, md arrays (from member superblocks, assembled or not) and
// LVM. It changes nothing. Disks are the block devices with a device
// behind them (not loop, md, dm, ram or zram); virtio disks count as SSDs
// unless the kernel says they rotate (qemu's rotation_rate=…).
// Filesystems inside arrays and volumes are seen only once those are
// assembled and active: run Activate first on a fresh boot.
func Detect(ctx context.Context, p Probe) (Found, error) {
	var f Found
	names, err := p.ReadDir("/sys/block")
	if err != nil {
		return f, fmt.Errorf("detect disks: %w", err)
	}
	byPath := readByPath(p)
	for _, name := range names {
		if _, err := p.Readlink("/sys/block/" + name + "/device"); err != nil {
			continue // md, dm, loop, ram: no device behind them
		}
		if strings.HasPrefix(name, "sr") || strings.HasPrefix(name, "fd") {
			continue
		}
		d, err := detectDisk(ctx, p, name, byPath)
		if err != nil {
			return f, fmt.Errorf("detect disk %s: %w", name, err)
		}
		f.Disks = append(f.Disks, d)
	}
	slices.SortFunc(f.Disks, func(a, b Detected) int { return naturalCompare(a.Name, b.Name) })
	blk, err := blkid(ctx, p)
	if err != nil {
		return f, fmt.Errorf("detect filesystems: %w", err)
	}
	for i := range f.Disks {
		for j := range f.Disks[i].Partitions {
			pt := &f.Disks[i].Partitions[j]
			if b, ok := blk[pt.Path]; ok {
				pt.FSType, pt.FSLabel, pt.FSUUID = b["TYPE"], b["LABEL"], b["UUID"]
			}
		}
	}
	if f.Arrays, err = detectArrays(ctx, p, f.Disks); err != nil {
		return f, fmt.Errorf("detect md arrays: %w", err)
	}
	f.ArrayFS = map[string]string{}
	for _, a := range f.Arrays {
		if b, ok := blk[a.Device]; ok && a.Device != "" {
			f.ArrayFS[a.Name] = b["TYPE"]
		}
	}
	if f.PVs, f.LVs, err = detectLVM(ctx, p, blk); err != nil {
		return f, fmt.Errorf("detect LVM: %w", err)
	}
	// LVM names an array's node (/dev/md127); plans name it /dev/md/NAME.
	for i, pv := range f.PVs {
		for _, a := range f.Arrays {
			if a.Device != "" && pv.Device == a.Device && a.Name != "" {
				f.PVs[i].Device = "/dev/md/" + a.Name
			}
		}
	}
	return f, nil
}

func readFileString(p Probe, name string) string {
	b, err := p.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readByPath maps a disk name to its name under /dev/disk/by-path, where
// udev made them.
func readByPath(p Probe) map[string]string {
	out := map[string]string{}
	names, err := p.ReadDir("/dev/disk/by-path")
	if err != nil {
		return out
	}
	for _, n := range names {
		target, err := p.Readlink("/dev/disk/by-path/" + n)
		if err != nil {
			continue
		}
		dev := path.Base(target)
		if old, ok := out[dev]; !ok || len(n) < len(old) {
			out[dev] = n
		}
	}
	return out
}

// pathID derives udev's by-path name for virtio and NVMe disks from the
// sysfs path, for an initramfs without udev. Other transports need udev.
func pathID(sysPath, name, transport string) string {
	var pci string
	for _, c := range strings.Split(sysPath, "/") {
		if isPCIAddr(c) {
			pci = c // the last one is the device's own function
		}
	}
	if pci == "" {
		return ""
	}
	switch transport {
	case "virtio":
		return "pci-" + pci
	case "nvme":
		// nvme0n1: controller 0, namespace 1.
		_, ns, ok := strings.Cut(strings.TrimPrefix(name, "nvme"), "n")
		if _, err := strconv.Atoi(ns); ok && err == nil {
			return "pci-" + pci + "-nvme-" + ns
		}
	}
	return ""
}

// isPCIAddr reports whether s is a PCI address as sysfs writes it:
// 0000:00:02.0.
func isPCIAddr(s string) bool {
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' || s[11] < '0' || s[11] > '7' {
		return false
	}
	for i, c := range s[:10] {
		if i == 4 || i == 7 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func transportOf(sysPath, name string) string {
	switch {
	case strings.HasPrefix(name, "nvme") || strings.Contains(sysPath, "/nvme/"):
		return "nvme"
	case strings.Contains(sysPath, "/virtio"):
		return "virtio"
	case strings.Contains(sysPath, "/usb"):
		return "usb"
	case strings.Contains(sysPath, "/ata"):
		return "sata"
	case strings.Contains(sysPath, "/end_device-") || strings.Contains(sysPath, "/sas"):
		return "sas"
	case strings.Contains(sysPath, "/host"):
		return "scsi"
	}
	return ""
}

func detectDisk(ctx context.Context, p Probe, name string, byPath map[string]string) (Detected, error) {
	sys := "/sys/block/" + name
	d := Detected{Name: name}
	link, _ := p.Readlink(sys)
	d.Transport = transportOf(link, name)
	sectors, err := strconv.ParseUint(readFileString(p, sys+"/size"), 10, 64)
	if err != nil {
		return d, fmt.Errorf("size: %w", err)
	}
	d.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the disk's own
	d.Rotational = readFileString(p, sys+"/queue/rotational") == "1"
	d.Model = readFileString(p, sys+"/device/model")
	d.Vendor = readFileString(p, sys+"/device/vendor")
	d.Serial = readFileString(p, sys+"/serial") // virtio
	if d.Serial == "" {
		d.Serial = readFileString(p, sys+"/device/serial") // nvme, some scsi
	}
	d.ByPath = byPath[name]
	if d.ByPath == "" {
		d.ByPath = pathID(link, name, d.Transport)
	}
	out, err := p.Run(ctx, "sfdisk", "--json", d.Path())
	if err != nil {
		if bytes.Contains(out, []byte("does not contain a recognized partition table")) {
			return d, nil
		}
		return d, err
	}
	var st struct {
		PartitionTable struct {
			Label      string `json:"label"`
			SectorSize uint64 `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Size  uint64 `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Start uint64 `json:"start"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(jsonPart(out), &st); err != nil {
		return d, fmt.Errorf("read sfdisk --json %s: %w", d.Path(), err)
	}
	ss := st.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	d.Table = st.PartitionTable.Label
	for _, pt := range st.PartitionTable.Partitions {
		n, err := strconv.Atoi(strings.TrimLeft(pt.Node[len(strings.TrimRight(pt.Node, "0123456789")):], "0"))
		if err != nil {
			return d, fmt.Errorf("partition %s: no number", pt.Node)
		}
		d.Partitions = append(d.Partitions, Partition{Number: n, Path: pt.Node, Size: pt.Size * ss,
			TypeGUID: strings.ToUpper(pt.Type), PartUUID: strings.ToUpper(pt.UUID)})
	}
	slices.SortFunc(d.Partitions, func(a, b Partition) int { return a.Number - b.Number })
	return d, nil
}

// jsonPart drops anything a tool prints before its JSON (warnings).
func jsonPart(b []byte) []byte {
	if i := bytes.IndexByte(b, '{'); i > 0 {
		return b[i:]
	}
	return b
}

// blkid reads every filesystem signature the kernel's block devices
// carry, by device path, without blkid's cache.
func blkid(ctx context.Context, p Probe) (map[string]map[string]string, error) {
	out, err := p.Run(ctx, "blkid", "-c", "/dev/null", "-o", "export")
	// blkid exits 2, silently, when it finds nothing at all.
	if err != nil && (errors.Is(err, exec.ErrNotFound) || len(bytes.TrimSpace(out)) > 0 && !bytes.Contains(out, []byte("DEVNAME="))) {
		return nil, err
	}
	res := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			cur = nil
			continue
		}
		if k == "DEVNAME" {
			cur = map[string]string{}
			res[v] = cur
		}
		if cur != nil {
			cur[k] = v
		}
	}
	return res, nil
}

// detectArrays reads md superblocks from every partition blkid calls a
// RAID member, and which arrays are assembled from /sys/block/md*.
func detectArrays(ctx context.Context, p Probe, disks []Detected) ([]Array, error) {
	byUUID := map[string]*Array{}
	var order []string
	for _, d := range disks {
		for _, pt := range d.Partitions {
			if pt.FSType != "linux_raid_member" {
				continue
			}
			out, err := p.Run(ctx, "mdadm", "--examine", "--export", pt.Path)
			if err != nil {
				return nil, err
			}
			kv := exportVars(out)
			uuid := kv["MD_UUID"]
			if uuid == "" {
				continue
			}
			a, ok := byUUID[uuid]
			if !ok {
				a = &Array{UUID: uuid, Name: arrayName(kv["MD_NAME"])}
				a.Level, _ = strconv.Atoi(strings.TrimPrefix(kv["MD_LEVEL"], "raid"))
				a.Devices, _ = strconv.Atoi(kv["MD_DEVICES"])
				byUUID[uuid] = a
				order = append(order, uuid)
			}
			a.Members = append(a.Members, pt.Path)
		}
	}
	// Assembled arrays: /sys/block/mdN/md/uuid is not there, so ask mdadm.
	names, _ := p.ReadDir("/sys/block")
	for _, n := range names {
		if !strings.HasPrefix(n, "md") {
			continue
		}
		out, err := p.Run(ctx, "mdadm", "--detail", "--export", "/dev/"+n)
		if err != nil {
			continue // an inactive md device left by the kernel
		}
		kv := exportVars(out)
		if a, ok := byUUID[kv["MD_UUID"]]; ok {
			a.Device = "/dev/" + n
		}
	}
	var out []Array
	for _, u := range order {
		a := byUUID[u]
		slices.Sort(a.Members)
		out = append(out, *a)
	}
	return out, nil
}

func arrayName(s string) string {
	if _, n, ok := strings.Cut(s, ":"); ok {
		return n
	}
	return s
}

func exportVars(b []byte) map[string]string {
	kv := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// detectLVM reads physical and logical volumes from lvm's JSON reports;
// what is on an active volume comes from blkid.
func detectLVM(ctx context.Context, p Probe, blk map[string]map[string]string) ([]PV, []LV, error) {
	var pvs []PV
	var lvs []LV
	var pvr struct {
		Report []struct {
			PV []struct {
				Name string `json:"pv_name"`
				VG   string `json:"vg_name"`
			} `json:"pv"`
		} `json:"report"`
	}
	out, err := p.Run(ctx, "lvm", "pvs", "--reportformat", "json", "-o", "pv_name,vg_name")
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(jsonPart(out), &pvr); err != nil {
		return nil, nil, fmt.Errorf("read pvs: %w", err)
	}
	for _, r := range pvr.Report {
		for _, pv := range r.PV {
			pvs = append(pvs, PV{Device: pv.Name, VG: pv.VG})
		}
	}
	var lvr struct {
		Report []struct {
			LV []struct {
				Name   string `json:"lv_name"`
				VG     string `json:"vg_name"`
				Size   string `json:"lv_size"`
				DMPath string `json:"lv_dm_path"`
				Active string `json:"lv_active"`
			} `json:"lv"`
		} `json:"report"`
	}
	out, err = p.Run(ctx, "lvm", "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,vg_name,lv_size,lv_dm_path,lv_active")
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(jsonPart(out), &lvr); err != nil {
		return nil, nil, fmt.Errorf("read lvs: %w", err)
	}
	for _, r := range lvr.Report {
		for _, lv := range r.LV {
			size, err := strconv.ParseUint(lv.Size, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("lv %s/%s size %q: %w", lv.VG, lv.Name, lv.Size, err)
			}
			l := LV{VG: lv.VG, Name: lv.Name, Size: size, Active: lv.Active == "active"}
			for _, dev := range []string{lv.DMPath, "/dev/" + lv.VG + "/" + lv.Name} {
				if b, ok := blk[dev]; ok {
					l.FSType, l.FSLabel = b["TYPE"], b["LABEL"]
					break
				}
			}
			lvs = append(lvs, l)
		}
	}
	return pvs, lvs, nil
}

// Activate assembles the md arrays found whose members are all present
// and not yet running, and activates every volume group, so that a second
// Detect sees the filesystems inside them. It writes no data. It reports
// whether it started anything.
func Activate(ctx context.Context, r Runner, f Found) (bool, error) {
	changed := false
	for _, a := range f.Arrays {
		if a.Device != "" || a.Name == "" {
			continue
		}
		args := append([]string{"--assemble", "/dev/md/" + a.Name, "--run"}, a.Members...)
		if _, err := r.Run(ctx, "mdadm", args...); err != nil {
			return changed, fmt.Errorf("assemble md array %s: %w", a.Name, err)
		}
		changed = true
	}
	inactive := slices.ContainsFunc(f.LVs, func(l LV) bool { return !l.Active })
	if inactive || changed {
		if _, err := r.Run(ctx, "lvm", "vgchange", "--activate", "y"); err != nil {
			return changed, fmt.Errorf("activate volume groups: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// ErrNotRecorded is returned by a Recording asked for something it does
// not hold.
var ErrNotRecorded = errors.New("not recorded")

// Recording is what a Probe answered, to replay in tests: real data from
// a real machine.
type Recording struct {
	Commands map[string]RecordedRun `json:"commands"` // by "name arg…"
	Files    map[string]string      `json:"files,omitempty"`
	Dirs     map[string][]string    `json:"dirs,omitempty"`
	Links    map[string]string      `json:"links,omitempty"`
}

// RecordedRun is one command's output and error text.
type RecordedRun struct {
	Output string `json:"output"`
	Err    string `json:"err,omitempty"`
}

// Run replays a command.
func (r *Recording) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	c, ok := r.Commands[strings.Join(append([]string{name}, args...), " ")]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ErrNotRecorded)
	}
	if c.Err != "" {
		return []byte(c.Output), errors.New(c.Err)
	}
	return []byte(c.Output), nil
}

// ReadFile replays a file read.
func (r *Recording) ReadFile(name string) ([]byte, error) {
	s, ok := r.Files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}

// ReadDir replays a directory listing.
func (r *Recording) ReadDir(name string) ([]string, error) {
	s, ok := r.Dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return s, nil
}

// Readlink replays a link.
func (r *Recording) Readlink(name string) (string, error) {
	s, ok := r.Links[name]
	if !ok {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrNotExist}
	}
	return s, nil
}

// RecordingProbe passes every call to Probe and keeps what it answered.
type RecordingProbe struct {
	Probe Probe
	Rec   Recording
}

// Run runs and records a command.
func (r *RecordingProbe) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := r.Probe.Run(ctx, name, args...)
	rr := RecordedRun{Output: string(out)}
	if err != nil {
		rr.Err = err.Error()
	}
	if r.Rec.Commands == nil {
		r.Rec.Commands = map[string]RecordedRun{}
	}
	r.Rec.Commands[strings.Join(append([]string{name}, args...), " ")] = rr
	return out, err
}

// ReadFile reads and records a file; missing files are not recorded.
func (r *RecordingProbe) ReadFile(name string) ([]byte, error) {
	b, err := r.Probe.ReadFile(name)
	if err == nil {
		if r.Rec.Files == nil {
			r.Rec.Files = map[string]string{}
		}
		r.Rec.Files[name] = string(b)
	}
	return b, err
}

// ReadDir lists and records a directory.
func (r *RecordingProbe) ReadDir(name string) ([]string, error) {
	s, err := r.Probe.ReadDir(name)
	if err == nil {
		if r.Rec.Dirs == nil {
			r.Rec.Dirs = map[string][]string{}
		}
		r.Rec.Dirs[name] = s
	}
	return s, err
}

// Readlink reads and records a link.
func (r *RecordingProbe) Readlink(name string) (string, error) {
	s, err := r.Probe.Readlink(name)
	if err == nil {
		if r.Rec.Links == nil {
			r.Rec.Links = map[string]string{}
		}
		r.Rec.Links[name] = s
	}
	return s, err
}
