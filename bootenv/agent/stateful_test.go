package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/bootenv/agent"
	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// machine stands for a node's disks and firmware where the host cannot
// have them (no md, no device-mapper, no partitions on loop devices; see
// FIELD-NOTES): Detect answers what a blank disk and then the laid-out
// disk look like, commands are recorded, and only mkdir runs (inside the
// test's root). The real commands run in the QEMU tests.
type machine struct {
	detects       int
	before, after disk.Found
	cmds          [][]string
	// efibootmgr's state.
	order []string
	ents  map[string]string
	next  int
}

func (m *machine) Detect(context.Context) (disk.Found, error) {
	m.detects++
	if m.detects == 1 {
		return m.before, nil
	}
	return m.after, nil
}

func (m *machine) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	m.cmds = append(m.cmds, append([]string{name}, args...))
	switch name {
	case "mkdir":
		return nil, os.MkdirAll(args[len(args)-1], 0o755)
	case "efibootmgr":
		return m.efibootmgr(args)
	}
	return nil, nil
}

func (m *machine) efibootmgr(args []string) ([]byte, error) {
	switch {
	case len(args) == 0:
	case args[0] == "--create-only":
		n := fmt.Sprintf("%04X", m.next)
		m.next++
		m.ents[n] = args[slices.Index(args, "--label")+1]
	case args[0] == "--bootnum":
		delete(m.ents, args[1])
	case args[0] == "--bootorder":
		m.order = strings.Split(args[1], ",")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BootCurrent: 0001\nBootOrder: %s\n", strings.Join(m.order, ","))
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range m.ents {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "Boot%s* %s\tHD(1,GPT,…)\n", n, m.ents[n])
	}
	return []byte(b.String()), nil
}

func (m *machine) ran(name string) [][]string {
	var out [][]string
	for _, c := range m.cmds {
		if c[0] == name {
			out = append(out, c)
		}
	}
	return out
}

func TestAgentStatefulBoot(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	actor := store.Actor{User: "test", Host: "test"}
	layout := model.Layout{Name: "one-ssd", Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0", Select: model.DiskSelector{Type: model.DiskSSD}}},
		Simple: &model.SimpleLayout{Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
		}}}
	if _, err := c.st.CreateLayout(ctx, actor, layout); err != nil {
		t.Fatal(err)
	}
	stateful := false
	if _, err := c.st.CreateGroup(ctx, actor, model.Group{Name: "disked", Settings: model.Settings{Image: "tiny", DiskLayout: "one-ssd", Stateless: &stateful}}); err != nil {
		t.Fatal(err)
	}
	n, err := c.st.GetNode(ctx, "n001")
	if err != nil {
		t.Fatal(err)
	}
	n.Group = "disked"
	if _, err := c.st.ReplaceNode(ctx, actor, n, 0); err != nil {
		t.Fatal(err)
	}
	blank := disk.Detected{Name: "vda", Transport: "virtio", Size: 20 << 30}
	laid := blank
	laid.Table = "gpt"
	laid.Partitions = []disk.Partition{
		{Number: 1, Path: "/dev/vda1", Size: 512 << 20, FSType: "vfat", FSUUID: "ABCD-0001"},
		{Number: 2, Path: "/dev/vda2", FSType: "LVM2_member"},
	}
	m := &machine{before: disk.Found{Disks: []disk.Detected{blank}}, after: disk.Found{Disks: []disk.Detected{laid}},
		order: []string{"0001", "0000"}, ents: map[string]string{"0000": "UiApp", "0001": "UEFI PXEv4"}, next: 8}

	root := t.TempDir()
	run := func() (string, string) {
		id, token := c.boot()
		a := agent.New(agent.Options{Session: id, Server: client.NewBoot(c.srv.URL, token, nil), Root: root,
			Disks: m, UEFI: true, Bootloader: m, KernelArgs: []string{"console=ttyS0"}, Console: lineWriter{t}})
		if err := a.Run(ctx); err != nil {
			t.Fatalf("run: %v", err)
		}
		return id, token
	}
	id, token := run()

	// The layout was applied with its mounts under the test's root.
	mounts := m.ran("mount")
	if len(mounts) != 2 || mounts[0][len(mounts[0])-1] != root || mounts[1][len(mounts[1])-1] != filepath.Join(root, "boot/efi") {
		t.Errorf("mounts %q", mounts)
	}
	if len(m.ran("sgdisk")) == 0 || len(m.ran("mkfs.ext4")) == 0 {
		t.Errorf("no partitioning or mkfs in %q", m.cmds)
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	for _, want := range []string{"/dev/system/root\t/\text4\tdefaults\t0 1\n", "UUID=ABCD-0001\t/boot/efi\tvfat\tdefaults\t0 2\n"} {
		if !strings.Contains(string(fstab), want) {
			t.Errorf("fstab lacks %q:\n%s", want, fstab)
		}
	}
	// The fallback entry: the image's kernel and initrd on the ESP, the
	// entry right after the network one the machine booted from.
	if b, _ := os.ReadFile(filepath.Join(root, "boot/efi/EFI/herd/vmlinuz")); string(b) != "a kernel" {
		t.Errorf("kernel on the ESP: %q", b)
	}
	if !slices.Equal(m.order, []string{"0001", "0008", "0000"}) || !strings.HasPrefix(m.ents["0008"], "herd local ") {
		t.Errorf("firmware: order %v entries %v", m.order, m.ents)
	}
	create := m.ran("efibootmgr")[1]
	if !slices.Contains(create, "/dev/vda") || !slices.Contains(create, "root=/dev/system/root ro initrd=\\EFI\\herd\\initrd.img console=ttyS0") {
		t.Errorf("efibootmgr %q", create)
	}
	evs := c.events(id, token)
	if last := evs[len(evs)-1]; last.Step != "pivot" || last.State != model.EventInfo {
		t.Errorf("last event %+v", last)
	}

	// The next boot keeps the entry and the files on the ESP: the sync
	// preserves them.
	m.cmds = nil
	id, token = run()
	kept := false
	for _, e := range c.events(id, token) {
		if e.Step == "bootloader" && e.State == model.EventOK {
			kept = strings.HasPrefix(e.Message, "kept boot entry 0008") && !strings.Contains(e.Message, "copied")
			t.Log(e.Message)
		}
		// What the plugins wrote on the first boot is neither restored
		// nor written again, their directories' times included.
		if e.Step == "image" && e.State == model.EventOK && !strings.Contains(e.Message, "nothing to do") {
			t.Errorf("second boot's image step: %s", e.Message)
		}
	}
	if !kept {
		t.Error("second boot did not keep the boot entry and the ESP's files")
	}
	if got := m.ran("efibootmgr"); len(got) != 1 {
		t.Errorf("second boot ran %q", got)
	}
}

// lineWriter logs what the agent prints on its console.
type lineWriter struct{ t *testing.T }

func (w lineWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
