// Package disk decides and applies a node's disk layout: Match maps the
// layout's disk0…diskN to the disks found, Plan compares the wanted layout
// with what is on them and lists the exact steps, Apply runs the steps
// through a Runner. Match and Plan are pure; Detect reads the machine
// through a Probe, so tests feed it recorded data.
package disk

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Partition is a partition found on a disk.
type Partition struct {
	Number   int
	Path     string // /dev/nvme0n1p1
	Size     uint64 // bytes
	TypeGUID string // upper case
	PartUUID string
	FSType   string // as blkid names it: ext4, xfs, vfat, btrfs, swap, linux_raid_member, LVM2_member
	FSLabel  string
	FSUUID   string
}

// Detected is one disk as found at boot.
type Detected struct {
	Name       string // nvme0n1, sda
	Vendor     string
	Model      string
	Serial     string
	Rotational bool
	Transport  string // nvme, sata, sas, usb, virtio, …
	Size       uint64 // bytes
	ByPath     string // name under /dev/disk/by-path, if any
	Table      string // "gpt", "dos" or "" for none
	Partitions []Partition
}

// Type classifies the disk as matched by a layout. A virtio disk is an
// SSD: virtio-blk cannot tell what backs it and the kernel leaves its
// rotational flag at the default 1, so the flag says nothing there.
func (d Detected) Type() model.DiskType {
	switch {
	case d.Transport == "nvme" || strings.HasPrefix(d.Name, "nvme"):
		return model.DiskNVMe
	case d.Transport == "virtio":
		return model.DiskSSD
	case d.Rotational:
		return model.DiskHDD
	}
	return model.DiskSSD
}

// Path is the device node.
func (d Detected) Path() string { return "/dev/" + d.Name }

// PartitionPath is the device node of partition n: a "p" goes between a
// name ending in a digit and the number (nvme0n1p1, sda1).
func (d Detected) PartitionPath(n int) string {
	sep := ""
	if last := d.Name[len(d.Name)-1]; last >= '0' && last <= '9' {
		sep = "p"
	}
	return fmt.Sprintf("/dev/%s%s%d", d.Name, sep, n)
}

// Array is an md array found: its members carry its superblock.
type Array struct {
	UUID    string
	Name    string // as in the superblock, without any "host:" prefix
	Level   int
	Members []string // member device paths found
	Devices int      // raid devices the superblock wants
	Device  string   // the running array's node (/dev/md127); empty when not assembled
}

// PV is an LVM physical volume found.
type PV struct {
	Device string
	VG     string // empty when the PV belongs to no group
}

// LV is an LVM logical volume found, with what is on it.
type LV struct {
	VG, Name string
	Size     uint64
	FSType   string
	FSLabel  string
	Active   bool
}

// Found is everything Detect reads: the disks and the md and LVM state
// across them.
type Found struct {
	Disks  []Detected
	Arrays []Array
	PVs    []PV
	LVs    []LV
	// ArrayFS is the filesystem type on an array device, by array name.
	ArrayFS map[string]string
}

// Runner runs a command and returns its combined output. ExecRunner runs
// it for real; tests record the commands instead.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands on this machine.
type ExecRunner struct{}

// Run runs name with args and returns its output; a failure includes it.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
