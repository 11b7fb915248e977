package disk

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// StepKind names what a step does.
type StepKind string

// Step kinds. Assemble, activate and mount change nothing on disk.
const (
	StepPartition   StepKind = "partition" // wipe a disk and write its partition table
	StepCreateArray StepKind = "create-array"
	StepAssemble    StepKind = "assemble-array"
	StepCreateVG    StepKind = "create-vg"
	StepActivateVG  StepKind = "activate-vg"
	StepCreateLV    StepKind = "create-lv"
	StepMkfs        StepKind = "mkfs" // mkfs or mkswap
	StepMount       StepKind = "mount"
)

// Step is one thing to do, with the exact commands that do it.
type Step struct {
	Kind     StepKind
	Target   string // the device or name it acts on
	Why      string
	Commands [][]string
}

// Plan is the ordered list of steps that makes the disks match a layout.
type Plan struct {
	Layout string
	Root   string // where filesystems are mounted: the new root
	Steps  []Step
}

// DefaultRoot is where Plan mounts the node's filesystems.
const DefaultRoot = "/newroot"

// Changes reports whether the plan writes to any disk; assembling,
// activating and mounting do not.
func (p Plan) Changes() bool {
	return slices.ContainsFunc(p.Steps, func(s Step) bool {
		return s.Kind != StepAssemble && s.Kind != StepActivateVG && s.Kind != StepMount
	})
}

// String prints the plan for the console: "nothing to do" when only
// assembling and mounting are left, else every step with its commands.
func (p Plan) String() string {
	var b strings.Builder
	if !p.Changes() {
		fmt.Fprintf(&b, "layout %q: nothing to do (%d steps to assemble and mount)\n", p.Layout, len(p.Steps))
	} else {
		fmt.Fprintf(&b, "layout %q: %d steps\n", p.Layout, len(p.Steps))
	}
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%2d. %s %s: %s\n", i+1, s.Kind, s.Target, s.Why)
		for _, c := range s.Commands {
			fmt.Fprintf(&b, "      %s\n", strings.Join(c, " "))
		}
	}
	return b.String()
}

const (
	mib        = 1 << 20
	sector     = 512
	gptBackup  = 34 * sector // backup GPT at the end of the disk
	lvmExtent  = 4 * mib
	maxGPTPart = 128
)

// GPT attribute bits as sgdisk numbers them.
// gptAttr is the bit of a GPT partition attribute name.
func gptAttr(name string) int {
	switch name {
	case "no_block_io":
		return 1
	case "legacy_boot":
		return 2
	}
	return 0 // required
}

// PlanLayout compares the layout with what was found on the matched disks
// and returns the steps that make them agree: a disk whose partition table
// already matches is not touched; md arrays and volume groups that exist
// and match are only assembled and activated; filesystems of the right
// type are mounted, not made again. Only disks in match are ever named in
// a step. The layout must be valid and match must come from Match.
func PlanLayout(l *model.Layout, found Found, match map[string]string) (Plan, error) {
	p := Plan{Layout: l.Name, Root: DefaultRoot}
	a := l.Expand()
	disks := map[string]Detected{}
	for _, ld := range l.Disks {
		name, ok := match[ld.Name]
		i := slices.IndexFunc(found.Disks, func(d Detected) bool { return d.Name == name })
		if !ok || i < 0 {
			return p, fmt.Errorf("layout %q: %s is not matched to a disk found", l.Name, ld.Name)
		}
		disks[ld.Name] = found.Disks[i]
	}
	pl := &planner{p: &p, found: found, disks: disks, fresh: map[string]bool{}, dev: map[string]string{},
		stopped: map[string]bool{}, inactive: map[string]bool{}, gone: map[string]bool{}}
	if err := pl.partitions(a); err != nil {
		return p, fmt.Errorf("layout %q: %w", l.Name, err)
	}
	pl.arrays(a)
	if err := pl.volumes(a); err != nil {
		return p, fmt.Errorf("layout %q: %w", l.Name, err)
	}
	pl.filesystems(a)
	return p, nil
}

