package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) layoutCommand() *command {
	return &command{
		name: "layout", summary: "manage disk layouts nodes and groups name",
		help: `Manages disk layouts. A node (or its group) names one in disk_layout;
bootenv makes the node's disks match it on every boot, changing them only
when they differ. Write a layout as JSON (--file, - for standard input),
or a simple one by flags:

  herd layout add scratch --disk "960GB±5%" --mirror \
      --fs /:ext4:40GB --fs swap:swap:8GB --fs /scratch:xfs:rest`,
		subs: []*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list disk layouts",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.layoutList(ctx, *asJSON) }
				},
			},
			{
				name: "show", aliases: []string{"get"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "print a disk layout as JSON",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error { return a.layoutShow(ctx, args[0]) }
				},
			},
			{
				name: "add", args: "NAME", minArgs: 1, maxArgs: 1, summary: "add a disk layout",
				flags: func(fs *flag.FlagSet) action {
					f := &layoutFlags{}
					f.declare(fs)
					return func(ctx context.Context, args []string) error {
						return a.layoutWrite(ctx, "layout add", args[0], f, false)
					}
				},
			},
			{
				name: "set", args: "NAME", minArgs: 1, maxArgs: 1, summary: "replace a disk layout",
				help: `Replaces a disk layout whole, from JSON (--file) or flags as layout add
takes them. Nodes that name it change their disks on their next boot.`,
				flags: func(fs *flag.FlagSet) action {
					f := &layoutFlags{}
					f.declare(fs)
					return func(ctx context.Context, args []string) error {
						return a.layoutWrite(ctx, "layout set", args[0], f, true)
					}
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "NAME", minArgs: 1, maxArgs: 1,
				summary: "delete a disk layout no node or group names",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						cl, err := a.client()
						if err != nil {
							return err
						}
						if err := cl.DeleteLayout(ctx, args[0], 0); err != nil {
							return notFoundOr(err, "layout delete", "disk layout", args[0], "delete disk layout "+args[0])
						}
						fmt.Fprintf(a.stdout, "deleted disk layout %s\n", args[0])
						return nil
					}
				},
			},
		},
	}
}

// layoutFlags are the flags of layout add and layout set.
type layoutFlags struct {
	file     string
	disk     string
	diskType string
	mirror   bool
	firmware string
	fs       listFlag
}

func (f *layoutFlags) declare(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "file", "", "read the layout as JSON from `FILE` (- for standard input)")
	fs.StringVar(&f.disk, "disk", "", "simple layout: the disk's `SIZE`, with a tolerance (\"960GB±5%\")")
	fs.StringVar(&f.diskType, "disk-type", "", "simple layout: the disk's `TYPE` (nvme, ssd or hdd)")
	fs.BoolVar(&f.mirror, "mirror", false, "simple layout: mirror two such disks (RAID1)")
	fs.StringVar(&f.firmware, "firmware", "", "simple layout: `FIRMWARE` uefi (default) or bios")
	fs.Var(&f.fs, "fs", "simple layout: a filesystem `MOUNT:TYPE:SIZE` (repeatable; swap:swap:8GB; SIZE rest takes what is left)")
}

func (f *layoutFlags) simple() bool {
	return f.disk != "" || f.diskType != "" || f.mirror || f.firmware != "" || len(f.fs) > 0
}

