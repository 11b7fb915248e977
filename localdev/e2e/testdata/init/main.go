// Command init is the init of the image the e2e test boots. It reports
// on the serial port itself (herd's boot script gives the kernel no
// console= argument, so /dev/console is not the serial line) and powers
// the machine off, unless the machine has a BMC: then it stays up, as a
// server does, until the BMC switches it off.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	tty, err := os.OpenFile("/dev/ttyS0", os.O_WRONLY, 0)
	if err != nil {
		// A root without devtmpfs: make the node (major 4, minor 64).
		_ = syscall.Mknod("/dev/ttyS0", syscall.S_IFCHR|0o600, 4<<8|64)
		if tty, err = os.OpenFile("/dev/ttyS0", os.O_WRONLY, 0); err != nil {
			tty = os.Stdout
		}
	}
	host, _ := os.ReadFile("/etc/hostname")
	marker, _ := os.ReadFile("/etc/herd-e2e")
	mounts, _ := os.ReadFile("/proc/mounts")
	root := "?"
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "/" {
			root = f[0] + ":" + f[2]
		}
	}
	_, gone := os.Stat("/init") // bootenv's /init must be gone
	bmc := hasBMC()
	fmt.Fprintf(tty, "\r\nHERD-E2E-UP hostname=%s pid=%d root=%s marker=%q initramfs-gone=%v bmc=%v\r\n",
		strings.TrimSpace(string(host)), os.Getpid(), root, strings.TrimSpace(string(marker)), os.IsNotExist(gone), bmc)
	syscall.Sync()
	if bmc {
		for {
			time.Sleep(time.Hour)
		}
	}
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

// hasBMC reports whether the firmware describes an IPMI device (SMBIOS
// type 38), as QEMU does for a machine with an isa-ipmi-bt device.
func hasBMC() bool {
	if _, err := os.Stat("/sys/firmware/dmi"); err != nil {
		_ = syscall.Mount("sysfs", "/sys", "sysfs", 0, "")
	}
	_, err := os.Stat("/sys/firmware/dmi/entries/38-0")
	return err == nil
}