type planner struct {
	p     *Plan
	found Found
	disks map[string]Detected
	fresh map[string]bool   // refs made new by this plan: nothing on them survives
	dev   map[string]string // ref → device path
	// stopped and inactive are the running arrays (by name) and volume
	// groups a step stops before it writes under them.
	stopped, inactive map[string]bool
	// gone are the volume groups whose physical volumes a step wiped.
	gone map[string]bool
}

func (pl *planner) add(s Step) { pl.p.Steps = append(pl.p.Steps, s) }

func (pl *planner) partitions(a *model.AdvancedLayout) error {
	byDisk := map[string][]model.Partition{}
	var order []string
	for _, pt := range a.Partitions {
		if _, ok := byDisk[pt.Disk]; !ok {
			order = append(order, pt.Disk)
		}
		byDisk[pt.Disk] = append(byDisk[pt.Disk], pt)
	}
	slices.SortFunc(order, naturalCompare)
	for _, name := range order {
		d := pl.disks[name]
		parts := byDisk[name]
		sizes := make([]uint64, len(parts))
		start := uint64(mib)
		for i, pt := range parts {
			if pt.Size.Rest {
				if d.Size < start+gptBackup {
					return fmt.Errorf("%s (%s, %s) is too small: partitions before the rest need %s", name, d.Name, model.Bytes(d.Size), model.Bytes(start))
				}
				sizes[i] = d.Size - gptBackup - start
			} else {
				sizes[i] = (uint64(pt.Size.Size) + mib - 1) / mib * mib
			}
			start += sizes[i]
			pl.dev[pt.Ref()] = d.PartitionPath(pt.Number)
		}
		if start+gptBackup > d.Size {
			return fmt.Errorf("%s (%s, %s) is too small for its partitions: they need %s", name, d.Name, model.Bytes(d.Size), model.Bytes(start+gptBackup))
		}
		if why := tableDiffers(d, parts, sizes); why != "" {
			pl.partitionStep(name, d, parts, why)
			for _, pt := range parts {
				pl.fresh[pt.Ref()] = true
			}
		}
	}
	return nil
}

// tableDiffers says how the disk's partition table differs from the
// wanted one, or "" when it matches.
func tableDiffers(d Detected, parts []model.Partition, sizes []uint64) string {
	if d.Table != "gpt" {
		return fmt.Sprintf("%s has no GPT partition table", d.Name)
	}
	if len(d.Partitions) != len(parts) {
		return fmt.Sprintf("%s has %d partitions, want %d", d.Name, len(d.Partitions), len(parts))
	}
	for i, pt := range parts {
		f := d.Partitions[i]
		guid, _ := model.PartitionTypeGUID(pt.Type)
		diff := int64(f.Size) - int64(sizes[i])
		switch {
		case f.Number != pt.Number:
			return fmt.Sprintf("%s partition %d is number %d", d.Name, pt.Number, f.Number)
		case !strings.EqualFold(f.TypeGUID, guid):
			return fmt.Sprintf("%s partition %d has type %s, want %s", d.Name, pt.Number, f.TypeGUID, pt.Type)
		case !pt.Size.Rest && diff != 0, pt.Size.Rest && (diff > mib || diff < -mib):
			return fmt.Sprintf("%s partition %d is %s, want %s", d.Name, pt.Number, model.Bytes(f.Size), model.Bytes(sizes[i]))
		}
	}
	return ""
}

