package agent

import (
	"slices"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
)

// TestMountPointsArePreserved: the image sync must keep the layout's
// mount points (the ESP at /boot/efi of a UEFI layout) even when the
// image has no such directory; the root and swap are no mount points to
// keep, and a stateless node has none.
func TestMountPointsArePreserved(t *testing.T) {
	l := &model.Layout{Name: "uefi", Mode: model.LayoutSimple, Disks: []model.LayoutDisk{{Name: "disk0"}},
		Simple: &model.SimpleLayout{Firmware: model.FirmwareUEFI, Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
			{Type: model.FSSwap, Size: model.PartSize{Size: 1 << 30}},
		}}}
	a := &Agent{plan: model.NodePlan{Layout: l}}
	if got := a.mountPoints(); !slices.Equal(got, []string{"/boot/efi"}) {
		t.Errorf("mount points %q, want [/boot/efi]", got)
	}
	a.plan.Stateless = true
	if got := a.mountPoints(); got != nil {
		t.Errorf("stateless: mount points %q, want none", got)
	}
}
