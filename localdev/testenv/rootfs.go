package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	return debianRoot(t, "minbase", "")
}

// debianRoot builds (once) and returns the cached root named
// <suite>-<name>: debootstrap minbase with the packages in include
// (comma-separated, none when empty).
func debianRoot(t testing.TB, name, include string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testenv: building a Debian root filesystem with debootstrap needs root")
	}
	mirror := os.Getenv("HERD_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	return cached(t, "rootfs", debianSuite+"-"+name, "etc/debian_version", func(dir string) error {
		args := []string{"--variant=minbase"}
		if include != "" {
			args = append(args, "--include="+include)
		}
		t.Logf("testenv: building a %s %s root with debootstrap from %s (once; cached)", debianSuite, name, mirror)
		if err := run("", "debootstrap", append(args, debianSuite, dir, mirror)...); err != nil {
			return err
		}
		// debootstrap leaves its download cache; a root keeps only what it runs.
		return removeContents(filepath.Join(dir, "var", "cache", "apt", "archives"))
	})
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
