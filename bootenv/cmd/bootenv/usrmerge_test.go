package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRepairUsrMerge: the modules archive unpacked first left lib/ a real
// directory where bootenv's initramfs has lib -> usr/lib; after the repair
// lib is the link again and both the archive's modules and bootenv's
// libraries are reached through it. lib64, already a link, is left.
func TestRepairUsrMerge(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{
		"lib/modules/6.1.0-1-amd64/kernel/e1000.ko":      "module",
		"lib/modules/6.1.0-1-amd64/modules.dep":          "kernel/e1000.ko:\n",
		"usr/lib/x86_64-linux-gnu/libc.so.6":             "libc",
		"usr/lib/modules/6.1.0-1-amd64/kernel/virtio.ko": "bootenv's own",
		"usr/lib64/ld-linux-x86-64.so.2":                 "ld",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/lib64", filepath.Join(root, "lib64")); err != nil {
		t.Fatal(err)
	}
	if err := repairUsrMerge(root); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "lib")); err != nil || target != "usr/lib" {
		t.Fatalf("lib: %q %v, want a link to usr/lib", target, err)
	}
	for p, want := range map[string]string{
		"lib/modules/6.1.0-1-amd64/kernel/e1000.ko":  "module",
		"lib/modules/6.1.0-1-amd64/kernel/virtio.ko": "bootenv's own",
		"lib/x86_64-linux-gnu/libc.so.6":             "libc",
		"lib64/ld-linux-x86-64.so.2":                 "ld",
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	// Again: nothing left to do, nothing broken.
	if err := repairUsrMerge(root); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(root, "lib")); target != "usr/lib" {
		t.Errorf("lib after a second repair: %q", target)
	}
}
