// Package bootloader installs a stateful node's fallback: a way to boot
// the OS on its disk when the appliance is down, never before the network.
//
// On UEFI it copies the image's kernel (an EFI stub, as distribution
// kernels are) and the image's own initrd, if it has one, to
// \EFI\herd\ on the EFI system partition and adds a firmware boot entry
// for it with efibootmgr right AFTER the entry the machine booted from
// (BootCurrent, the network), so network boot stays first and the disk
// comes next, before entries that never give up (a firmware's EFI shell
// waits at its prompt for ever). The entry's label carries a digest of what it boots (loader,
// arguments, disk and partition): an entry with the same label is the
// same entry and is kept, one with another herd label is replaced. No
// grub is installed, the distribution's or any other.
//
// On BIOS it installs SYSLINUX (Debian's extlinux, see bios.go) on the
// layout's vfat partition at /boot/herd, with the same kernel and initrd.
//
// Decide is pure; Install carries out its decision.
package bootloader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// LabelPrefix starts the label of every entry herd makes.
const LabelPrefix = "herd local"

// ESPDir is where the files go on the EFI system partition.
const ESPDir = "/EFI/herd"

// Input is what the decision is made from.
type Input struct {
	UEFI      bool   // /sys/firmware/efi exists
	Stateless bool   // nothing on disk to boot
	Root      string // the new root, with the boot partition mounted below it
	// BootMount is the layout's vfat mount point the loader's files go
	// on, "" when it has none: the EFI system partition (/boot/efi) on
	// UEFI, /boot/herd (or an ESP) on BIOS. BootDisk and BootPart are its
	// disk device (/dev/sda) and partition number.
	BootMount string
	BootDisk  string
	BootPart  int
	// LegacyBoot says the boot partition carries the GPT legacy_boot
	// flag, which a BIOS's boot code looks for.
	LegacyBoot bool
	// Mirrors are the boot partitions of a mirror's other disks.
	Mirrors []BootPart
	// Kernel and Initrd are the image's files (absolute in the root);
	// Initrd is "" when the image has none.
	Kernel, Initrd string
	// RootSource names the root filesystem for the kernel (UUID=…,
	// /dev/system/root).
	RootSource string
	// Args are more kernel arguments (console=ttyS0,115200).
	Args []string
}

// Decision is what to install, or why nothing.
type Decision struct {
	Skip string // why nothing is installed; empty when something is
	// Copies maps a source to a destination, both paths on this machine
	// (Root joined).
	Copies [][2]string
	Entry  Want  // on UEFI
	BIOS   *BIOS // on BIOS
	// Mirrors are the same on the other disks' boot partitions.
	Mirrors []Mirror
	// Note warns of something that may keep the fallback from booting.
	Note string
}

// Mirror is the fallback on another disk of a mirrored layout, so the
// node boots from whichever disk is left.
type Mirror struct {
	Copies [][2]string
	Entry  Want
	BIOS   *BIOS
}

// BootPart is one more boot partition: its disk, number, and where it
// is mounted for the step (on this machine, outside the root).
type BootPart struct {
	Disk  string
	Part  int
	Mount string
}

// Want is the firmware boot entry to have.
type Want struct {
	Label  string
	Disk   string
	Part   int
	Loader string // path on the ESP, backslashes: \EFI\herd\vmlinuz
	Args   string
}

// Decide decides what the fallback is, on the boot partition and on each
// mirror's.
func Decide(in Input) Decision {
	d := decideOne(in)
	if d.Skip != "" {
		return d
	}
	for _, m := range in.Mirrors {
		// A mirror's partition is mounted outside the root; the image's
		// files are still read from it.
		one := in
		one.Root, one.BootMount, one.BootDisk, one.BootPart, one.Mirrors = "", m.Mount, m.Disk, m.Part, nil
		one.Kernel = path.Join(in.Root, in.Kernel)
		if in.Initrd != "" {
			one.Initrd = path.Join(in.Root, in.Initrd)
		}
		md := decideOne(one)
		if md.Skip != "" {
			d.Note = strings.TrimPrefix(d.Note+"; the mirror "+m.Disk+" gets none: "+md.Skip, "; ")
			continue
		}
		d.Mirrors = append(d.Mirrors, Mirror{Copies: md.Copies, Entry: md.Entry, BIOS: md.BIOS})
	}
	return d
}

func decideOne(in Input) Decision {
	switch {
	case in.Stateless:
		return Decision{Skip: "stateless node: nothing on disk to boot"}
	case in.Kernel == "":
		return Decision{Skip: "the image has no kernel"}
	case in.RootSource == "":
		return Decision{Skip: "the root filesystem's device is not known"}
	case !in.UEFI:
		return decideBIOS(in)
	case in.BootMount == "":
		return Decision{Skip: "the disk layout has no EFI system partition (a vfat filesystem mounted at /boot/efi)"}
	case in.BootDisk == "" || in.BootPart == 0:
		return Decision{Skip: "the EFI system partition's disk was not found"}
	}
	espDir := path.Join(in.Root, in.BootMount, ESPDir)
	d := Decision{Copies: [][2]string{{path.Join(in.Root, in.Kernel), path.Join(espDir, "vmlinuz")}}}
	args := []string{"root=" + in.RootSource, "ro"}
	if in.Initrd != "" {
		d.Copies = append(d.Copies, [2]string{path.Join(in.Root, in.Initrd), path.Join(espDir, "initrd.img")})
		args = append(args, "initrd="+efiPath(ESPDir+"/initrd.img"))
	} else {
		d.Note = noInitrd(in)
	}
	args = append(args, in.Args...)
	d.Entry = Want{Disk: in.BootDisk, Part: in.BootPart, Loader: efiPath(ESPDir + "/vmlinuz"), Args: strings.Join(args, " ")}
	d.Entry.Label = Label(d.Entry)
	return d
}

