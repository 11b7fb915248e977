package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Kernel is a Debian kernel unpacked for tests: its image and its modules.
type Kernel struct {
	Version string // 6.1.0-56-amd64
	Vmlinuz string // path of the kernel image
	Modules string // lib/modules/<Version>: modules.dep and the .ko files
}

// DebianKernel returns the kernel of Debian's linux-image-amd64, fetched
// on first use with apt-get download (the image package the metapackage
// depends on) and unpacked with dpkg-deb -x into
// localdev/.cache/kernel/<version>/, where it stays between runs. Nothing
// is installed on this machine; depmod makes modules.dep. Tests must not
// change the files. Without apt-get or dpkg-deb the test is skipped with
// the reason.
func DebianKernel(t testing.TB) Kernel {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("testenv: a Debian kernel for tests needs %s: %v", tool, err)
		}
	}
	pkg, err := kernelPackage()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	dir := cached(t, "kernel", version, filepath.Join("lib", "modules", version, "modules.dep"), func(dir string) error {
		dl := t.TempDir()
		t.Logf("testenv: fetching %s with apt-get download (once; cached)", pkg)
		if err := run(dl, "apt-get", "download", "-q", pkg); err != nil {
			// The package lists may be missing or stale on a fresh machine.
			if uerr := run("", "apt-get", "update", "-q"); uerr != nil {
				return fmt.Errorf("%w; apt-get update: %w", err, uerr)
			}
			if err := run(dl, "apt-get", "download", "-q", pkg); err != nil {
				return err
			}
		}
		debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
		if len(debs) != 1 {
			return fmt.Errorf("apt-get download %s left %d packages", pkg, len(debs))
		}
		if err := run("", "dpkg-deb", "-x", debs[0], dir); err != nil {
			return err
		}
		// modules.dep is made by the package's postinst, which does not run here.
		return run("", "depmod", "-b", dir, version)
	})
	return Kernel{
		Version: version,
		Vmlinuz: filepath.Join(dir, "boot", "vmlinuz-"+version),
		Modules: filepath.Join(dir, "lib", "modules", version),
	}
}

// kernelPackage asks apt which image package linux-image-amd64 depends on.
func kernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w: %s", err, tail(out, 1000))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", fmt.Errorf("linux-image-amd64 depends on no linux-image-* package:\n%s", out)
}
