// Command init is the init of the image the e2e test boots. It reports
// on the serial port itself (herd's boot script gives the kernel no
// console= argument, so /dev/console is not the serial line) and powers
// the machine off.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
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
	fmt.Fprintf(tty, "\r\nHERD-E2E-UP hostname=%s pid=%d root=%s marker=%q initramfs-gone=%v\r\n",
		strings.TrimSpace(string(host)), os.Getpid(), root, strings.TrimSpace(string(marker)), os.IsNotExist(gone))
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
