package bootloader

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// extlinuxRecorder stands in for extlinux (the real one needs a mounted
// vfat or ext filesystem: the e2e boot runs it in QEMU) and records what
// it was asked, leaving the files extlinux leaves.
type extlinuxRecorder struct{ calls [][]string }

func (r *extlinuxRecorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, append([]string{name}, args...))
	if name == "extlinux" && len(args) == 2 && args[0] == "--install" {
		return nil, os.WriteFile(filepath.Join(args[1], "ldlinux.sys"), []byte("ldlinux"), 0o444)
	}
	return nil, nil
}

func TestBIOSFallback(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{"boot/vmlinuz-6.1.0-28-amd64": "kernel", "boot/initrd.img-6.1.0-28-amd64": "initrd", "boot/herd/.keep": ""} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	// The disk: a protective MBR's partition table and signature after
	// the 440 bytes of boot code, which must survive.
	disk := filepath.Join(t.TempDir(), "sda")
	sector := make([]byte, 1<<20)
	copy(sector[446:], bytes.Repeat([]byte{0xee}, 16))
	sector[510], sector[511] = 0x55, 0xaa
	os.WriteFile(disk, sector, 0o644)
	code := filepath.Join(t.TempDir(), "gptmbr.bin")
	os.WriteFile(code, bytes.Repeat([]byte{0xfa}, 440), 0o644)

	in := baseInput()
	in.Root = root
	in.UEFI, in.LegacyBoot, in.BootMount, in.BootDisk, in.BootPart = false, true, "/boot/herd", disk, 1
	d := Decide(in)
	if d.Skip != "" || d.BIOS == nil {
		t.Fatalf("decision %+v", d)
	}
	if !slices.Equal(d.Copies, [][2]string{
		{root + "/boot/vmlinuz-6.1.0-28-amd64", root + "/boot/herd/herd/vmlinuz"},
		{root + "/boot/initrd.img-6.1.0-28-amd64", root + "/boot/herd/herd/initrd.img"},
	}) {
		t.Errorf("copies %v", d.Copies)
	}
	for _, want := range []string{"DEFAULT herd\n", "LINUX /herd/vmlinuz\n", "INITRD /herd/initrd.img\n", "APPEND root=/dev/system/root ro console=ttyS0,115200\n"} {
		if !strings.Contains(d.BIOS.Config, want) {
			t.Errorf("syslinux.cfg lacks %q:\n%s", want, d.BIOS.Config)
		}
	}
	d.BIOS.BootCode = code

	r := &extlinuxRecorder{}
	res, err := Install(context.Background(), d, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loader != 1 || res.BootCode != 1 || len(res.Copied) != 3 || len(r.calls) != 1 || r.calls[0][2] != filepath.Join(root, "boot/herd/herd") {
		t.Errorf("first install %+v, ran %v", res, r.calls)
	}
	got, _ := os.ReadFile(disk)
	if !bytes.Equal(got[:440], bytes.Repeat([]byte{0xfa}, 440)) || !bytes.Equal(got[440:], sector[440:]) {
		t.Error("the boot code was not written, or more than the boot code was")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/herd/herd/syslinux.cfg")); string(b) != d.BIOS.Config {
		t.Errorf("syslinux.cfg on the partition: %q", b)
	}

	// Nothing changed: nothing written, nothing run.
	r.calls = nil
	res, err = Install(context.Background(), d, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loader != 0 || res.BootCode != 0 || len(res.Copied) != 0 || len(r.calls) != 0 {
		t.Errorf("second install %+v, ran %v", res, r.calls)
	}

	// New kernel arguments: only the configuration is written again.
	in.Args = []string{"console=ttyS1,9600"}
	d2 := Decide(in)
	d2.BIOS.BootCode = code
	res, err = Install(context.Background(), d2, r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{root + "/boot/herd/herd/syslinux.cfg"}) || res.Loader != 0 || res.BootCode != 0 {
		t.Errorf("install after an argument change %+v", res)
	}
}

// TestMirrorFallback: each disk of a mirror gets the fallback on its own
// boot partition, so the node boots from whichever disk is left; a second
// run changes nothing.
func TestMirrorFallback(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{"boot/vmlinuz-6.1.0-28-amd64": "kernel", "boot/initrd.img-6.1.0-28-amd64": "initrd"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	t.Run("uefi", func(t *testing.T) {
		mirror := t.TempDir()
		in := baseInput()
		in.Root = root
		in.Mirrors = []BootPart{{Disk: "/dev/sdb", Part: 1, Mount: mirror}}
		d := Decide(in)
		if len(d.Mirrors) != 1 || d.Mirrors[0].Entry.Disk != "/dev/sdb" || d.Mirrors[0].Entry.Label == d.Entry.Label ||
			d.Mirrors[0].Copies[0] != [2]string{root + "/boot/vmlinuz-6.1.0-28-amd64", mirror + "/EFI/herd/vmlinuz"} {
			t.Fatalf("decision %+v", d)
		}
		sim := &efiSim{order: []string{"0001", "0000"}, ents: map[string]string{"0000": "UiApp", "0001": "UEFI PXEv4"}, next: 8}
		res, err := Install(context.Background(), d, sim)
		if err != nil {
			t.Fatal(err)
		}
		if res.Created != 2 || res.Entry != "0008" || !slices.Equal(res.Mirrors, []string{"0009"}) || len(res.Copied) != 4 ||
			!slices.Equal(sim.order, []string{"0001", "0000", "0008", "0009"}) {
			t.Errorf("first install %+v, BootOrder %v", res, sim.order)
		}
		if b, _ := os.ReadFile(filepath.Join(mirror, "EFI/herd/initrd.img")); string(b) != "initrd" {
			t.Errorf("initrd on the mirror's ESP: %q", b)
		}
		sim.calls = nil
		if res, err = Install(context.Background(), d, sim); err != nil || res.Created != 0 || len(res.Copied) != 0 || len(sim.calls) != 1 {
			t.Errorf("second install %+v %v, ran %v", res, err, sim.calls)
		}
	})
	t.Run("bios", func(t *testing.T) {
		code := filepath.Join(t.TempDir(), "gptmbr.bin")
		os.WriteFile(code, bytes.Repeat([]byte{0xfa}, 440), 0o644)
		var disks []string
		for _, n := range []string{"sda", "sdb"} {
			p := filepath.Join(t.TempDir(), n)
			os.WriteFile(p, make([]byte, 4096), 0o644)
			disks = append(disks, p)
		}
		mirror := t.TempDir()
		in := baseInput()
		in.Root = root
		in.UEFI, in.LegacyBoot, in.BootMount, in.BootDisk = false, true, "/boot/herd", disks[0]
		in.Mirrors = []BootPart{{Disk: disks[1], Part: 1, Mount: mirror}}
		d := Decide(in)
		if len(d.Mirrors) != 1 || d.Mirrors[0].BIOS == nil || d.Mirrors[0].BIOS.Dir != mirror+"/herd" {
			t.Fatalf("decision %+v", d)
		}
		d.BIOS.BootCode, d.Mirrors[0].BIOS.BootCode = code, code
		r := &extlinuxRecorder{}
		res, err := Install(context.Background(), d, r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Loader != 2 || res.BootCode != 2 || len(res.Copied) != 6 {
			t.Errorf("first install %+v", res)
		}
		for _, disk := range disks {
			if b, _ := os.ReadFile(disk); !bytes.Equal(b[:440], bytes.Repeat([]byte{0xfa}, 440)) {
				t.Errorf("%s has no boot code", disk)
			}
		}
		if res, err = Install(context.Background(), d, r); err != nil || res.Loader != 0 || res.BootCode != 0 || len(res.Copied) != 0 {
			t.Errorf("second install %+v %v", res, err)
		}
	})
}
