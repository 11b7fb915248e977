package agent

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herd-hpc/herd/bootenv/bootloader"
	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/plugins"
	bsync "github.com/herd-hpc/herd/bootenv/sync"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
)

// disks lays out and mounts a stateful node's disks under the root, or
// makes the RAM root of a stateless one.
func (a *Agent) disks(ctx context.Context) (string, map[string]string, error) {
	if a.plan.Stateless {
		if a.o.RAMRoot == nil {
			return "stateless: building the root in " + a.root, nil, nil
		}
		if err := a.o.RAMRoot(ctx, a.root); err != nil {
			return "", nil, fmt.Errorf("mount the RAM root at %s: %w", a.root, err)
		}
		return "stateless: RAM root mounted at " + a.root, nil, nil
	}
	if a.o.Disks == nil {
		return "", nil, fmt.Errorf("node %s is stateful: %w", a.plan.Node, ErrNoDisks)
	}
	l := a.plan.Layout
	found, err := a.o.Disks.Detect(ctx)
	if err != nil {
		return "", nil, err
	}
	// Arrays and volume groups of an earlier boot are not running yet; the
	// filesystems inside them show only once they are.
	if started, err := disk.Activate(ctx, a.o.Disks, found); err != nil {
		return "", nil, err
	} else if started {
		if found, err = a.o.Disks.Detect(ctx); err != nil {
			return "", nil, err
		}
	}
	match, err := disk.Match(l, found.Disks)
	if err != nil {
		return "", nil, fmt.Errorf("layout %q: %w", l.Name, err)
	}
	p, err := disk.PlanLayout(l, found, match)
	if err != nil {
		return "", nil, fmt.Errorf("layout %q: %w", l.Name, err)
	}
	p = Rebase(p, a.root)
	fmt.Fprint(a.o.Console, p.String())
	if err := disk.Apply(ctx, p, a.o.Disks); err != nil {
		return "", nil, err
	}
	// Partitions made now have new filesystem UUIDs: read them again for
	// fstab and the boot entry.
	if p.Changes() {
		if found, err = a.o.Disks.Detect(ctx); err != nil {
			return "", nil, err
		}
	}
	a.sources, a.bootDisk, a.bootPart = DeviceNames(l.Expand(), match, found, a.bootMount())
	a.mirrors = MirrorBootParts(l.Expand(), match, found, a.bootMount())
	changed := 0
	for _, s := range p.Steps {
		if s.Kind != disk.StepAssemble && s.Kind != disk.StepActivateVG && s.Kind != disk.StepMount {
			changed++
		}
	}
	var mapping []string
	for _, d := range slices.Sorted(maps.Keys(match)) {
		mapping = append(mapping, d+"="+match[d])
	}
	what := strconv.Itoa(changed) + " changes"
	if changed == 0 {
		// The words the console's plan and the image step use too.
		what = "nothing to do"
	}
	msg := fmt.Sprintf("layout %q on %s: %s, mounted at %s", l.Name, strings.Join(mapping, " "), what, p.Root)
	return msg, map[string]string{"layout": l.Name, "changes": strconv.Itoa(changed)}, nil
}

// Rebase moves a disk plan's mounts from the planner's root
// (disk.DefaultRoot) to root: the targets of its mount steps and those
// paths in their commands. Pure.
func Rebase(p disk.Plan, root string) disk.Plan {
	if root == p.Root {
		return p
	}
	out := disk.Plan{Layout: p.Layout, Root: root}
	for _, s := range p.Steps {
		if s.Kind == disk.StepMount {
			old := s.Target
			s.Target = path.Join(root, strings.TrimPrefix(old, p.Root))
			cmds := make([][]string, len(s.Commands))
			for i, c := range s.Commands {
				c = slices.Clone(c)
				for j := range c {
					if c[j] == old {
						c[j] = s.Target
					}
				}
				cmds[i] = c
			}
			s.Commands = cmds
		}
		out.Steps = append(out.Steps, s)
	}
	return out
}

