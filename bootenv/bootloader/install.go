package bootloader

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Runner runs a command and returns its output (disk.ExecRunner does).
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Result is what Install did.
type Result struct {
	Copied  []string // files written to the boot partition (the others were the same)
	Entry   string   // the boot entry's number (UEFI)
	Created bool     // the entry was made now
	Deleted []string // older herd entries removed
	Order   []string // BootOrder afterwards
	// On BIOS: Loader says extlinux was installed now, BootCode that the
	// disk's boot code was written now.
	Loader, BootCode bool
}

// Install carries out d on the tree at root: copies the files that differ,
// then on UEFI makes the firmware boot entry if it is missing, last in
// BootOrder, and on BIOS installs the loader where it is missing.
func Install(ctx context.Context, d Decision, root string, r Runner) (Result, error) {
	var res Result
	if d.Skip != "" {
		return res, nil
	}
	for _, c := range d.Copies {
		wrote, err := copyIfDifferent(filepath.Join(root, c[0]), filepath.Join(root, c[1]))
		if err != nil {
			return res, fmt.Errorf("copy %s to the boot partition: %w", c[0], err)
		}
		if wrote {
			res.Copied = append(res.Copied, c[1])
		}
	}
	if d.BIOS != nil {
		return res, installBIOS(ctx, d.BIOS, root, r, &res)
	}
	out, err := r.Run(ctx, "efibootmgr")
	if err != nil {
		return res, fmt.Errorf("read the firmware's boot entries: %w", err)
	}
	fw := ParseEfibootmgr(string(out))
	p := PlanEntry(fw, d.Entry)
	for _, n := range p.Delete {
		if out, err = r.Run(ctx, "efibootmgr", "--bootnum", n, "--delete-bootnum"); err != nil {
			return res, fmt.Errorf("delete old herd boot entry %s: %w", n, err)
		}
		res.Deleted = append(res.Deleted, n)
	}
	res.Entry = p.Keep
	if p.Create {
		if out, err = r.Run(ctx, "efibootmgr", CreateArgs(d.Entry)...); err != nil {
			return res, fmt.Errorf("create boot entry %q: %w", d.Entry.Label, err)
		}
		res.Created = true
		for _, e := range ParseEfibootmgr(string(out)).Entries {
			if e.Label == d.Entry.Label {
				res.Entry = e.Num
			}
		}
		if res.Entry == "" {
			return res, fmt.Errorf("create boot entry %q: efibootmgr does not list it afterwards", d.Entry.Label)
		}
	}
	if len(p.Delete) > 0 || p.Create {
		fw = ParseEfibootmgr(string(out))
	}
	res.Order = OrderLast(fw.Order, res.Entry)
	if strings.Join(res.Order, ",") != strings.Join(fw.Order, ",") {
		if _, err := r.Run(ctx, "efibootmgr", "--bootorder", strings.Join(res.Order, ",")); err != nil {
			return res, fmt.Errorf("put boot entry %s last in BootOrder: %w", res.Entry, err)
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
