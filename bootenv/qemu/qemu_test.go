package qemu

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
)

func TestArgs(t *testing.T) {
	c := Config{Kernel: "/k", Initrd: "/i", Append: "quiet", Disks: []Disk{
		{Path: "/d0.raw", Serial: "S0"},
		{Path: "/d1.qcow2", Format: "qcow2", Serial: "N0", NVMe: true},
	}, Tap: "tap0", MAC: "52:54:00:00:00:01"}
	got := strings.Join(c.Args(), " ")
	for _, want := range []string{
		"-accel tcg -m 1024 -smp 1 -nographic",
		"-no-reboot -kernel /k -append console=ttyS0 panic=-1 quiet -initrd /i",
		"-drive file=/d0.raw,format=raw,if=none,cache=unsafe,id=d0 -device virtio-blk-pci,drive=d0,serial=S0",
		"-drive file=/d1.qcow2,format=qcow2,if=none,cache=unsafe,id=d1 -device nvme,drive=d1,serial=N0",
		"-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if slices.Contains((Config{Kernel: "/k"}).Args(), "-netdev") {
		t.Error("a NIC without a tap")
	}
}

func TestResults(t *testing.T) {
	console := []byte("SeaBIOS\r\nHERD-RESULT {\"a\":1}\r\n" +
		"[    2.1] random: crng init done\r\n" +
		"[    2.2] md: resync HERD-RESULT {\"b\":[1,2]}\r\n" +
		"HERD-RESULT {\"cut\": \r\n" +
		"HERD-RESULTX {\"c\":3}\n")
	got := Results(console, "HERD-RESULT")
	if len(got) != 2 || string(got[0]) != `{"a":1}` || string(got[1]) != `{"b":[1,2]}` {
		t.Errorf("results: %q", got)
	}
}

func TestStartWithoutQEMU(t *testing.T) {
	_, err := Start(context.Background(), Config{Binary: "no-such-qemu-herd", Kernel: "/k"})
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("missing binary: %v", err)
	}
}

func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (make deps installs qemu-system-x86)")
	}
}

// TestRunEndsWithTheGuest: a kernel without a root panics, panic=-1 makes
// it reboot and -no-reboot ends qemu; the console has the kernel's words.
func TestRunEndsWithTheGuest(t *testing.T) {
	needQEMU(t)
	k := testenv.DebianKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	console, err := Run(ctx, Config{Kernel: k.Vmlinuz, Append: "root=/dev/nonexistent", MemoryMB: 256})
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, console)
	}
	if !strings.Contains(string(console), "Kernel panic") {
		t.Errorf("no panic on the console:\n%s", console)
	}
}

// TestRunKillsOnTimeout: a guest that outlives ctx is killed and the
// error says so.
func TestRunKillsOnTimeout(t *testing.T) {
	needQEMU(t)
	k := testenv.DebianKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	m, err := Start(ctx, Config{Kernel: k.Vmlinuz, Append: "root=/dev/nonexistent panic=0", MemoryMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Wait()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait: %v", err)
	}
	if m.cmd.ProcessState == nil || m.cmd.ProcessState.Success() {
		t.Errorf("qemu was not killed: %v", m.cmd.ProcessState)
	}
	t.Logf("killed after %s", time.Since(start))
}