func noInitrd(in Input) string {
	return "the image has no initrd: its kernel must find " + in.RootSource + " without one (no LVM, md or UUID= then)"
}

// efiPath writes a path on the ESP as firmware does.
func efiPath(p string) string { return strings.ReplaceAll(p, "/", `\`) }

// Label is the entry's label: LabelPrefix and a digest of everything the
// entry says, so an identical entry is recognised by its label alone
// (efibootmgr prints the arguments in forms that differ between versions).
func Label(w Want) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%s\x00%s", w.Disk, w.Part, w.Loader, w.Args)))
	return LabelPrefix + " " + hex.EncodeToString(h[:4])
}

// BootEntry is one Boot#### variable as efibootmgr lists it.
type BootEntry struct {
	Num    string // four hex digits
	Label  string
	Active bool
}

// Firmware is efibootmgr's view of the boot variables.
type Firmware struct {
	Current string // the entry this boot came from, "" when not known
	Order   []string
	Entries []BootEntry
}

// ParseEfibootmgr reads the output of efibootmgr (with or without -v).
func ParseEfibootmgr(out string) Firmware {
	var f Firmware
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if rest, ok := strings.CutPrefix(l, "BootCurrent:"); ok {
			if n := strings.TrimSpace(rest); len(n) == 4 && isHex(n) {
				f.Current = strings.ToUpper(n)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, "BootOrder:"); ok {
			for n := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
				if n = strings.TrimSpace(n); n != "" {
					f.Order = append(f.Order, strings.ToUpper(n))
				}
			}
			continue
		}
		if !strings.HasPrefix(l, "Boot") || len(l) < 9 || !isHex(l[4:8]) {
			continue
		}
		e := BootEntry{Num: strings.ToUpper(l[4:8])}
		rest := l[8:]
		if strings.HasPrefix(rest, "*") {
			e.Active = true
			rest = rest[1:]
		}
		rest = strings.TrimLeft(rest, " ")
		// With -v the device path follows the label after a tab.
		if i := strings.IndexByte(rest, '\t'); i >= 0 {
			rest = rest[:i]
		}
		e.Label = strings.TrimSpace(rest)
		f.Entries = append(f.Entries, e)
	}
	return f
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// EntryPlan is what to do to the boot variables.
type EntryPlan struct {
	Delete []string // entries of herd's that are no longer wanted
	// Keep holds, for each wanted entry in order, its number when it
	// exists and "" when it must be made.
	Keep []string
}

// PlanEntries compares the firmware's entries with those wanted.
func PlanEntries(f Firmware, wants []Want) EntryPlan {
	p := EntryPlan{Keep: make([]string, len(wants))}
	for _, e := range f.Entries {
		i := slices.IndexFunc(wants, func(w Want) bool { return w.Label == e.Label })
		switch {
		case i >= 0 && p.Keep[i] == "":
			p.Keep[i] = e.Num
		case strings.HasPrefix(e.Label, LabelPrefix):
			p.Delete = append(p.Delete, e.Num)
		}
	}
	return p
}

// OrderAfter returns order with nums right after current, in their
// order (at the end when current is not in it): the network entry the
// machine booted from stays before them, everything else after.
func OrderAfter(order []string, current string, nums []string) []string {
	out := slices.DeleteFunc(slices.Clone(order), func(n string) bool {
		return slices.ContainsFunc(nums, func(m string) bool { return strings.EqualFold(n, m) })
	})
	at := len(out)
	if i := slices.IndexFunc(out, func(n string) bool { return strings.EqualFold(n, current) }); current != "" && i >= 0 {
		at = i + 1
	}
	return slices.Insert(out, at, nums...)
}

// CreateArgs are efibootmgr's arguments that make the entry without
// putting it into BootOrder (--create-only; the order is set apart).
func CreateArgs(w Want) []string {
	return []string{"--create-only", "--disk", w.Disk, "--part", fmt.Sprint(w.Part),
		"--label", w.Label, "--loader", w.Loader, "--unicode", w.Args}
}

// ImageKernel finds the kernel of version in the tree at root, and its
// initrd when the image has one: /boot/vmlinuz-<v> (or
// /lib/modules/<v>/vmlinuz) and /boot/initrd.img-<v> (Debian) or
// /boot/initramfs-<v>.img (Red Hat). An empty version takes the
// highest-sorting /boot/vmlinuz-*. Paths are absolute in the root.
func ImageKernel(root, version string) (kernel, initrd string) {
	if version == "" {
		ms, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
		if len(ms) == 0 {
			return "", ""
		}
		slices.Sort(ms)
		version = strings.TrimPrefix(filepath.Base(ms[len(ms)-1]), "vmlinuz-")
	}
	regular := func(p string) bool {
		st, err := os.Stat(filepath.Join(root, p))
		return err == nil && st.Mode().IsRegular()
	}
	for _, k := range []string{"/boot/vmlinuz-" + version, "/lib/modules/" + version + "/vmlinuz", "/usr/lib/modules/" + version + "/vmlinuz"} {
		if regular(k) {
			kernel = k
			break
		}
	}
	for _, i := range []string{"/boot/initrd.img-" + version, "/boot/initramfs-" + version + ".img"} {
		if regular(i) {
			initrd = i
			break
		}
	}
	return kernel, initrd
}