func (pl *planner) partitionStep(name string, d Detected, parts []model.Partition, why string) {
	args := []string{"sgdisk"}
	for _, pt := range parts {
		n := strconv.Itoa(pt.Number)
		end := "0"
		if !pt.Size.Rest {
			end = "+" + strconv.FormatUint((uint64(pt.Size.Size)+mib-1)/mib, 10) + "M"
		}
		guid, _ := model.PartitionTypeGUID(pt.Type)
		args = append(args, "--new="+n+":0:"+end, "--typecode="+n+":"+guid)
		if pt.Label != "" {
			args = append(args, "--change-name="+n+":"+pt.Label)
		}
		for _, f := range pt.Flags {
			args = append(args, "--attributes="+n+":set:"+strconv.Itoa(gptAttr(f)))
		}
	}
	args = append(args, d.Path())
	// What runs on the disk holds its partitions open: deactivate the
	// volume groups on it and stop its arrays, or the kernel keeps the old
	// partitions and wipefs writes under a live array.
	cmds := pl.release(func(dev string) bool { return isOnDisk(dev, d) })
	for _, pv := range pl.found.PVs {
		if pv.VG != "" && pl.under(pv.Device, func(dev string) bool { return isOnDisk(dev, d) }) {
			pl.gone[pv.VG] = true
		}
	}
	cmds = append(cmds, []string{"wipefs", "--all", "--force", d.Path()}, []string{"sgdisk", "--zap-all", d.Path()}, args,
		[]string{"blockdev", "--rereadpt", d.Path()})
	for _, pt := range parts {
		// Old superblocks at the same offsets would be found again.
		cmds = append(cmds, []string{"wipefs", "--all", "--force", d.PartitionPath(pt.Number)})
	}
	pl.add(Step{Kind: StepPartition, Target: fmt.Sprintf("%s (%s)", name, d.Path()), Why: why, Commands: cmds})
}

func (pl *planner) arrays(a *model.AdvancedLayout) {
	for _, ar := range a.Arrays {
		dev := "/dev/md/" + ar.Name
		pl.dev[ar.Name] = dev
		var members []string
		fresh := false
		for _, ref := range ar.Devices {
			members = append(members, pl.dev[ref])
			fresh = fresh || pl.fresh[ref]
		}
		i := slices.IndexFunc(pl.found.Arrays, func(f Array) bool { return f.Name == ar.Name })
		var why string
		switch {
		case fresh:
			why = "its devices are new"
		case i < 0:
			why = "no array of that name was found"
		case pl.found.Arrays[i].Level != ar.Level:
			why = fmt.Sprintf("found RAID %d, want RAID %d", pl.found.Arrays[i].Level, ar.Level)
		case !sameSet(pl.found.Arrays[i].Members, members):
			why = fmt.Sprintf("found members %s, want %s", strings.Join(pl.found.Arrays[i].Members, " "), strings.Join(members, " "))
		}
		if why == "" {
			s := Step{Kind: StepAssemble, Target: dev, Why: "exists and matches",
				Commands: [][]string{append([]string{"mdadm", "--assemble", dev}, members...)}}
			if run := pl.found.Arrays[i].Device; run != "" {
				s.Why, s.Commands = "exists, matches and runs as "+run, nil
			}
			pl.add(s)
			continue
		}
		var cmds [][]string
		if i >= 0 {
			name := ar.Name
			cmds = append(cmds, pl.release(func(d string) bool { return d == "/dev/md/"+name })...)
			for _, pv := range pl.found.PVs {
				if pv.Device == dev && pv.VG != "" {
					pl.gone[pv.VG] = true // its label goes with the old array
				}
			}
		}
		for _, m := range members {
			cmds = append(cmds, []string{"wipefs", "--all", "--force", m})
		}
		cmds = append(cmds, append([]string{"mdadm", "--create", dev, "--run", "--metadata=1.2",
			"--level=" + strconv.Itoa(ar.Level), "--raid-devices=" + strconv.Itoa(len(members)), "--name=" + ar.Name}, members...))
		pl.add(Step{Kind: StepCreateArray, Target: dev, Why: why, Commands: cmds})
		pl.fresh[ar.Name] = true
	}
}

