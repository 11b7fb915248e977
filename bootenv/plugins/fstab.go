package plugins

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Fstab writes the node's mounts into /etc/fstab between herd's markers:
// the filesystems of its disk layout (stateful nodes) and the NFS mounts
// of the "mounts" setting, and makes their mount points. Lines of the
// image that mount on a point herd mounts are dropped, so the image
// cannot mount something else there.
//
// Setting mounts: one mount per line or per ';', each
// "source mountpoint type [options [dump [pass]]]", such as
// "nas:/export/home /home nfs rw,hard,vers=4.2".
type Fstab struct {
	// Sources names the layout's devices as fstab should (UUID=…), by
	// layout reference (disk0p1, md0, system/root): bootenv fills it after
	// the disk step from what it found. A filesystem with a label is
	// mounted by LABEL=, a logical volume by /dev/<vg>/<lv>, an array by
	// /dev/md/<name> when Sources has nothing better.
	Sources map[string]string
}

// Name is "fstab".
func (Fstab) Name() string { return "fstab" }

// FstabLine is one line of /etc/fstab.
type FstabLine struct {
	Source, Mount, Type, Options string
	Dump, Pass                   int
}

func (l FstabLine) String() string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%d %d", l.Source, l.Mount, l.Type, l.Options, l.Dump, l.Pass)
}

// FstabLines decides the lines: layout filesystems (root first, as the
// layout lists them otherwise), then the mounts setting.
func (f Fstab) FstabLines(plan model.NodePlan, settings map[string]string) ([]FstabLine, error) {
	var out []FstabLine
	if !plan.Stateless && plan.Layout != nil {
		a := plan.Layout.Expand()
		arrays := map[string]bool{}
		for _, ar := range a.Arrays {
			arrays[ar.Name] = true
		}
		for _, fs := range a.Filesystems {
			if fs.Mount == "" && fs.Type != model.FSSwap {
				continue
			}
			src := f.Sources[fs.Device]
			switch {
			case src != "":
			case fs.Label != "":
				src = "LABEL=" + fs.Label
			case strings.Contains(fs.Device, "/"):
				src = "/dev/" + fs.Device
			case arrays[fs.Device]:
				src = "/dev/md/" + fs.Device
			default:
				return nil, fmt.Errorf("fstab: no device name known for %s (mounted at %q)", fs.Device, fs.Mount)
			}
			opts := strings.Join(fs.Options, ",")
			if opts == "" {
				opts = "defaults"
			}
			l := FstabLine{Source: src, Mount: fs.Mount, Type: string(fs.Type), Options: opts, Pass: 2}
			switch {
			case fs.Type == model.FSSwap:
				l.Mount, l.Options, l.Pass = "none", "sw", 0
			case fs.Mount == "/":
				l.Pass = 1
			case fs.Type == model.FSXFS || fs.Type == model.FSBtrfs:
				l.Pass = 0 // these filesystems are not checked by fsck at boot
			}
			if fs.Mount == "/" {
				out = append([]FstabLine{l}, out...)
			} else {
				out = append(out, l)
			}
		}
	}
	mounts, err := ParseMounts(settings["mounts"])
	if err != nil {
		return nil, err
	}
	return append(out, mounts...), nil
}

// ParseMounts reads the mounts setting.
func ParseMounts(s string) ([]FstabLine, error) {
	var out []FstabLine
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || len(f) > 6 {
			return nil, fmt.Errorf("fstab: mount %q: want source mountpoint type [options [dump [pass]]]", strings.TrimSpace(line))
		}
		if !path.IsAbs(f[1]) {
			return nil, fmt.Errorf("fstab: mount %q: mount point %q is not absolute", strings.TrimSpace(line), f[1])
		}
		l := FstabLine{Source: f[0], Mount: path.Clean(f[1]), Type: f[2], Options: "defaults"}
		if len(f) > 3 {
			l.Options = f[3]
		}
		if strings.HasPrefix(l.Type, "nfs") && !strings.Contains(l.Options, "_netdev") {
			// Mount after the network is up, under systemd and sysvinit alike.
			l.Options += ",_netdev"
		}
		for i, p := range []*int{&l.Dump, &l.Pass} {
			if len(f) > 4+i {
				if _, err := fmt.Sscanf(f[4+i], "%d", p); err != nil {
					return nil, fmt.Errorf("fstab: mount %q: %q is not a number", strings.TrimSpace(line), f[4+i])
				}
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// FstabText returns the image's fstab with herd's block replaced by lines
// and the image's own lines for herd's mount points dropped.
func FstabText(old string, lines []FstabLine) string {
	ours := map[string]bool{}
	var block strings.Builder
	for _, l := range lines {
		if l.Mount != "none" {
			ours[l.Mount] = true
		}
		block.WriteString(l.String() + "\n")
	}
	var kept []string
	for _, l := range strings.SplitAfter(old, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && ours[path.Clean(f[1])] {
			continue
		}
		kept = append(kept, l)
	}
	return ReplaceBlock(strings.Join(kept, ""), block.String())
}

// Apply writes /etc/fstab and makes the mount points.
func (f Fstab) Apply(_ context.Context, root string, plan model.NodePlan, settings map[string]string) ([]string, error) {
	lines, err := f.FstabLines(plan, settings)
	if err != nil {
		return nil, err
	}
	r := NewRoot(root)
	old, err := readOptional(r, "/etc/fstab")
	if err != nil {
		return nil, err
	}
	if _, err := r.WriteFile("/etc/fstab", []byte(FstabText(old, lines)), 0o644); err != nil {
		return nil, err
	}
	for _, l := range lines {
		if l.Mount == "none" || l.Mount == "/" {
			continue
		}
		if _, err := r.MkdirAll(l.Mount); err != nil {
			return nil, err
		}
	}
	return r.Changed(), nil
}
