package testenv

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
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

// ChromiumOptions are the flags herd's tests start the browser with:
// headless, no sandbox (tests run as root), no background traffic, a
// 1440×900 window, profile as its user data directory.
func ChromiumOptions(exe, profile string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1440, 900),
	}
}