func (pl *planner) volumes(a *model.AdvancedLayout) error {
	mine := map[string]bool{}
	for _, d := range pl.dev {
		mine[d] = true
	}
	for _, vg := range a.VolumeGroups {
		var devs []string
		fresh := false
		for _, ref := range vg.Devices {
			devs = append(devs, pl.dev[ref])
			fresh = fresh || pl.fresh[ref]
		}
		var have []string
		for _, pv := range pl.found.PVs {
			if pv.VG != vg.Name {
				continue
			}
			if !mine[pv.Device] && !pl.onLayoutDisk(pv.Device) {
				return fmt.Errorf("volume group %q already exists on %s, which this layout does not name; refusing to touch it", vg.Name, pv.Device)
			}
			have = append(have, pv.Device)
		}
		var why string
		switch {
		case fresh:
			why = "its devices are new"
		case len(have) == 0:
			why = "no volume group of that name was found"
		case !sameSet(have, devs):
			why = fmt.Sprintf("found on %s, want %s", strings.Join(have, " "), strings.Join(devs, " "))
		}
		if why == "" {
			pl.add(Step{Kind: StepActivateVG, Target: vg.Name, Why: "exists and matches",
				Commands: [][]string{{"vgchange", "--activate", "y", vg.Name}}})
		} else {
			var cmds [][]string
			if len(have) > 0 && !pl.gone[vg.Name] {
				cmds = append(cmds, []string{"vgremove", "--force", "--force", "--yes", vg.Name})
			}
			cmds = append(cmds, append([]string{"pvcreate", "--force", "--force", "--yes"}, devs...))
			cmds = append(cmds, append([]string{"vgcreate", "--yes", vg.Name}, devs...))
			pl.add(Step{Kind: StepCreateVG, Target: vg.Name, Why: why, Commands: cmds})
			pl.fresh[vg.Name] = true
		}
		// Fixed sizes first: the volume taking the rest must come last.
		lvs := slices.Clone(a.LogicalVolumes)
		slices.SortStableFunc(lvs, func(x, y model.LogicalVolume) int {
			return boolInt(x.Size.Rest) - boolInt(y.Size.Rest)
		})
		for _, lv := range lvs {
			if lv.VG != vg.Name {
				continue
			}
			pl.logicalVolume(lv)
		}
	}
	return nil
}

// release returns the commands that deactivate the volume groups and
// stop the running arrays found on devices on(dev) says are affected,
// each once per plan: volume groups first, they sit on the arrays.
func (pl *planner) release(on func(dev string) bool) [][]string {
	var cmds [][]string
	for _, pv := range pl.found.PVs {
		if pv.VG == "" || pl.inactive[pv.VG] || !pl.under(pv.Device, on) {
			continue
		}
		if slices.ContainsFunc(pl.found.LVs, func(l LV) bool { return l.VG == pv.VG && l.Active }) {
			cmds = append(cmds, []string{"vgchange", "--activate", "n", pv.VG})
		}
		pl.inactive[pv.VG] = true
	}
	for _, a := range pl.found.Arrays {
		if a.Device == "" || pl.stopped[a.Name] || !pl.under("/dev/md/"+a.Name, on) {
			continue
		}
		cmds = append(cmds, []string{"mdadm", "--stop", a.Device})
		pl.stopped[a.Name] = true
	}
	return cmds
}

// under reports whether dev is affected: on(dev) says so, or dev is an
// array with an affected member.
func (pl *planner) under(dev string, on func(string) bool) bool {
	if on(dev) {
		return true
	}
	for _, a := range pl.found.Arrays {
		if "/dev/md/"+a.Name == dev && slices.ContainsFunc(a.Members, on) {
			return true
		}
	}
	return false
}

