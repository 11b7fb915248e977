package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// artifactDir is where the test's artifacts stay after it, passing or
// not: $HERD_E2E_ARTIFACTS, else localdev/.state/e2e/<UTC time>/ (go test
// runs in the package's folder, localdev/e2e; .state is ignored by git).
func artifactDir(t *testing.T, began time.Time) string {
	t.Helper()
	dir := os.Getenv("HERD_E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", ".state", "e2e", began.UTC().Format("20060102T150405Z"))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}

// keepLogs copies the run's logs (serial lines, bootenv consoles, the
// edge's) from out into the artifacts.
func keepLogs(out, artifacts string) {
	logs, _ := filepath.Glob(filepath.Join(out, "*.log"))
	for _, p := range logs {
		if b, err := os.ReadFile(p); err == nil {
			_ = os.WriteFile(filepath.Join(artifacts, filepath.Base(p)), b, 0o644)
		}
	}
}

// nodeScreenshot logs in to the pages at base as user, opens the node's
// page and saves it whole as a PNG at png. It returns the page's main
// text, and any error the page wrote to the browser's console.
func nodeScreenshot(ctx context.Context, base, user, password, node, png string) (string, []string, error) {
	exe, err := testenv.Chromium()
	if err != nil {
		return "", nil, err
	}
	profile, err := os.MkdirTemp("", "herd-e2e-chromium-")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(profile)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, testenv.ChromiumOptions(exe, profile)...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	tab, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	messages := chromedp.Console(tab)
	if err := chromedp.Do(tab); err != nil {
		return "", nil, err
	}
	var mu sync.Mutex
	var console []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				console = append(console, m.String())
				mu.Unlock()
			}
		}
	}()
	defer func() { cancelTab(); <-done }()

	page := base + "/nodes/" + node
	if err := chromedp.Do(tab,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("f-user")),
		chromedp.SendKeys(chromedp.ID("f-user"), user),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("nav[aria-label=main]")),
		chromedp.WaitVisible(chromedp.ID("boot-sessions")),
	); err != nil {
		return "", nil, err
	}
	text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		return "", nil, err
	}
	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		return "", nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return strings.TrimSpace(text), append([]string(nil), console...), nil
}
