package ipmisim

import "syscall"

// sysProcAttr kills ipmi_sim when the test binary dies before its cleanup
// runs, so no simulator outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
