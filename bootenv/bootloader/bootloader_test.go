package bootloader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func baseInput() Input {
	return Input{UEFI: true, BootMount: "/boot/efi", BootDisk: "/dev/sda", BootPart: 1,
		Kernel: "/boot/vmlinuz-6.1.0-28-amd64", Initrd: "/boot/initrd.img-6.1.0-28-amd64",
		RootSource: "/dev/system/root", Args: []string{"console=ttyS0,115200"}}
}

func TestDecide(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Input)
		skip   string // substring of Skip; "" = installs
	}{
		{"uefi", func(*Input) {}, ""},
		{"stateless", func(i *Input) { i.Stateless = true }, "stateless"},
		{"bios without the flag", func(i *Input) { i.UEFI = false }, "legacy_boot"},
		{"bios", func(i *Input) { i.UEFI, i.LegacyBoot = false, true }, ""},
		{"bios without a boot partition", func(i *Input) { i.UEFI, i.LegacyBoot, i.BootMount = false, true, "" }, "no vfat boot partition"},
		{"no-esp", func(i *Input) { i.BootMount = "" }, "no EFI system partition"},
		{"no-kernel", func(i *Input) { i.Kernel = "" }, "no kernel"},
		{"no-root", func(i *Input) { i.RootSource = "" }, "root filesystem"},
	}
	for _, c := range cases {
		in := baseInput()
		c.change(&in)
		d := Decide(in)
		if c.skip == "" && d.Skip != "" || c.skip != "" && !strings.Contains(d.Skip, c.skip) {
			t.Errorf("%s: skip %q, want %q", c.name, d.Skip, c.skip)
		}
	}
	d := Decide(baseInput())
	wantCopies := [][2]string{
		{"/boot/vmlinuz-6.1.0-28-amd64", "/boot/efi/EFI/herd/vmlinuz"},
		{"/boot/initrd.img-6.1.0-28-amd64", "/boot/efi/EFI/herd/initrd.img"},
	}
	if !slices.Equal(d.Copies, wantCopies) {
		t.Errorf("copies %v", d.Copies)
	}
	if d.Entry.Loader != `\EFI\herd\vmlinuz` || d.Entry.Args != `root=/dev/system/root ro initrd=\EFI\herd\initrd.img console=ttyS0,115200` {
		t.Errorf("entry %+v", d.Entry)
	}
	want := []string{"--create-only", "--disk", "/dev/sda", "--part", "1", "--label", d.Entry.Label,
		"--loader", `\EFI\herd\vmlinuz`, "--unicode", d.Entry.Args}
	if got := CreateArgs(d.Entry); !slices.Equal(got, want) {
		t.Errorf("CreateArgs = %q", got)
	}
	// The label changes with what the entry boots, not otherwise.
	in := baseInput()
	in.RootSource = "UUID=1234"
	if Label(Decide(in).Entry) == d.Entry.Label || Label(d.Entry) != d.Entry.Label {
		t.Error("label does not follow the entry's content")
	}
	in = baseInput()
	in.Initrd = ""
	if d := Decide(in); d.Note == "" || len(d.Copies) != 1 || strings.Contains(d.Entry.Args, "initrd=") {
		t.Errorf("without initrd: %+v", d)
	}
}

const listing = `BootCurrent: 0001
Timeout: 0 seconds
BootOrder: 0001,0000,0003
Boot0000* UiApp	FvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)
Boot0001* UEFI PXEv4 (MAC:525400123456)	PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)/IPv4(0.0.0.00.0.0.0,0,0)
Boot0003* herd local 00000000	HD(1,GPT,0b6b1d7c-0000-0000-0000-000000000000,0x800,0x100000)/File(\EFI\herd\vmlinuz)r.o.o.t.
Boot000A  EFI Internal Shell	FvVol(7cb8bdc9)/FvFile(7c04a583)
`

