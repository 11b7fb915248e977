// Command fakeinit is the init of the image the QEMU test boots: it
// proves the pivot worked (PID 1, in the synced root, /proc moved along)
// on the console and powers the machine off.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	host, _ := os.ReadFile("/etc/hostname")
	motd, _ := os.ReadFile("/etc/motd")
	_, procErr := os.Stat("/proc/self/status")
	_, oldErr := os.Stat("/init") // bootenv's own /init must be gone
	fmt.Printf("\nHERD-PIVOTED pid=%d host=%s motd=%q proc=%v initramfs-gone=%v\n",
		os.Getpid(), strings.TrimSpace(string(host)), strings.TrimSpace(string(motd)), procErr == nil, os.IsNotExist(oldErr))
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
