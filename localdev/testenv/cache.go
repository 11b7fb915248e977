package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// cached returns localdev/.cache/<kind>/<name>, building it first when
// ready (a path inside it) is missing. build fills a fresh directory that
// then takes the cache's place whole, so an interrupted build leaves no
// half a tree behind; one builder runs at a time across test binaries and
// the others wait and reuse what it made.
func cached(t testing.TB, kind, name, ready string, build func(dir string) error) string {
	t.Helper()
	env, err := envFile()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cache := filepath.Join(filepath.Dir(filepath.Dir(env)), ".cache", kind)
	dir := filepath.Join(cache, name)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, ready)); err == nil {
		return dir
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := build(tmp); err != nil {
		t.Fatalf("testenv: build %s %s: %v", kind, name, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, ready)); err != nil {
		t.Fatalf("testenv: %s %s was built without %s", kind, name, ready)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

// run runs a command and returns an error holding the end of its output.
func run(dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", name, args, err, tail(out, 2000))
	}
	return nil
}