func TestParseAndPlan(t *testing.T) {
	fw := ParseEfibootmgr(listing)
	if !slices.Equal(fw.Order, []string{"0001", "0000", "0003"}) || len(fw.Entries) != 4 {
		t.Fatalf("parsed %+v", fw)
	}
	if e := fw.Entries[1]; e.Num != "0001" || e.Label != "UEFI PXEv4 (MAC:525400123456)" || !e.Active {
		t.Errorf("entry %+v", e)
	}
	if e := fw.Entries[3]; e.Num != "000A" || e.Active || e.Label != "EFI Internal Shell" {
		t.Errorf("inactive entry %+v", e)
	}
	w := Decide(baseInput()).Entry
	p := PlanEntries(fw, []Want{w})
	if p.Keep[0] != "" || !slices.Equal(p.Delete, []string{"0003"}) {
		t.Errorf("plan %+v: want the stale herd entry replaced", p)
	}
	fw.Entries[2].Label = w.Label
	p = PlanEntries(fw, []Want{w})
	if p.Keep[0] != "0003" || len(p.Delete) != 0 {
		t.Errorf("plan %+v: want the identical entry kept", p)
	}
	// A mirror's entry beside it: kept, and the other made.
	in := baseInput()
	in.Mirrors = []BootPart{{Disk: "/dev/sdb", Part: 1, Mount: "/run/herd/boot-sdb"}}
	m := Decide(in).Mirrors[0].Entry
	p = PlanEntries(fw, []Want{w, m})
	if !slices.Equal(p.Keep, []string{"0003", ""}) || len(p.Delete) != 0 {
		t.Errorf("plan %+v: want the first kept and the mirror's made", p)
	}
	if fw.Current != "0001" {
		t.Errorf("BootCurrent %q", fw.Current)
	}
	for _, c := range []struct {
		order   []string
		current string
		nums    []string
		want    []string
	}{
		{[]string{"0003", "0001", "0000", "000A"}, "0001", []string{"0003"}, []string{"0001", "0003", "0000", "000A"}},
		{[]string{"0001", "0000", "000A"}, "0001", []string{"0008", "0009"}, []string{"0001", "0008", "0009", "0000", "000A"}},
		{[]string{"0001", "0000"}, "", []string{"0008"}, []string{"0001", "0000", "0008"}},
		{[]string{"0001", "0000"}, "0005", []string{"0008"}, []string{"0001", "0000", "0008"}},
	} {
		if got := OrderAfter(c.order, c.current, c.nums); !slices.Equal(got, c.want) {
			t.Errorf("OrderAfter(%v, %s, %v) = %v, want %v", c.order, c.current, c.nums, got, c.want)
		}
	}
}

// efiSim answers efibootmgr's commands from a small model of the boot
// variables, as the firmware would.
type efiSim struct {
	order []string
	ents  map[string]string
	next  int
	calls [][]string
}

func (s *efiSim) list() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "BootOrder: %s\n", strings.Join(s.order, ","))
	var nums []string
	for n := range s.ents {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		fmt.Fprintf(&b, "Boot%s* %s\n", n, s.ents[n])
	}
	return []byte(b.String())
}

func (s *efiSim) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	s.calls = append(s.calls, append([]string{name}, args...))
	switch {
	case len(args) == 0:
	case args[0] == "--create-only":
		n := fmt.Sprintf("%04X", s.next)
		s.next++
		s.ents[n] = args[slices.Index(args, "--label")+1]
	case args[0] == "--bootnum":
		delete(s.ents, args[1])
		s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == args[1] })
	case args[0] == "--bootorder":
		s.order = strings.Split(args[1], ",")
	default:
		return nil, fmt.Errorf("unexpected efibootmgr %v", args)
	}
	return s.list(), nil
}

func TestInstallIdempotent(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{"boot/vmlinuz-6.1.0-28-amd64": "kernel", "boot/initrd.img-6.1.0-28-amd64": "initrd", "boot/efi/.keep": ""} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	k, i := ImageKernel(root, "")
	if k != "/boot/vmlinuz-6.1.0-28-amd64" || i != "/boot/initrd.img-6.1.0-28-amd64" {
		t.Fatalf("ImageKernel = %q %q", k, i)
	}
	sim := &efiSim{order: []string{"0001", "0000"}, ents: map[string]string{"0000": "UiApp", "0001": "UEFI PXEv4", "0007": "herd local deadbeef"}, next: 8}
	in := baseInput()
	in.Root = root
	d := Decide(in)
	res, err := Install(context.Background(), d, sim)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 1 || res.Entry != "0008" || !slices.Equal(res.Deleted, []string{"0007"}) || len(res.Copied) != 2 {
		t.Errorf("first install %+v", res)
	}
	if !slices.Equal(sim.order, []string{"0001", "0000", "0008"}) {
		t.Errorf("BootOrder %v, want the herd entry last", sim.order)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/efi/EFI/herd/vmlinuz")); string(b) != "kernel" {
		t.Errorf("kernel on the ESP: %q", b)
	}
	sim.calls = nil
	res, err = Install(context.Background(), d, sim)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 0 || len(res.Copied) != 0 || len(res.Deleted) != 0 || res.Entry != "0008" {
		t.Errorf("second install %+v", res)
	}
	if len(sim.calls) != 1 {
		t.Errorf("second install ran %v, want only the listing", sim.calls)
	}
}