// DeviceNames decides how fstab and the boot entry name the layout's
// devices: partitions by their filesystem's UUID (device names move
// between boots; the UUID does not), logical volumes by /dev/<vg>/<lv>,
// arrays by /dev/md/<name>; and which disk and partition hold the
// filesystem mounted at bootMount (the fallback loader's, "" for none).
func DeviceNames(a *model.AdvancedLayout, match map[string]string, found disk.Found, bootMount string) (sources map[string]string, bootDisk string, bootPart int) {
	sources = map[string]string{}
	byName := map[string]disk.Detected{}
	for _, d := range found.Disks {
		byName[d.Name] = d
	}
	arrays := map[string]bool{}
	for _, ar := range a.Arrays {
		arrays[ar.Name] = true
	}
	for _, fs := range a.Filesystems {
		switch {
		case strings.Contains(fs.Device, "/"):
			sources[fs.Device] = "/dev/" + fs.Device
		case arrays[fs.Device]:
			sources[fs.Device] = "/dev/md/" + fs.Device
		default:
			ref, num, ok := splitPartRef(fs.Device)
			if !ok {
				continue
			}
			d, ok := byName[match[ref]]
			if !ok {
				continue
			}
			for _, pt := range d.Partitions {
				if pt.Number == num && pt.FSUUID != "" {
					sources[fs.Device] = "UUID=" + pt.FSUUID
				}
			}
			if bootMount != "" && fs.Mount == bootMount {
				bootDisk, bootPart = d.Path(), num
			}
		}
	}
	return sources, bootDisk, bootPart
}

// MirrorPart is the boot partition of a mirror's other disk.
type MirrorPart struct {
	Disk string // /dev/vdb
	Part int
	Dev  string // /dev/vdb1
}

// MirrorBootParts finds the boot partitions of a mirror's other disks:
// vfat filesystems the layout makes but does not mount, on the partition
// of the same number as the one mounted at bootMount, on other disks.
func MirrorBootParts(a *model.AdvancedLayout, match map[string]string, found disk.Found, bootMount string) []MirrorPart {
	if bootMount == "" {
		return nil
	}
	bootDisk, bootNum := "", 0
	for _, fs := range a.Filesystems {
		if fs.Mount == bootMount {
			bootDisk, bootNum, _ = splitPartRef(fs.Device)
		}
	}
	byName := map[string]disk.Detected{}
	for _, d := range found.Disks {
		byName[d.Name] = d
	}
	var out []MirrorPart
	for _, fs := range a.Filesystems {
		ref, num, ok := splitPartRef(fs.Device)
		if !ok || fs.Mount != "" || fs.Type != model.FSVFAT || num != bootNum || ref == bootDisk {
			continue
		}
		d, ok := byName[match[ref]]
		if !ok {
			continue
		}
		for _, pt := range d.Partitions {
			if pt.Number == num && pt.Path != "" {
				out = append(out, MirrorPart{Disk: d.Path(), Part: num, Dev: pt.Path})
			}
		}
	}
	return out
}

// splitPartRef splits "disk0p2" into "disk0" and 2.
func splitPartRef(ref string) (string, int, bool) {
	i := strings.LastIndexByte(ref, 'p')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(ref[i+1:])
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return ref[:i], n, true
}

// fetcher reads blobs through the session.
type fetcher struct {
	srv     Server
	session string
}

func (f fetcher) Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error) {
	return bsync.OpenSized(d, size, func() (io.ReadCloser, int64, error) { return f.srv.OpenBlob(ctx, f.session, d) })
}

// batches reads blobs in batches through the session.
type batches struct {
	srv     Server
	session string
}

