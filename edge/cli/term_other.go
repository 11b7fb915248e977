//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import "errors"

// isTerminalFd is false where herd does not know how to ask: prompts then
// need their flags (--password-stdin, --yes).
func isTerminalFd(fd uintptr) bool { return false }

func echoOff(fd uintptr) (func(), error) {
	return nil, errors.New("cannot turn off echo on this system; use --password-stdin")
}
