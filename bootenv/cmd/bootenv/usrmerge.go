package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// repairUsrMerge makes /lib, /lib64, /bin and /sbin under root links into
// usr again where the initramfs unpacker could not. bootenv's initramfs
// is usr-merged (lib -> usr/lib); a modules archive published before
// herd wrote them under usr/ (or one made by other tools), which the boot
// script loads before it, brings lib/ as a real directory
// (lib/modules/<version>), and the kernel's unpacker then cannot replace
// that non-empty directory with bootenv's link: /lib64/ld-linux… and every
// dynamically linked tool (modprobe, mkfs, sgdisk) are missing. The
// directory's contents move into usr/<dir> and the link is made. A name
// that is already a link, or has no usr/<dir> to merge into, is left.
func repairUsrMerge(root string) error {
	var errs []error
	for _, d := range []string{"lib", "lib64", "bin", "sbin"} {
		top, usr := filepath.Join(root, d), filepath.Join(root, "usr", d)
		fi, err := os.Lstat(top)
		if err != nil || !fi.IsDir() {
			continue // absent, or a link already
		}
		if ui, err := os.Stat(usr); err != nil || !ui.IsDir() {
			continue // not a usr-merged initramfs
		}
		if err := mergeDir(top, usr); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(top); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Symlink(filepath.Join("usr", d), top); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mergeDir moves everything in from into to, directory by directory, and
// leaves from empty. A file that exists in both keeps to's copy.
func mergeDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		di, err := os.Lstat(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(src, dst); err != nil {
				return err
			}
		case err != nil:
			return err
		case e.IsDir() && di.IsDir():
			if err := mergeDir(src, dst); err != nil {
				return err
			}
			if err := os.Remove(src); err != nil {
				return err
			}
		default:
			if err := os.RemoveAll(src); err != nil {
				return fmt.Errorf("drop %s (in %s too): %w", src, to, err)
			}
		}
	}
	return nil
}
