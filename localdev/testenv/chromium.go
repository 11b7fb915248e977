package testenv

import (
	"fmt"
	"os"
	"os/exec"
)

// Chromium finds the browser the UI tests drive: $HERD_CHROMIUM, else
// chromium on the PATH. The error says how to get one.
func Chromium() (string, error) {
	const missing = "run `make deps` (on Debian: apt-get install -y chromium), or set HERD_CHROMIUM to a Chromium binary"
	if p := os.Getenv("HERD_CHROMIUM"); p != "" {
		exe, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("HERD_CHROMIUM=%s cannot be run (%v): %s", p, err, missing)
		}
		return exe, nil
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium is not installed: %s", missing)
}