func (b batches) FetchBlobs(ctx context.Context, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error {
	return b.srv.FetchBlobs(ctx, b.session, ds, each)
}

// image makes the root match the plan's image version.
func (a *Agent) image(ctx context.Context) (string, map[string]string, error) {
	d, err := manifest.ParseDigest(a.plan.Version)
	if err != nil {
		return "", nil, err
	}
	if !a.plan.Sync.CheckEveryBoot && bsync.Complete(a.root, d) {
		return "root is complete for " + short(a.plan.Version) + "; not compared (check_every_boot off)",
			map[string]string{"checked": "false"}, nil
	}
	m, err := a.o.Server.Manifest(ctx, a.o.Session, d)
	if err != nil {
		return "", nil, fmt.Errorf("fetch manifest %s: %w", d, err)
	}
	verify, err := bsync.ParseVerify(orDefault(a.plan.Sync.Verify, "unsure"))
	if err != nil {
		return "", nil, err
	}
	// Files the plugins wrote stay: those the image lacks are preserved, and
	// those it has keep the plugin's content instead of being restored
	// only to be written again.
	owned := a.owned()
	pol := bsync.Policy{Verify: verify, Preserve: append(slices.Clone(a.plan.Sync.Preserve), owned...), Owned: owned}
	if mnt := a.bootMount(); mnt != "" {
		// The fallback loader's files on its partition are not the image's.
		dir := bootloader.ESPDir
		if !a.o.UEFI {
			dir = bootloader.BIOSDir
		}
		pol.Preserve = append(pol.Preserve, path.Join(mnt, dir, "**"))
	}
	// Nor are the layout's mount points: an image without /boot/efi
	// would have the sync remove the mounted ESP's directory (EBUSY).
	pol.Preserve = append(pol.Preserve, a.mountPoints()...)
	sp, err := bsync.Plan(ctx, m, a.root, pol)
	if err != nil {
		return "", nil, err
	}
	// A short plan is printed whole, so the console says what drifted.
	what := sp.Summary()
	if n := len(sp.Remove) + len(sp.Create) + len(sp.Replace) + len(sp.Meta); n > 0 && n <= 50 {
		what = strings.TrimSuffix(sp.String(), "\n")
	}
	fmt.Fprintf(a.o.Console, "image %s: %s\n", short(a.plan.Version), what)
	// Small blobs come in batches fetched ahead, the rest one by one.
	pf := bsync.Prefetch(ctx, &sp, batches{a.o.Server, a.o.Session}, fetcher{a.o.Server, a.o.Session}, bsync.PrefetchOptions{})
	st, err := bsync.Apply(ctx, sp, a.root, pf, bsync.ApplyOptions{Workers: a.o.Workers, Log: a.log})
	pf.Close()
	ps := pf.Stats()
	if ps.Failed > 0 {
		a.log.Warn("blobs fetched one by one after a batch failed", "batches", ps.Batches, "from_batches", ps.Served, "one_by_one", ps.Fallbacks)
	}
	if err != nil {
		return "", nil, err
	}
	if !bsync.Complete(a.root, d) {
		return "", nil, fmt.Errorf("the root does not match image version %s after the sync", d)
	}
	msg := fmt.Sprintf("%s; wrote %d files, removed %d, fetched %d blobs (%s)",
		sp.Summary(), st.Written, st.Removed, st.FetchedBlobs, model.Bytes(st.FetchedBytes))
	if ps.Batches > 0 {
		msg += fmt.Sprintf(", %d of them in %d batches", ps.Served, ps.Batches)
	}
	return msg, map[string]string{
		"written": strconv.Itoa(st.Written), "removed": strconv.Itoa(st.Removed),
		"fetched_blobs": strconv.Itoa(st.FetchedBlobs), "fetched_bytes": strconv.FormatUint(st.FetchedBytes, 10),
		"batches": strconv.Itoa(ps.Batches), "from_batches": strconv.Itoa(ps.Served), "failed_batches": strconv.Itoa(ps.Failed),
	}, nil
}

// OwnedList is the file in the new root that lists the paths the plugins
// wrote, one a line. The image sync keeps them (and the list) even though
// the image lacks them, so a boot after an unchanged one neither removes
// nor rewrites them. A path the image has is still made as the image
// says by the sync, then the plugin writes it again.
const OwnedList = "/var/lib/herd/plugins.owned"

// owned returns the preserve globs for the plugins' files.
func (a *Agent) owned() []string {
	out := []string{OwnedList}
	b, err := plugins.NewRoot(a.root).ReadFile(OwnedList)
	if err != nil {
		return out
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		// A path with glob characters would keep more than itself.
		if path.IsAbs(l) && !strings.ContainsAny(l, "*?[\\") {
			out = append(out, path.Clean(l))
		}
	}
	return out
}

// keepOwned writes OwnedList: the paths the plugins changed now and those
// listed before that still exist.
func (a *Agent) keepOwned(changed []string) error {
	r := plugins.NewRoot(a.root)
	set := map[string]bool{}
	for _, p := range append(a.owned()[1:], changed...) {
		if r.Exists(p) {
			set[p] = true
		}
	}
	list := make([]string, 0, len(set))
	for p := range set {
		list = append(list, p)
	}
	slices.Sort(list)
	text := ""
	if len(list) > 0 {
		text = strings.Join(list, "\n") + "\n"
	}
	_, err := r.WriteFile(OwnedList, []byte(text), 0o644)
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// plugins runs the plan's config plugins on the root.
func (a *Agent) plugins(ctx context.Context) (string, map[string]string, error) {
	set := plugins.Set
	if a.o.Plugins != nil {
		set = a.o.Plugins
	}
	res, err := plugins.Run(ctx, a.root, a.plan, set(plugins.Fstab{Sources: a.sources}), a.log)
	if err != nil {
		return "", nil, err
	}
	var changed []string
	for _, r := range res {
		changed = append(changed, r.Changed...)
	}
	if err := a.keepOwned(changed); err != nil {
		return "", nil, err
	}
	if len(res) == 0 {
		return "no plugins for this node", nil, nil
	}
	var parts []string
	extras := map[string]string{}
	for _, r := range res {
		parts = append(parts, fmt.Sprintf("%s: %d changed", r.Plugin, len(r.Changed)))
		if len(r.Changed) > 0 {
			extras[r.Plugin] = clipExtra(strings.Join(r.Changed, " "))
		}
	}
	return strings.Join(parts, ", "), extras, nil
}

func clipExtra(s string) string {
	if len(s) <= 1000 {
		return s
	}
	return s[:1000] + " …"
}

// bootloader installs the fallback boot entry of a stateful node.
func (a *Agent) bootloader(ctx context.Context) (string, map[string]string, error) {
	// The admin's kernel arguments, else this boot's console.
	args := a.plan.KernelArgs
	if len(args) == 0 {
		args = a.o.KernelArgs
	}
	in := bootloader.Input{UEFI: a.o.UEFI, Stateless: a.plan.Stateless, Root: a.root,
		BootMount: a.bootMount(), BootDisk: a.bootDisk, BootPart: a.bootPart, LegacyBoot: a.legacyBoot(), Args: args}
	if !a.plan.Stateless && a.plan.Layout != nil {
		lines, err := (plugins.Fstab{Sources: a.sources}).FstabLines(a.plan, nil)
		if err != nil {
			return "", nil, err
		}
		for _, l := range lines {
			if l.Mount == "/" {
				in.RootSource = l.Source
			}
		}
		in.Kernel, in.Initrd = bootloader.ImageKernel(a.root, a.plan.Kernel)
	}
	if bootloader.Decide(in).Skip == "" {
		unmount, err := a.mountMirrors(ctx, &in)
		if err != nil {
			return "", nil, err
		}
		defer unmount()
	}
	d := bootloader.Decide(in)
	if d.Skip != "" {
		return "nothing installed: " + d.Skip, nil, nil
	}
	res, err := bootloader.Install(ctx, d, a.o.Bootloader)
	if err != nil {
		return "", nil, err
	}
	var msg string
	extras := map[string]string{}
	if d.BIOS != nil {
		msg = fmt.Sprintf("SYSLINUX on %s partition %d (%s)", a.bootDisk, a.bootPart, strings.TrimPrefix(d.BIOS.Dir, a.root))
		if res.Loader == 0 && res.BootCode == 0 {
			msg = "kept " + msg
		}
		extras["loader"] = "syslinux"
	} else {
		msg = fmt.Sprintf("boot entry %s %q (%s %s) after the network in BootOrder %s", res.Entry, d.Entry.Label, d.Entry.Loader, d.Entry.Args, strings.Join(res.Order, ","))
		if res.Created == 0 {
			msg = "kept " + msg
		}
		extras["entry"], extras["label"] = res.Entry, d.Entry.Label
	}
	if len(d.Mirrors) > 0 {
		msg += fmt.Sprintf("; the same on the mirror's other %d disk(s)", len(d.Mirrors))
	}
	if len(res.Copied) > 0 {
		var copied []string
		for _, c := range res.Copied {
			copied = append(copied, strings.TrimPrefix(c, a.root))
		}
		msg += "; copied " + strings.Join(copied, ", ")
	}
	if d.Note != "" {
		msg += "; note: " + d.Note
	}
	return msg, extras, nil
}

// mountMirrors mounts the boot partitions of a mirror's other disks
// outside the root and adds them to in; the returned function unmounts
// them.
func (a *Agent) mountMirrors(ctx context.Context, in *bootloader.Input) (func(), error) {
	var mounted []string
	unmount := func() {
		for _, m := range mounted {
			if _, err := a.o.Disks.Run(ctx, "umount", m); err != nil {
				a.log.Warn("unmount a mirror's boot partition", "path", m, "err", err)
			}
		}
	}
	dir := a.o.MountDir
	if dir == "" {
		dir = "/run/herd"
	}
	for _, m := range a.mirrors {
		mnt := filepath.Join(dir, "boot-"+filepath.Base(m.Disk))
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			unmount()
			return nil, err
		}
		if _, err := a.o.Disks.Run(ctx, "mount", "-t", "vfat", m.Dev, mnt); err != nil {
			unmount()
			return nil, fmt.Errorf("mount the mirror's boot partition %s: %w", m.Dev, err)
		}
		mounted = append(mounted, mnt)
		in.Mirrors = append(in.Mirrors, bootloader.BootPart{Disk: m.Disk, Part: m.Part, Mount: mnt})
	}
	return unmount, nil
}

// bootMount is where the layout mounts the vfat filesystem the fallback
// loader goes on, "" when it has none or the node is stateless: the EFI
// system partition (/boot/efi) on UEFI; on BIOS /boot/herd, else an ESP.
func (a *Agent) bootMount() string {
	if a.plan.Stateless || a.plan.Layout == nil {
		return ""
	}
	want := []string{"/boot/efi"}
	if !a.o.UEFI {
		want = []string{model.BIOSBootMount, "/boot/efi"}
	}
	fss := a.plan.Layout.Expand().Filesystems
	for _, m := range want {
		for _, fs := range fss {
			if fs.Type == model.FSVFAT && path.Clean(fs.Mount) == m {
				return m
			}
		}
	}
	return ""
}

// legacyBoot says the layout gives the boot partition the legacy_boot
// flag that BIOS boot code looks for.
func (a *Agent) legacyBoot() bool {
	mnt := a.bootMount()
	if mnt == "" {
		return false
	}
	l := a.plan.Layout.Expand()
	for _, fs := range l.Filesystems {
		if path.Clean(fs.Mount) != mnt {
			continue
		}
		for _, pt := range l.Partitions {
			if pt.Ref() == fs.Device && slices.Contains(pt.Flags, "legacy_boot") {
				return true
			}
		}
	}
	return false
}

// mountPoints are the layout's mount points other than the root.
func (a *Agent) mountPoints() []string {
	if a.plan.Stateless || a.plan.Layout == nil {
		return nil
	}
	var out []string
	for _, fs := range a.plan.Layout.Expand().Filesystems {
		if fs.Mount != "" && fs.Mount != "/" {
			out = append(out, path.Clean(fs.Mount))
		}
	}
	return out
}

// pivot checks the root once more, stops the console stream, reports the
// boot done and hands over. A pivot that fails after the done event is
// reported as a failed pivot.
func (a *Agent) pivot(ctx context.Context) (string, map[string]string, error) {
	d, err := manifest.ParseDigest(a.plan.Version)
	if err != nil {
		return "", nil, err
	}
	if !bsync.Complete(a.root, d) {
		return "", nil, fmt.Errorf("refusing to pivot: %s is not a complete copy of image version %s", a.root, d)
	}
	if a.o.CheckPivot != nil {
		if err := a.o.CheckPivot(a.root); err != nil {
			return "", nil, err
		}
	}
	total := model.ShortDuration(time.Since(a.start))
	fmt.Fprintf(a.o.Console, "bootenv: handing over to %s in %s after %s\n", a.plan.Image, a.root, total)
	a.event(ctx, model.BootEvent{Step: StepPivot, State: model.EventInfo, Message: "switching to " + path.Clean(a.root)})
	if a.o.CloseConsole != nil {
		if err := a.o.CloseConsole(ctx); err != nil {
			a.log.Warn("console stream", "err", err)
		}
	}
	a.event(ctx, model.BootEvent{Step: model.StepDone, State: model.EventOK,
		Message: "handed over to the image after " + total, DurationMS: time.Since(a.start).Milliseconds()})
	if err := a.o.Pivot(a.root); err != nil {
		return "", nil, err
	}
	return "", nil, nil
}