// SimpleLayoutOf builds a simple layout from the short form of layout
// add: a disk selector by size (with tolerance) and type, mirrored or not,
// and filesystems as MOUNT:TYPE:SIZE.
func SimpleLayoutOf(name, disk, diskType string, mirror bool, firmware string, filesystems []string) (model.Layout, error) {
	l := model.Layout{Name: name, Mode: model.LayoutSimple,
		Simple: &model.SimpleLayout{Mirror: mirror, Firmware: model.Firmware(firmware)}}
	sel := model.DiskSelector{Type: model.DiskType(diskType)}
	if disk != "" {
		size, err := model.ParseDiskSize(disk)
		if err != nil {
			return l, fmt.Errorf("--disk: %w", err)
		}
		sel.Size = &size
	}
	l.Disks = []model.LayoutDisk{{Name: "disk0", Select: sel}}
	if mirror {
		l.Disks = append(l.Disks, model.LayoutDisk{Name: "disk1", Select: sel})
	}
	for _, spec := range filesystems {
		parts := strings.Split(spec, ":")
		if len(parts) != 3 {
			return l, fmt.Errorf("--fs %q: want MOUNT:TYPE:SIZE, as in /:ext4:40GB or swap:swap:8GB", spec)
		}
		size, err := model.ParsePartSize(parts[2])
		if err != nil {
			return l, fmt.Errorf("--fs %q: %w", spec, err)
		}
		fs := model.SimpleFS{Mount: parts[0], Type: model.FSType(parts[1]), Size: size}
		if fs.Type == model.FSSwap && (fs.Mount == "swap" || fs.Mount == "none") {
			fs.Mount = ""
		}
		l.Simple.Filesystems = append(l.Simple.Filesystems, fs)
	}
	return l, nil
}

// layout reads the layout the flags give: JSON from --file, or the short
// simple form.
func (a *app) layout(cmd, name string, f *layoutFlags) (model.Layout, error) {
	switch {
	case f.file != "" && f.simple():
		return model.Layout{}, usagef(cmd, "give the layout either as --file or by flags, not both")
	case f.file != "":
		var r io.Reader = a.stdin
		if f.file != "-" {
			fh, err := os.Open(f.file)
			if err != nil {
				return model.Layout{}, fmt.Errorf("%s: %w", cmd, err)
			}
			defer fh.Close()
			r = fh
		}
		var l model.Layout
		dec := json.NewDecoder(r)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return l, fmt.Errorf("%s: read %s: %w", cmd, f.file, err)
		}
		if l.Name == "" {
			l.Name = name
		}
		if l.Name != name {
			return l, usagef(cmd, "the file names layout %q, not %q", l.Name, name)
		}
		return l, nil
	case f.simple():
		l, err := SimpleLayoutOf(name, f.disk, f.diskType, f.mirror, f.firmware, f.fs)
		if err != nil {
			return l, usagef(cmd, "%v", err)
		}
		return l, nil
	}
	return model.Layout{}, usagef(cmd, "give the layout as --file FILE (JSON) or by --disk, --fs and --mirror")
}

func (a *app) layoutWrite(ctx context.Context, cmd, name string, f *layoutFlags, replace bool) error {
	l, err := a.layout(cmd, name, f)
	if err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return invalid(cmd+" "+name, err)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if replace {
		if _, err := cl.ReplaceLayout(ctx, l, 0); err != nil {
			return notFoundOr(err, cmd, "disk layout", name, "replace disk layout "+name)
		}
		fmt.Fprintf(a.stdout, "replaced disk layout %s\n", name)
		return nil
	}
	if _, err := cl.CreateLayout(ctx, l); err != nil {
		return fail("add disk layout "+name, err)
	}
	fmt.Fprintf(a.stdout, "added disk layout %s\n", name)
	return nil
}

func (a *app) layoutList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	layouts, err := cl.AllLayouts(ctx)
	if err != nil {
		return fail("list disk layouts", err)
	}
	if layouts == nil {
		layouts = []model.Layout{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Layout]{Items: layouts, Total: len(layouts)})
	}
	if len(layouts) == 0 {
		fmt.Fprintln(a.stderr, "No disk layouts.")
		return nil
	}
	t := newTable(a.stdout, "NAME", "MODE", "DISKS", "FILESYSTEMS")
	for _, l := range layouts {
		var mounts []string
		if adv := l.Expand(); adv != nil {
			for _, fs := range adv.Filesystems {
				m := fs.Mount
				if m == "" {
					m = string(fs.Type)
				}
				mounts = append(mounts, m)
			}
		}
		t.row(l.Name, string(l.Mode), fmt.Sprint(len(l.Disks)), strings.Join(mounts, " "))
	}
	return t.flush()
}

func (a *app) layoutShow(ctx context.Context, name string) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	l, err := cl.GetLayout(ctx, name)
	if err != nil {
		return notFoundOr(err, "layout show", "disk layout", name, "read disk layout "+name)
	}
	return writeJSON(a.stdout, l)
}
