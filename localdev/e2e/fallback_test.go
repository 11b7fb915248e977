package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// fallbackBoot boots the provisioned BIOS disk with no network at all, as
// a node does when the appliance is down: SeaBIOS runs the GPT boot code
// bootenv wrote, which starts SYSLINUX on the legacy_boot partition, which
// loads the image's kernel with the fallback's command line. The test
// waits for the kernel to print that command line (the e2e image has no
// initrd, so its kernel cannot go on to mount a root on LVM; the loader's
// work ends at the kernel) and returns it.
//
// ovmf, when set, is OVMF's code file and the machine's variables store
// (holding the boot entry bootenv made): the UEFI firmware then boots
// herd's entry once the network entries fail.
func fallbackBoot(t *testing.T, ctx context.Context, disk, serial string, ovmf ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-nic", "none",
		"-drive", "file=" + disk + ",format=raw,if=none,cache=unsafe,id=d0", "-device", "virtio-blk-pci,drive=d0"}
	if len(ovmf) == 2 {
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+ovmf[0],
			"-drive", "if=pflash,format=raw,file="+ovmf[1])
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var log bytes.Buffer
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	defer func() {
		cancel()
		cmd.Wait()
		if err := os.WriteFile(serial, log.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		log.WriteString(line + "\n")
		if _, cmdline, ok := strings.Cut(line, "Command line: "); ok {
			return cmdline, time.Since(start)
		}
	}
	t.Errorf("the disk did not boot a kernel on its own (serial line in %s)", serial)
	return "", time.Since(start)
}
