package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
// localdev/.cache/kernel/<version>/, where it stays between runs. Nothing is
// installed on this machine; depmod makes modules.dep. Tests must not change the files. Without
// apt-get or dpkg-deb the test is skipped with the reason.
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
	env, err := envFile()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cache := filepath.Join(filepath.Dir(filepath.Dir(env)), ".cache", "kernel")
	dir := filepath.Join(cache, version)
	k := Kernel{
		Version: version,
		Vmlinuz: filepath.Join(dir, "boot", "vmlinuz-"+version),
		Modules: filepath.Join(dir, "lib", "modules", version),
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// One fetcher at a time across test binaries; the others wait and reuse.
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep")); err == nil {
		return k
	}
	tmp := dir + ".fetching"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Logf("testenv: fetching %s with apt-get download (once; cached in %s)", pkg, dir)
	dl := exec.Command("apt-get", "download", "-q", pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		// The package lists may be missing or stale on a fresh machine.
		if up, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			t.Fatalf("testenv: apt-get download %s: %v\n%s\napt-get update: %v\n%s", pkg, err, tail(out, 2000), uerr, tail(up, 2000))
		}
		if out, err := dl.CombinedOutput(); err != nil {
			t.Fatalf("testenv: apt-get download %s: %v\n%s", pkg, err, tail(out, 2000))
		}
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("testenv: apt-get download %s left %d packages in %s", pkg, len(debs), tmp)
	}
	root := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("testenv: dpkg-deb -x %s: %v\n%s", debs[0], err, tail(out, 2000))
	}
	// modules.dep is made by the package's postinst, which does not run here.
	if out, err := exec.Command("depmod", "-b", root, version).CombinedOutput(); err != nil {
		t.Fatalf("testenv: depmod for %s: %v\n%s", pkg, err, tail(out, 2000))
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(root, dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep")); err != nil {
		t.Fatalf("testenv: %s has no modules.dep: %v", pkg, err)
	}
	return k
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
