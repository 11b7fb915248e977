package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// debianSuite is the release DebianRoot builds; the variant is minbase.
const debianSuite = "bookworm"

// DebianRoot returns a real Debian root filesystem (debootstrap --variant=
// minbase), built on first use into localdev/.cache/rootfs and kept there
// between runs. Tests must not change it: copy it with CopyTree first.
// The mirror is HERD_DEBIAN_MIRROR, default http://deb.debian.org/debian.
// Building needs root; without root the test is skipped with the reason.
func DebianRoot(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testenv: building a Debian root filesystem with debootstrap needs root")
	}
	env, err := envFile()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cache := filepath.Join(filepath.Dir(filepath.Dir(env)), ".cache", "rootfs")
	dir := filepath.Join(cache, debianSuite+"-minbase")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// One builder at a time across test binaries; the others wait and reuse.
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "etc", "debian_version")); err == nil {
		return dir
	}
	mirror := os.Getenv("HERD_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: building a %s minbase root with debootstrap from %s (once; cached in %s)", debianSuite, mirror, dir)
	cmd := exec.Command("debootstrap", "--variant=minbase", debianSuite, tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: debootstrap %s into %s: %v\n%s", debianSuite, tmp, err, tail(out, 2000))
	}
	// debootstrap leaves its download cache; a root keeps only what it runs.
	if err := removeContents(filepath.Join(tmp, "var", "cache", "apt", "archives")); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

// CopyTree copies the tree src into a new temporary directory of the test,
// keeping every attribute (owners, modes, xattrs, hardlinks, devices, sparse
// files), and returns the copy's path.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tree")
	cmd := exec.Command("cp", "-a", "--sparse=always", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: copy %s: %v\n%s", src, err, out)
	}
	return dst
}

func removeContents(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("clean %s: %w", dir, err)
			}
		}
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
