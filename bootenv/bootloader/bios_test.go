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
	in.UEFI, in.LegacyBoot, in.BootMount, in.BootDisk, in.BootPart = false, true, "/boot/herd", disk, 1
	d := Decide(in)
	if d.Skip != "" || d.BIOS == nil {
		t.Fatalf("decision %+v", d)
	}
	if !slices.Equal(d.Copies, [][2]string{
		{"/boot/vmlinuz-6.1.0-28-amd64", "/boot/herd/herd/vmlinuz"},
		{"/boot/initrd.img-6.1.0-28-amd64", "/boot/herd/herd/initrd.img"},
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
	res, err := Install(context.Background(), d, root, r)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Loader || !res.BootCode || len(res.Copied) != 3 || len(r.calls) != 1 || r.calls[0][2] != filepath.Join(root, "boot/herd/herd") {
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
	res, err = Install(context.Background(), d, root, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loader || res.BootCode || len(res.Copied) != 0 || len(r.calls) != 0 {
		t.Errorf("second install %+v, ran %v", res, r.calls)
	}

	// New kernel arguments: only the configuration is written again.
	in.Args = []string{"console=ttyS1,9600"}
	d2 := Decide(in)
	d2.BIOS.BootCode = code
	res, err = Install(context.Background(), d2, root, r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{"/boot/herd/herd/syslinux.cfg"}) || res.Loader || res.BootCode {
		t.Errorf("install after an argument change %+v", res)
	}
}
