//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"syscall"
	"unsafe"
)

func getTermios(fd uintptr) (syscall.Termios, error) {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, ioctlGetTermios, uintptr(unsafe.Pointer(&t))); e != 0 {
		return t, e
	}
	return t, nil
}

func setTermios(fd uintptr, t syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, ioctlSetTermios, uintptr(unsafe.Pointer(&t))); e != 0 {
		return e
	}
	return nil
}

// isTerminalFd reports whether fd is a terminal: it has terminal
// attributes (a character device such as /dev/null has none).
func isTerminalFd(fd uintptr) bool {
	_, err := getTermios(fd)
	return err == nil
}

// echoOff stops the terminal at fd from echoing what is typed and returns
// the function that restores it.
func echoOff(fd uintptr) (restore func(), err error) {
	old, err := getTermios(fd)
	if err != nil {
		return nil, err
	}
	quiet := old
	quiet.Lflag &^= syscall.ECHO
	quiet.Lflag |= syscall.ICANON | syscall.ISIG
	if err := setTermios(fd, quiet); err != nil {
		return nil, err
	}
	return func() { _ = setTermios(fd, old) }, nil
}
