package ipmisim_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/ipmisim"
)

// ipmitool runs one ipmitool command against b over IPMI-over-LAN.
func ipmitool(t *testing.T, b *ipmisim.BMC, args ...string) string {
	t.Helper()
	base := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-U", b.Username, "-P", b.Password, "-C", "3"}
	out, err := exec.Command("ipmitool", append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestVM powers a "machine" (a process) through ipmi_sim's own VM
// support: off until power on runs the command, on while it lives, and
// power off ends the process.
func TestVM(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Skip("ipmitool not installed")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	cmd := "/bin/sh -c 'echo $$ > " + pidFile + "; exec sleep 60'"
	b := ipmisim.Start(t, 1, ipmisim.Options{VM: &ipmisim.VM{Command: cmd, PoweroffWait: time.Second, KillWait: time.Second}})[0]
	if b.VMAddress == "" {
		t.Fatal("no VM address")
	}
	if _, err := b.On(); !errors.Is(err, ipmisim.ErrVM) {
		t.Errorf("On of a VM's BMC: %v, want ErrVM", err)
	}
	if got := ipmitool(t, b, "power", "status"); got != "Chassis Power is off" {
		t.Fatalf("before power on: %q", got)
	}
	ipmitool(t, b, "power", "on")
	var pid int
	for deadline := time.Now().Add(5 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		raw, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
		if pid == 0 && time.Now().After(deadline) {
			t.Fatal("power on did not run the command")
		}
	}
	if got := ipmitool(t, b, "power", "status"); got != "Chassis Power is on" {
		t.Errorf("while the command runs: %q", got)
	}
	ipmitool(t, b, "power", "off")
	// Not connected as a VM: SIGTERM at once; ipmi_sim reaps it.
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after power off", pid)
		}
	}
	if got := ipmitool(t, b, "power", "status"); got != "Chassis Power is off" {
		t.Errorf("after power off: %q", got)
	}
}
