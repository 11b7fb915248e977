package pivot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestChooseInit(t *testing.T) {
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ChooseInit(root, ""); !errors.Is(err, ErrNoInit) {
		t.Errorf("empty root: %v", err)
	}
	mk("lib/systemd/systemd", 0o755)
	// /sbin/init is an absolute symlink, as in Debian: resolved in root.
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	if err := os.Symlink("/lib/systemd/systemd", filepath.Join(root, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	if got, err := ChooseInit(root, ""); err != nil || got != "/sbin/init" {
		t.Errorf("ChooseInit = %q, %v; want /sbin/init", got, err)
	}
	mk("usr/local/bin/notexec", 0o644)
	if _, err := ChooseInit(root, "/usr/local/bin/notexec"); !errors.Is(err, ErrNoInit) {
		t.Errorf("non-executable init: %v", err)
	}
	if _, err := ChooseInit(root, "bin/sh"); err == nil {
		t.Error("a relative init was taken")
	}
	mk("bin/sh", 0o755)
	if got, err := ChooseInit(root, "/bin/sh"); err != nil || got != "/bin/sh" {
		t.Errorf("named init: %q, %v", got, err)
	}
	// A symlink pointing out of the root resolves inside it, where there
	// is nothing.
	os.Symlink("/usr/bin/true", filepath.Join(root, "bin/escape"))
	if _, err := ChooseInit(root, "/bin/escape"); err == nil {
		t.Error("init outside the root was taken")
	}
}

// TestCleanStaysOnItsFilesystem empties a tree that has a tmpfs mounted
// inside it, standing for the new root: the tmpfs and what it holds stay.
func TestCleanStaysOnItsFilesystem(t *testing.T) {
	dir := t.TempDir()
	files := []string{"init", "bin/busybox", "lib/modules/6.1/kernel/a.ko", "etc/resolv.conf"}
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("/", filepath.Join(dir, "rootlink")) // never followed
	newroot := filepath.Join(dir, "newroot")
	os.MkdirAll(newroot, 0o755)
	if err := unix.Mount("tmpfs", newroot, "tmpfs", 0, "size=1m"); err != nil {
		t.Skip("mounting a tmpfs needs root:", err)
	}
	defer unix.Unmount(newroot, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(newroot, "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Clean(dir)
	if err != nil {
		t.Fatal(err)
	}
	// 4 files, 1 link, 5 directories (bin, lib, lib/modules, …/6.1, …/kernel, etc) = 4+1+6.
	if n != 11 {
		t.Errorf("removed %d entries, want 11", n)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "newroot" {
		t.Errorf("left %v, want only newroot", ents)
	}
	if b, err := os.ReadFile(filepath.Join(newroot, "keep")); err != nil || string(b) != "k" {
		t.Errorf("the mounted filesystem was touched: %q %v", b, err)
	}
	if _, err := os.Stat("/usr/bin"); err != nil {
		t.Fatal("followed a symlink out of the tree:", err)
	}
}

func TestPivotRefusesOutsidePID1(t *testing.T) {
	if err := Pivot(Options{NewRoot: t.TempDir()}); err == nil {
		t.Fatal("Pivot ran in a test process")
	}
}
