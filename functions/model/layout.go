package model

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Bytes is a size in bytes. Its text form takes decimal (kB, MB, GB, TB,
// PB: powers of 1000, as disk vendors count) and binary units (KiB, MiB,
// GiB, TiB, PiB: powers of 1024), with or without a fraction: "1.92TB",
// "512MiB", "4096".
type Bytes uint64

// unitSizes are the units ParseBytes reads, longest suffix first.
func unitSizes() []struct {
	name string
	size float64
} {
	return []struct {
		name string
		size float64
	}{
		{"pib", 1 << 50}, {"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
		{"pb", 1e15}, {"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
		{"p", 1e15}, {"t", 1e12}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1},
	}
}

// ParseBytes reads a size such as "120GB", "1.5 TiB" or "4096".
func ParseBytes(s string) (Bytes, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range unitSizes() {
		if rest, ok := strings.CutSuffix(t, u.name); ok {
			t, mult = strings.TrimSpace(rest), u.size
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || t == "" || strings.ContainsAny(t, "eEx_+-") {
		return 0, fmt.Errorf("%q is not a size (e.g. 512MiB, 120GB, 1.92TB)", s)
	}
	b := math.Round(v * mult)
	if b >= math.MaxUint64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Bytes(b), nil
}

// String prints the size in the largest decimal unit that keeps it at one
// or more, with up to three significant decimals: "1.92TB", "960GB".
func (b Bytes) String() string {
	for _, u := range []struct {
		name string
		size float64
	}{{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if float64(b) >= u.size {
			return strconv.FormatFloat(math.Round(float64(b)/u.size*100)/100, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler (exact, in bytes).
func (b Bytes) MarshalText() ([]byte, error) { return []byte(strconv.FormatUint(uint64(b), 10)), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseBytes.
func (b *Bytes) UnmarshalText(t []byte) error {
	v, err := ParseBytes(string(t))
	*b = v
	return err
}

// DiskSize is a disk size with a tolerance in percent, written
// "120GB ± 5%" or "120GB+-5%"; without a tolerance it must match exactly.
type DiskSize struct {
	Size      Bytes
	Tolerance float64 // percent, 0..100
}

// ParseDiskSize reads "SIZE", "SIZE ± N%" or "SIZE +- N%".
func ParseDiskSize(s string) (DiskSize, error) {
	var d DiskSize
	size, tol, ok := strings.Cut(s, "±")
	if !ok {
		size, tol, ok = strings.Cut(s, "+-")
	}
	var err error
	if d.Size, err = ParseBytes(size); err != nil {
		return d, err
	}
	if d.Size == 0 {
		return d, fmt.Errorf("%q: a disk size must be above zero", s)
	}
	if ok {
		t, found := strings.CutSuffix(strings.TrimSpace(tol), "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if !found || err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return d, fmt.Errorf("%q: the tolerance must be a percentage from 0%% to 100%%, as in \"120GB ± 5%%\"", s)
		}
		d.Tolerance = v
	}
	return d, nil
}

func (d DiskSize) String() string {
	if d.Tolerance == 0 {
		return d.Size.String()
	}
	return d.Size.String() + " ± " + strconv.FormatFloat(d.Tolerance, 'f', -1, 64) + "%"
}

// Contains reports whether a disk of n bytes is within the tolerance.
func (d DiskSize) Contains(n uint64) bool {
	delta := float64(d.Size) * d.Tolerance / 100
	return float64(n) >= float64(d.Size)-delta && float64(n) <= float64(d.Size)+delta
}

// MarshalText implements encoding.TextMarshaler: String's short form
// when it reads back as the same size, else the exact bytes, so a stored
// layout matches the disks it matched when it was written.
func (d DiskSize) MarshalText() ([]byte, error) {
	if s := d.String(); func() bool { back, err := ParseDiskSize(s); return err == nil && back == d }() {
		return []byte(s), nil
	}
	s := strconv.FormatUint(uint64(d.Size), 10)
	if d.Tolerance != 0 {
		s += " ± " + strconv.FormatFloat(d.Tolerance, 'f', -1, 64) + "%"
	}
	return []byte(s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseDiskSize.
func (d *DiskSize) UnmarshalText(t []byte) error {
	v, err := ParseDiskSize(string(t))
	*d = v
	return err
}

// PartSize is the size of a partition or logical volume: a size, or "rest"
// for whatever its disk or volume group has left.
type PartSize struct {
	Size Bytes
	Rest bool
}

// ParsePartSize reads "rest" or a size.
func ParsePartSize(s string) (PartSize, error) {
	if strings.EqualFold(strings.TrimSpace(s), "rest") {
		return PartSize{Rest: true}, nil
	}
	b, err := ParseBytes(s)
	if err != nil {
		return PartSize{}, fmt.Errorf("%w, or rest", err)
	}
	return PartSize{Size: b}, nil
}

func (p PartSize) String() string {
	if p.Rest {
		return "rest"
	}
	return p.Size.String()
}

// MarshalText implements encoding.TextMarshaler (bytes, or "rest").
func (p PartSize) MarshalText() ([]byte, error) {
	if p.Rest {
		return []byte("rest"), nil
	}
	return p.Size.MarshalText()
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePartSize.
func (p *PartSize) UnmarshalText(t []byte) error {
	v, err := ParsePartSize(string(t))
	*p = v
	return err
}

// DiskType is the kind of a disk as matched at boot.
type DiskType string

// Disk types: NVMe by transport; SSD and HDD by the rotational flag.
const (
	DiskNVMe DiskType = "nvme"
	DiskSSD  DiskType = "ssd"
	DiskHDD  DiskType = "hdd"
)

// DiskSelector says which real disk a layout disk is. Every field that is
// set must match; vendor and model match case-insensitively and may be
// globs ("SAMSUNG*"), path is a glob over /dev/disk/by-path/ names.
type DiskSelector struct {
	Vendor string    `json:"vendor,omitempty"`
	Model  string    `json:"model,omitempty"`
	Type   DiskType  `json:"type,omitempty"`
	Serial string    `json:"serial,omitempty"`
	Path   string    `json:"path,omitempty"`
	Size   *DiskSize `json:"size,omitempty"`
}

// LayoutDisk is one disk of a layout, disk0…diskN.
type LayoutDisk struct {
	Name   string       `json:"name"`
	Select DiskSelector `json:"select"`
}

// LayoutMode says which form a layout is written in.
type LayoutMode string

// Layout modes.
const (
	LayoutSimple   LayoutMode = "simple"
	LayoutAdvanced LayoutMode = "advanced"
)

// FSType is a filesystem type a layout can make.
type FSType string

// Filesystem types.
const (
	FSExt4  FSType = "ext4"
	FSXFS   FSType = "xfs"
	FSVFAT  FSType = "vfat"
	FSBtrfs FSType = "btrfs"
	FSSwap  FSType = "swap"
)

// BIOSBootMount is where a simple BIOS layout mounts its boot partition.
const BIOSBootMount = "/boot/herd"

// Firmware decides the boot partition a simple layout makes.
type Firmware string

// Firmware kinds.
const (
	FirmwareUEFI Firmware = "uefi" // an EFI system partition, mounted at /boot/efi
	FirmwareBIOS Firmware = "bios" // a vfat partition for herd's BIOS fallback loader, mounted at /boot/herd
)

// Layout is a disk layout: which disks a node has and what goes on them.
// Simple layouts are expanded into the advanced form (Expand) before
// planning, so the planner knows one form.
type Layout struct {
	Name     string          `json:"name"`
	Mode     LayoutMode      `json:"mode"`
	Disks    []LayoutDisk    `json:"disks"`
	Simple   *SimpleLayout   `json:"simple,omitempty"`
	Advanced *AdvancedLayout `json:"advanced,omitempty"`
	Meta
}

// SimpleLayout is one disk, or a RAID1 mirror of disk0 and disk1, holding
// a boot partition and one LVM volume group "system" with a logical volume
// per filesystem.
type SimpleLayout struct {
	Mirror      bool       `json:"mirror,omitempty"`
	Firmware    Firmware   `json:"firmware,omitempty"` // default uefi
	Filesystems []SimpleFS `json:"filesystems"`
}

// SimpleFS is one filesystem of a simple layout.
type SimpleFS struct {
	Mount string   `json:"mount,omitempty"` // empty for swap
	Type  FSType   `json:"type"`
	Size  PartSize `json:"size"`
}

// AdvancedLayout spells out partitions, md arrays, LVM and filesystems.
// Devices are named by reference: a partition as "<disk>p<number>"
// ("disk0p2"), an array by its name ("md0"), a logical volume as
// "<vg>/<lv>".
type AdvancedLayout struct {
	Partitions     []Partition     `json:"partitions"`
	Arrays         []Array         `json:"arrays,omitempty"`
	VolumeGroups   []VolumeGroup   `json:"volume_groups,omitempty"`
	LogicalVolumes []LogicalVolume `json:"logical_volumes,omitempty"`
	Filesystems    []Filesystem    `json:"filesystems,omitempty"`
}

// Partition is one GPT partition. Type is a short name (esp, bios, xbootldr, linux,
// raid, lvm, swap) or a type GUID.
type Partition struct {
	Disk   string   `json:"disk"`
	Number int      `json:"number"`
	Type   string   `json:"type"`
	Size   PartSize `json:"size"`
	Label  string   `json:"label,omitempty"` // GPT partition name
	Flags  []string `json:"flags,omitempty"` // GPT attribute names: required, no_block_io, legacy_boot
}

// Ref is how other parts of the layout name the partition.
func (p Partition) Ref() string { return p.Disk + "p" + strconv.Itoa(p.Number) }

// Array is a Linux md software RAID array.
type Array struct {
	Name    string   `json:"name"`
	Level   int      `json:"level"` // 0, 1, 5, 6 or 10
	Devices []string `json:"devices"`
}

// VolumeGroup is an LVM volume group over partitions or arrays.
type VolumeGroup struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices"`
}

// LogicalVolume is an LVM logical volume; one per group may take the rest.
type LogicalVolume struct {
	VG   string   `json:"vg"`
	Name string   `json:"name"`
	Size PartSize `json:"size"`
}

// Ref is how filesystems name the volume.
func (lv LogicalVolume) Ref() string { return lv.VG + "/" + lv.Name }

// Filesystem is a filesystem (or swap) on a device of the layout.
type Filesystem struct {
	Device  string   `json:"device"`
	Type    FSType   `json:"type"`
	Mount   string   `json:"mount,omitempty"`
	Options []string `json:"options,omitempty"`
	Label   string   `json:"label,omitempty"`
}

// PartitionTypes maps the short partition type names to GPT type GUIDs.
func PartitionTypes() map[string]string {
	return map[string]string{
		"esp":  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
		"bios": "21686148-6449-6E6F-744E-656564454649",
		// The Boot Loader Specification's extended boot partition.
		"xbootldr": "BC13C2FF-59E6-4262-A352-B275FD6F7172",
		"linux":    "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
		"raid":     "A19D880F-05FC-4D3B-A006-743F0F84911E",
		"lvm":      "E6D6D379-F507-44C2-A23C-238F2A3DF928",
		"swap":     "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
	}
}

// PartitionTypeGUID returns the GUID of a short type name or GUID, upper case.
func PartitionTypeGUID(t string) (string, bool) {
	if g, ok := PartitionTypes()[strings.ToLower(t)]; ok {
		return g, true
	}
	if guidRe.MatchString(t) {
		return strings.ToUpper(t), true
	}
	return "", false
}

var (
	guidRe     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	diskNameRe = regexp.MustCompile(`^disk(0|[1-9][0-9]?)$`)
	lvmNameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)
)

// Validate checks a layout on its own: names, sizes, references, that
// every device is used once and every mount point is unique.
func (l *Layout) Validate() error {
	var p problems
	checkLabel(&p, "name", l.Name, 256)
	if l.Name == "" {
		p.add("name", "is required")
	}
	disks := map[string]bool{}
	for i, d := range l.Disks {
		f := fmt.Sprintf("disks[%d]", i)
		if want := fmt.Sprintf("disk%d", i); d.Name != want {
			p.add(f+".name", "%q: disks are named disk0, disk1, … in order; want %q", d.Name, want)
		}
		disks[d.Name] = true
		s := d.Select
		switch s.Type {
		case "", DiskNVMe, DiskSSD, DiskHDD:
		default:
			p.add(f+".select.type", "%q is not a disk type (want nvme, ssd or hdd)", s.Type)
		}
		for _, g := range []struct{ field, v string }{{"vendor", s.Vendor}, {"model", s.Model}, {"path", s.Path}} {
			checkLabel(&p, f+".select."+g.field, g.v, 256)
			if _, err := path.Match(strings.ToLower(g.v), ""); err != nil {
				p.add(f+".select."+g.field, "%q is not a valid glob", g.v)
			}
		}
		checkLabel(&p, f+".select.serial", s.Serial, 128)
		if s.Path != "" && strings.Contains(s.Path, "/") && !strings.HasPrefix(s.Path, "/dev/disk/by-path/") {
			p.add(f+".select.path", "%q: want a name or glob under /dev/disk/by-path/", s.Path)
		}
	}
	if len(l.Disks) == 0 {
		p.add("disks", "a layout needs at least one disk")
	}
	switch l.Mode {
	case LayoutSimple:
		if l.Simple == nil || l.Advanced != nil {
			p.add("simple", "a simple layout has a simple section and no advanced one")
		} else {
			l.Simple.check(&p, len(l.Disks))
		}
	case LayoutAdvanced:
		if l.Advanced == nil || l.Simple != nil {
			p.add("advanced", "an advanced layout has an advanced section and no simple one")
		} else {
			l.Advanced.check(&p, disks)
		}
	default:
		p.add("mode", "%q is not a layout mode (want simple or advanced)", l.Mode)
	}
	return p.err()
}

func (s *SimpleLayout) check(p *problems, ndisks int) {
	switch {
	case s.Mirror && ndisks != 2:
		p.add("disks", "a mirror needs exactly two disks, disk0 and disk1")
	case !s.Mirror && ndisks != 1:
		p.add("disks", "a simple layout without mirror has exactly one disk")
	}
	switch s.Firmware {
	case "", FirmwareUEFI, FirmwareBIOS:
	default:
		p.add("simple.firmware", "%q is not a firmware (want uefi or bios)", s.Firmware)
	}
	mounts := map[string]bool{}
	rest, root := 0, false
	for i, fs := range s.Filesystems {
		f := fmt.Sprintf("simple.filesystems[%d]", i)
		checkFS(p, f, fs.Type, fs.Mount, mounts)
		root = root || fs.Mount == "/"
		if fs.Mount == "/boot/efi" && s.Firmware != FirmwareBIOS {
			p.add(f+".mount", "/boot/efi is made by the layout itself on UEFI")
		}
		if fs.Mount == BIOSBootMount && s.Firmware == FirmwareBIOS {
			p.add(f+".mount", "%s is made by the layout itself on BIOS", BIOSBootMount)
		}
		if fs.Size.Rest {
			rest++
		} else if fs.Size.Size < 1<<20 {
			p.add(f+".size", "%s is below 1MiB", fs.Size)
		}
	}
	if !root {
		p.add("simple.filesystems", "a filesystem must be mounted at /")
	}
	if rest > 1 {
		p.add("simple.filesystems", "only one filesystem can take the rest")
	}
}

func checkFS(p *problems, f string, t FSType, mount string, mounts map[string]bool) {
	switch t {
	case FSExt4, FSXFS, FSVFAT, FSBtrfs:
		if mount == "" {
			break
		}
		if !strings.HasPrefix(mount, "/") || path.Clean(mount) != mount {
			p.add(f+".mount", "%q is not a clean absolute path", mount)
		} else if mounts[mount] {
			p.add(f+".mount", "%q is mounted twice", mount)
		}
		mounts[mount] = true
	case FSSwap:
		if mount != "" {
			p.add(f+".mount", "swap has no mount point")
		}
	default:
		p.add(f+".type", "%q is not a filesystem type (want ext4, xfs, vfat, btrfs or swap)", t)
	}
}

func (a *AdvancedLayout) check(p *problems, disks map[string]bool) {
	devices := map[string]string{} // ref → kind
	used := map[string]string{}    // ref → field of its one user
	use := func(field, ref string) {
		switch {
		case devices[ref] == "":
			p.add(field, "%q is not a partition, array or logical volume of this layout", ref)
		case used[ref] != "":
			p.add(field, "%q is already used by %s", ref, used[ref])
		default:
			used[ref] = field
		}
	}
	byDisk := map[string][]Partition{}
	for i, pt := range a.Partitions {
		f := fmt.Sprintf("advanced.partitions[%d]", i)
		if !disks[pt.Disk] {
			p.add(f+".disk", "%q is not a disk of this layout", pt.Disk)
		}
		if pt.Number < 1 || pt.Number > 128 {
			p.add(f+".number", "%d is not a GPT partition number (1-128)", pt.Number)
		}
		if _, ok := PartitionTypeGUID(pt.Type); !ok {
			p.add(f+".type", "%q is not a partition type (esp, bios, xbootldr, linux, raid, lvm, swap or a type GUID)", pt.Type)
		}
		if !pt.Size.Rest && pt.Size.Size < 1<<20 {
			p.add(f+".size", "%s is below 1MiB", pt.Size)
		}
		checkLabel(p, f+".label", pt.Label, 36)
		for _, fl := range pt.Flags {
			if !slices.Contains([]string{"required", "no_block_io", "legacy_boot"}, fl) {
				p.add(f+".flags", "%q is not a GPT attribute (required, no_block_io, legacy_boot)", fl)
			}
		}
		list := byDisk[pt.Disk]
		if n := len(list); n > 0 && list[n-1].Size.Rest {
			p.add(f+".size", "partition %s follows one that takes the rest of %s", pt.Ref(), pt.Disk)
		}
		if n := len(list); n > 0 && pt.Number != list[n-1].Number+1 || n == 0 && pt.Number != 1 {
			p.add(f+".number", "partitions of %s are numbered 1, 2, … in order", pt.Disk)
		}
		byDisk[pt.Disk] = append(list, pt)
		devices[pt.Ref()] = "partition"
	}
	if len(a.Partitions) == 0 {
		p.add("advanced.partitions", "an advanced layout needs partitions")
	}
	minDevices := map[int]int{0: 2, 1: 2, 5: 3, 6: 4, 10: 2}
	for i, ar := range a.Arrays {
		f := fmt.Sprintf("advanced.arrays[%d]", i)
		if !lvmNameRe.MatchString(ar.Name) || devices[ar.Name] != "" {
			p.add(f+".name", "%q is not a free array name (letters, digits, '_', '.', '+', '-')", ar.Name)
		}
		n, ok := minDevices[ar.Level]
		if !ok {
			p.add(f+".level", "RAID level %d is not one of 0, 1, 5, 6, 10", ar.Level)
		} else if len(ar.Devices) < n {
			p.add(f+".devices", "RAID %d needs at least %d devices", ar.Level, n)
		}
		for j, d := range ar.Devices {
			if devices[d] != "partition" {
				p.add(fmt.Sprintf("%s.devices[%d]", f, j), "%q is not a partition of this layout", d)
				continue
			}
			use(fmt.Sprintf("%s.devices[%d]", f, j), d)
		}
		devices[ar.Name] = "array"
	}
	vgs := map[string]int{}
	for i, vg := range a.VolumeGroups {
		f := fmt.Sprintf("advanced.volume_groups[%d]", i)
		if !lvmNameRe.MatchString(vg.Name) || strings.Contains(vg.Name, "-") {
			p.add(f+".name", "%q is not a volume group name (letters, digits, '_', '.', '+')", vg.Name)
		} else if _, dup := vgs[vg.Name]; dup {
			p.add(f+".name", "%q is listed twice", vg.Name)
		}
		vgs[vg.Name] = 0
		if len(vg.Devices) == 0 {
			p.add(f+".devices", "a volume group needs devices")
		}
		for j, d := range vg.Devices {
			use(fmt.Sprintf("%s.devices[%d]", f, j), d)
		}
	}
	for i, lv := range a.LogicalVolumes {
		f := fmt.Sprintf("advanced.logical_volumes[%d]", i)
		n, ok := vgs[lv.VG]
		if !ok {
			p.add(f+".vg", "%q is not a volume group of this layout", lv.VG)
		}
		if !lvmNameRe.MatchString(lv.Name) || strings.Contains(lv.Name, "-") || devices[lv.Ref()] != "" {
			p.add(f+".name", "%q is not a free volume name (letters, digits, '_', '.', '+')", lv.Name)
		}
		if lv.Size.Rest {
			if n < 0 {
				p.add(f+".size", "only one volume of %s can take the rest", lv.VG)
			}
			vgs[lv.VG] = -1
		} else if lv.Size.Size < 1<<20 {
			p.add(f+".size", "%s is below 1MiB", lv.Size)
		}
		devices[lv.Ref()] = "lv"
	}
	mounts := map[string]bool{}
	for i, fs := range a.Filesystems {
		f := fmt.Sprintf("advanced.filesystems[%d]", i)
		use(f+".device", fs.Device)
		checkFS(p, f, fs.Type, fs.Mount, mounts)
		for j, o := range fs.Options {
			if o == "" || strings.ContainsAny(o, ", \t\n") {
				p.add(fmt.Sprintf("%s.options[%d]", f, j), "%q: one option per entry, no commas or spaces", o)
			}
		}
		checkLabel(p, f+".label", fs.Label, 16)
	}
}

// SimpleVG is the volume group a simple layout puts its filesystems in.
const SimpleVG = "system"

// Expand returns the advanced form of the layout: the layout itself if it
// is advanced, the deterministic expansion of a simple one. The layout
// must be valid.
func (l *Layout) Expand() *AdvancedLayout {
	if l.Mode == LayoutAdvanced {
		return l.Advanced
	}
	s := l.Simple
	a := &AdvancedLayout{}
	disks := []string{"disk0"}
	if s.Mirror {
		disks = append(disks, "disk1")
	}
	// The boot partition holds the fallback loader's copy of the kernel
	// and initrd: the ESP on UEFI; on BIOS a vfat partition SYSLINUX
	// boots from, flagged legacy_boot for the GPT boot code.
	bootType, bootMount, bootLabel, bootFlags := "esp", "/boot/efi", "ESP", []string(nil)
	if s.Firmware == FirmwareBIOS {
		bootType, bootMount, bootLabel, bootFlags = "xbootldr", BIOSBootMount, "HERDBOOT", []string{"legacy_boot"}
	}
	dataType := "lvm"
	if s.Mirror {
		dataType = "raid"
	}
	for _, d := range disks {
		a.Partitions = append(a.Partitions,
			Partition{Disk: d, Number: 1, Type: bootType, Size: PartSize{Size: 512 << 20}, Flags: bootFlags},
			Partition{Disk: d, Number: 2, Type: dataType, Size: PartSize{Rest: true}})
	}
	pv := "disk0p2"
	if s.Mirror {
		a.Arrays = []Array{{Name: "md0", Level: 1, Devices: []string{"disk0p2", "disk1p2"}}}
		pv = "md0"
	}
	a.VolumeGroups = []VolumeGroup{{Name: SimpleVG, Devices: []string{pv}}}
	// Each disk of a mirror gets its own boot partition, so the node boots
	// from whichever disk is left: the first is mounted, bootenv's
	// bootloader step writes the same fallback to the other.
	for i, d := range disks {
		fs := Filesystem{Device: d + "p1", Type: FSVFAT, Label: bootLabel + strconv.Itoa(i)}
		if i == 0 {
			fs.Mount = bootMount
		}
		a.Filesystems = append(a.Filesystems, fs)
	}
	taken := map[string]bool{}
	var rest *LogicalVolume
	for _, fs := range s.Filesystems {
		name := lvName(fs)
		// A second volume of the same name is name2, then name3, …
		for n, base := 2, name; taken[name]; n++ {
			name = base + strconv.Itoa(n)
		}
		taken[name] = true
		lv := LogicalVolume{VG: SimpleVG, Name: name, Size: fs.Size}
		if fs.Size.Rest {
			rest = &lv // created last, so it really gets what is left
		} else {
			a.LogicalVolumes = append(a.LogicalVolumes, lv)
		}
		a.Filesystems = append(a.Filesystems, Filesystem{Device: lv.Ref(), Type: fs.Type, Mount: fs.Mount})
	}
	if rest != nil {
		a.LogicalVolumes = append(a.LogicalVolumes, *rest)
	}
	return a
}

// lvName derives a volume name from a mount point: "/" is root, "/var/log"
// is var_log, swap is swap, a filesystem without a mount point data.
// Characters LVM does not take in a name become '_'.
func lvName(fs SimpleFS) string {
	switch {
	case fs.Type == FSSwap:
		return "swap"
	case fs.Mount == "/":
		return "root"
	case fs.Mount == "":
		return "data"
	}
	var b strings.Builder
	for _, r := range strings.Trim(fs.Mount, "/") {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '+' || r == '_') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if c := name[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		name = "v" + name
	}
	// Room for a number when two volumes would share the name.
	return name[:min(len(name), 60)]
}
