package ui_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/herd-hpc/herd/functions/model"
)

// TestBrowserImages drives the image pages in headless Chromium, with
// htmx: log in, open Images from the menu, open an image, create a branch
// from the live one, make it live and see it marked live. The pages are
// saved as screenshots in the test's artifact folder.
func TestBrowserImages(t *testing.T) {
	e := newEnv(t)
	pw := e.user("admin", model.RoleAdmin)
	e.importImage("rocky 9", "main", bootable(nil))
	b := newBrowser(t, e)

	b.login("/nodes", "admin", pw)
	b.step("open Images",
		chromedp.Click(chromedp.CSS(`nav a[href="/images"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#images-table a[href="/images/rocky%209"]`)),
	)
	b.snap("images")
	b.step("open the image",
		chromedp.Click(chromedp.CSS(`#images-table a[href="/images/rocky%209"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#branches tr[data-branch="main"] .badge.live`)),
	)
	if got := b.text("#kernels"); !strings.Contains(got, kernelVer) {
		t.Errorf("the kernels card lacks %s:\n%s", kernelVer, got)
	}
	b.step("create a branch",
		chromedp.SendKeys(chromedp.ID("f-branch-name"), "testing"),
		chromedp.Click(chromedp.CSS(`#new-branch button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#branches tr[data-branch="testing"] button.make-live`)),
	)
	if got := b.text(".alert.ok"); got != "Created branch testing from main." {
		t.Errorf("after creating the branch the page says %q", got)
	}
	b.step("make it live",
		chromedp.Click(chromedp.CSS(`#branches tr[data-branch="testing"] button.make-live`)),
		chromedp.WaitVisible(chromedp.CSS(`#branches tr[data-branch="testing"] .badge.live`)),
	)
	if got := b.text(".alert.ok"); got != "Branch testing is live." {
		t.Errorf("after making it live the page says %q", got)
	}
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#branches .badge.live").length`)); err != nil || n != 1 {
		t.Errorf("%d branches marked live (%v), want 1", n, err)
	}
	if loc := b.location(); loc != "/images/rocky%209" {
		t.Errorf("after making it live the browser is at %s, want /images/rocky%%209", loc)
	}
	if live, err := e.images.Live(context.Background(), "rocky 9"); err != nil || live != "testing" {
		t.Errorf("the store's live branch is %q (%v), want testing", live, err)
	}
	b.snap("image")

	// A look at the history and diff pages, for the eye and for console
	// errors.
	e.importImage("rocky 9", "testing", bootable(map[string]string{"etc/motd": "hello"}))
	for _, p := range []struct{ name, path, sel string }{
		{"image-history", "/images/rocky%209/branches/testing/history", "#history"},
		{"image-diff", "/images/rocky%209/diff?from=main&to=testing", "#diff-summary"},
	} {
		b.step("open "+p.path, chromedp.Navigate(e.srv.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		b.snap(p.name)
	}
}
