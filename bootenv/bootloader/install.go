package bootloader

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Runner runs a command and returns its output (disk.ExecRunner does).
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Result is what Install did.
type Result struct {
	Copied  []string // files written to the boot partitions (the others were the same)
	Entry   string   // the boot entry's number (UEFI)
	Mirrors []string // the mirror disks' entries' numbers (UEFI)
	Created int      // entries made now
	Deleted []string // older herd entries removed
	Order   []string // BootOrder afterwards
	// On BIOS: Loader counts the partitions extlinux was installed on
	// now, BootCode the disks whose boot code was written now.
	Loader, BootCode int
}

// Install carries out d: copies the files that differ,
// then on UEFI makes the firmware boot entries that are missing, right
// after the network entry in BootOrder, and on BIOS installs the loader where it is missing; for the
// boot partition and each mirror's.
func Install(ctx context.Context, d Decision, r Runner) (Result, error) {
	var res Result
	if d.Skip != "" {
		return res, nil
	}
	copies := slices.Clone(d.Copies)
	for _, m := range d.Mirrors {
		copies = append(copies, m.Copies...)
	}
	for _, c := range copies {
		wrote, err := copyIfDifferent(c[0], c[1])
		if err != nil {
			return res, fmt.Errorf("copy %s to the boot partition: %w", c[0], err)
		}
		if wrote {
			res.Copied = append(res.Copied, c[1])
		}
	}
	if d.BIOS != nil {
		if err := installBIOS(ctx, d.BIOS, r, &res); err != nil {
			return res, err
		}
		for _, m := range d.Mirrors {
			if err := installBIOS(ctx, m.BIOS, r, &res); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	wants := []Want{d.Entry}
	for _, m := range d.Mirrors {
		wants = append(wants, m.Entry)
	}
	out, err := r.Run(ctx, "efibootmgr")
	if err != nil {
		return res, fmt.Errorf("read the firmware's boot entries: %w", err)
	}
	fw := ParseEfibootmgr(string(out))
	p := PlanEntries(fw, wants)
	for _, n := range p.Delete {
		if out, err = r.Run(ctx, "efibootmgr", "--bootnum", n, "--delete-bootnum"); err != nil {
			return res, fmt.Errorf("delete old herd boot entry %s: %w", n, err)
		}
		res.Deleted = append(res.Deleted, n)
	}
	nums := slices.Clone(p.Keep)
	for i, w := range wants {
		if nums[i] != "" {
			continue
		}
		if out, err = r.Run(ctx, "efibootmgr", CreateArgs(w)...); err != nil {
			return res, fmt.Errorf("create boot entry %q: %w", w.Label, err)
		}
		res.Created++
		for _, e := range ParseEfibootmgr(string(out)).Entries {
			if e.Label == w.Label {
				nums[i] = e.Num
			}
		}
		if nums[i] == "" {
			return res, fmt.Errorf("create boot entry %q: efibootmgr does not list it afterwards", w.Label)
		}
	}
	if len(p.Delete) > 0 || res.Created > 0 {
		fw = ParseEfibootmgr(string(out))
	}
	res.Entry, res.Mirrors = nums[0], nums[1:]
	res.Order = OrderAfter(fw.Order, fw.Current, nums)
	if strings.Join(res.Order, ",") != strings.Join(fw.Order, ",") {
		if _, err := r.Run(ctx, "efibootmgr", "--bootorder", strings.Join(res.Order, ",")); err != nil {
			return res, fmt.Errorf("put herd's boot entries after the network in BootOrder: %w", err)
		}
	}
	return res, nil
}

// copyIfDifferent writes src's content to dst unless dst holds it already.
func copyIfDifferent(src, dst string) (bool, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return false, err
	}
	return writeIfDifferent(dst, b)
}

// writeIfDifferent writes b to dst unless dst holds it already. The boot
// partition is vfat: no owners or modes to keep, but a rename still keeps
// a half-written kernel from ever being dst.
func writeIfDifferent(dst string, b []byte) (bool, error) {
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	tmp := dst + ".herd-tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return false, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return false, err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, os.Rename(tmp, dst)
}
