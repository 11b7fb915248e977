package bootloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// On a BIOS machine the fallback is SYSLINUX, as Debian's extlinux
// installs it: its GPT boot code in the disk's first 440 bytes starts the
// partition flagged legacy_boot, whose boot sector and ldlinux.sys read
// BIOSDir/syslinux.cfg and load the image's kernel and initrd from the
// same vfat partition, so no loader has to read LVM or md. A BIOS keeps
// its boot order where herd cannot set it: the admin keeps the network
// first, as for any PXE cluster, and the disk boots when it fails.

// BIOSDir is where the loader and its files go on the boot partition.
const BIOSDir = "/herd"

// GPTBootCode is SYSLINUX's boot code for GPT disks (package
// syslinux-common), which bootenv's initramfs carries.
const GPTBootCode = "/usr/lib/syslinux/mbr/gptmbr.bin"

// BIOS is what a BIOS fallback needs beyond the copied files.
type BIOS struct {
	Disk string // whose first 440 bytes get BootCode (/dev/sda)
	// BootCode is the file holding the boot code; GPTBootCode.
	BootCode string
	// Dir is the loader's directory on this machine
	// (/newroot/boot/herd/herd); Config is its syslinux.cfg.
	Dir    string
	Config string
}

func decideBIOS(in Input) Decision {
	switch {
	case in.BootMount == "":
		return Decision{Skip: "the disk layout has no vfat boot partition for a BIOS loader (mounted at /boot/herd; the simple layout's bios firmware makes one)"}
	case in.BootDisk == "" || in.BootPart == 0:
		return Decision{Skip: "the boot partition's disk was not found"}
	case !in.LegacyBoot:
		return Decision{Skip: fmt.Sprintf("partition %d of the boot disk lacks the legacy_boot flag the BIOS boot code looks for: add it to the layout", in.BootPart)}
	}
	dir := path.Join(in.Root, in.BootMount, BIOSDir)
	d := Decision{Copies: [][2]string{{path.Join(in.Root, in.Kernel), path.Join(dir, "vmlinuz")}}}
	var cfg strings.Builder
	cfg.WriteString("# Written by herd's bootenv: boots this node's OS from its disk when\n")
	cfg.WriteString("# the network boot fails. Changes are overwritten on the next provisioning.\n")
	cfg.WriteString("DEFAULT herd\nPROMPT 0\nTIMEOUT 0\n\nLABEL herd\n")
	fmt.Fprintf(&cfg, "  LINUX %s/vmlinuz\n", BIOSDir)
	if in.Initrd != "" {
		d.Copies = append(d.Copies, [2]string{path.Join(in.Root, in.Initrd), path.Join(dir, "initrd.img")})
		fmt.Fprintf(&cfg, "  INITRD %s/initrd.img\n", BIOSDir)
	} else {
		d.Note = noInitrd(in)
	}
	args := append([]string{"root=" + in.RootSource, "ro"}, in.Args...)
	fmt.Fprintf(&cfg, "  APPEND %s\n", strings.Join(args, " "))
	d.BIOS = &BIOS{Disk: in.BootDisk, BootCode: GPTBootCode, Dir: dir, Config: cfg.String()}
	return d
}

// installBIOS writes the loader's configuration, installs extlinux when
// its files are missing, and puts the boot code on the disk when its
// first 440 bytes differ: a second run with nothing changed writes
// nothing.
func installBIOS(ctx context.Context, b *BIOS, r Runner, res *Result) error {
	dir := b.Dir
	wrote, err := writeIfDifferent(filepath.Join(dir, "syslinux.cfg"), []byte(b.Config))
	if err != nil {
		return fmt.Errorf("write the loader's configuration: %w", err)
	}
	if wrote {
		res.Copied = append(res.Copied, filepath.Join(dir, "syslinux.cfg"))
	}
	if _, err := os.Stat(filepath.Join(dir, "ldlinux.sys")); errors.Is(err, os.ErrNotExist) {
		if out, err := r.Run(ctx, "extlinux", "--install", dir); err != nil {
			return fmt.Errorf("extlinux --install %s: %w: %s", b.Dir, err, bytes.TrimSpace(out))
		}
		res.Loader++
	} else if err != nil {
		return err
	}
	code, err := os.ReadFile(b.BootCode)
	if err != nil {
		return fmt.Errorf("read the boot code: %w", err)
	}
	if len(code) > 440 {
		// The rest of the first sector is the partition table.
		code = code[:440]
	}
	written, err := writeHead(b.Disk, code)
	if err != nil {
		return fmt.Errorf("write the boot code to %s: %w", b.Disk, err)
	}
	if written {
		res.BootCode++
	}
	return nil
}

// writeHead writes code at the start of the device unless it is there.
func writeHead(dev string, code []byte) (bool, error) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	have := make([]byte, len(code))
	if _, err := io.ReadFull(f, have); err != nil {
		return false, err
	}
	if bytes.Equal(have, code) {
		return false, nil
	}
	if _, err := f.WriteAt(code, 0); err != nil {
		return false, err
	}
	return true, f.Sync()
}