// isOnDisk reports whether dev is the disk d or one of its partitions.
func isOnDisk(dev string, d Detected) bool {
	return dev == d.Path() || slices.ContainsFunc(d.Partitions, func(p Partition) bool { return p.Path == dev })
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// onLayoutDisk reports whether a device path is a matched disk or one of
// its partitions.
func (pl *planner) onLayoutDisk(dev string) bool {
	for _, d := range pl.disks {
		if dev == d.Path() || strings.HasPrefix(dev, d.Path()) && len(dev) > len(d.Path()) {
			return true
		}
	}
	return false
}

func (pl *planner) logicalVolume(lv model.LogicalVolume) {
	ref := lv.Ref()
	dev := "/dev/" + ref
	pl.dev[ref] = dev
	want := uint64(lv.Size.Size)
	i := slices.IndexFunc(pl.found.LVs, func(f LV) bool { return f.VG == lv.VG && f.Name == lv.Name })
	var why string
	switch {
	case pl.fresh[lv.VG]:
		why = "its volume group is new"
	case i < 0:
		why = "no volume of that name was found"
	case !lv.Size.Rest && (pl.found.LVs[i].Size < want || pl.found.LVs[i].Size >= want+lvmExtent):
		why = fmt.Sprintf("found %s, want %s", model.Bytes(pl.found.LVs[i].Size), lv.Size)
	}
	if why == "" {
		return // activated with its group
	}
	var cmds [][]string
	if i >= 0 && !pl.fresh[lv.VG] {
		cmds = append(cmds, []string{"lvremove", "--yes", ref})
	}
	create := []string{"lvcreate", "--yes", "--wipesignatures", "y", "--name", lv.Name}
	if lv.Size.Rest {
		create = append(create, "--extents", "100%FREE", lv.VG)
	} else {
		create = append(create, "--size", strconv.FormatUint(want, 10)+"b", lv.VG)
	}
	pl.add(Step{Kind: StepCreateLV, Target: ref, Why: why, Commands: append(cmds, create)})
	pl.fresh[ref] = true
}

// fsFound returns the filesystem type found on a device of the layout.
func (pl *planner) fsFound(ref string) string {
	dev := pl.dev[ref]
	for _, d := range pl.disks {
		for _, pt := range d.Partitions {
			if pt.Path == dev {
				return pt.FSType
			}
		}
	}
	if t, ok := pl.found.ArrayFS[ref]; ok {
		return t
	}
	for _, lv := range pl.found.LVs {
		if lv.VG+"/"+lv.Name == ref {
			return lv.FSType
		}
	}
	return ""
}

func (pl *planner) filesystems(a *model.AdvancedLayout) {
	for _, fs := range a.Filesystems {
		dev := pl.dev[fs.Device]
		have := pl.fsFound(fs.Device)
		if !pl.fresh[fs.Device] && have == string(fs.Type) {
			continue
		}
		why := fmt.Sprintf("found %s, want %s", orNone(have), fs.Type)
		if pl.fresh[fs.Device] {
			why = "the device is new"
		}
		pl.add(Step{Kind: StepMkfs, Target: dev, Why: why, Commands: [][]string{mkfs(fs, dev)}})
	}
	mounts := slices.Clone(a.Filesystems)
	mounts = slices.DeleteFunc(mounts, func(f model.Filesystem) bool { return f.Mount == "" })
	// Parents before children: /, /var, /var/log.
	slices.SortStableFunc(mounts, func(x, y model.Filesystem) int {
		if c := rootFirst(x.Mount, y.Mount); c != 0 {
			return c
		}
		return strings.Count(x.Mount, "/") - strings.Count(y.Mount, "/")
	})
	for _, fs := range mounts {
		target := path.Join(pl.p.Root, fs.Mount)
		mount := []string{"mount", "-t", string(fs.Type)}
		if len(fs.Options) > 0 {
			mount = append(mount, "-o", strings.Join(fs.Options, ","))
		}
		mount = append(mount, pl.dev[fs.Device], target)
		pl.add(Step{Kind: StepMount, Target: target, Why: "mount " + fs.Mount,
			Commands: [][]string{{"mkdir", "-p", target}, mount}})
	}
}

func rootFirst(x, y string) int {
	switch {
	case x == "/" && y != "/":
		return -100
	case y == "/" && x != "/":
		return 100
	}
	return 0
}

func mkfs(fs model.Filesystem, dev string) []string {
	var c []string
	label := "-L"
	switch fs.Type {
	case model.FSExt4:
		c = []string{"mkfs.ext4", "-F"}
	case model.FSXFS:
		c = []string{"mkfs.xfs", "-f"}
	case model.FSVFAT:
		c, label = []string{"mkfs.vfat", "-F", "32"}, "-n"
	case model.FSBtrfs:
		c = []string{"mkfs.btrfs", "-f"}
	case model.FSSwap:
		c = []string{"mkswap", "-f"}
	}
	if fs.Label != "" {
		c = append(c, label, fs.Label)
	}
	return append(c, dev)
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// Apply runs the plan's steps in order through r and stops at the first
// failure, naming the step and command.
func Apply(ctx context.Context, p Plan, r Runner) error {
	for i, s := range p.Steps {
		for _, c := range s.Commands {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := r.Run(ctx, c[0], c[1:]...); err != nil {
				return fmt.Errorf("apply layout %q step %d (%s %s): %w", p.Layout, i+1, s.Kind, s.Target, err)
			}
		}
	}
	return nil
}
