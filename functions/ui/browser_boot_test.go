package ui_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herd-hpc/herd/functions/model"
)

// TestBrowserUnassignedAndBoots drives the new-node workflow in headless
// Chromium: the menu counts unassigned machines, one is assigned to an
// existing node and one becomes a new node from the list, a refusal shows
// next to its form, and a node's boot card follows a running boot live
// until it is done. Screenshots: discovered.png, discovered-error.png,
// discovered-create.png, node-boot.png and boot-session.png in the test's
// artifact folder.
func TestBrowserUnassignedAndBoots(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	pw := e.user("admin", model.RoleAdmin)
	seedCluster(t, e)
	ctx := context.Background()
	// A node racked and entered, waiting for its machine's MAC.
	if _, err := e.st.CreateNode(ctx, system(), model.Node{Name: "node025", Group: "compute",
		Interfaces: []model.Interface{{Name: "eth0", Address: "10.1.0.35/16", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	e.discover(model.Discovered{MAC: "52:54:00:aa:03:01", Arch: "x86_64", Platform: "efi", ClientAddr: "10.9.0.31",
		Manufacturer: "Dell Inc.", Product: "PowerEdge R650", Serial: "7XK2Q53", UUID: "4c4c4544-0058-4b10-8032-b7c04f513533"})
	e.discover(model.Discovered{MAC: "52:54:00:aa:03:02", Arch: "x86_64", Platform: "efi", ClientAddr: "10.9.0.32",
		Manufacturer: "Supermicro", Product: "SYS-421GE-TNRT", Serial: "S42170211", VendorClass: "PXEClient:Arch:00007:UNDI:003016"})
	e.discover(model.Discovered{MAC: "52:54:00:aa:03:03", Arch: "i386", Platform: "pcbios", ClientAddr: "10.9.0.33"})
	id := e.openSession("node001", "52:54:00:10:00:01")
	e.bootEvent(id, "plan", model.EventStart, "", 0)
	e.bootEvent(id, "plan", model.EventOK, "disks match the layout raid1-os", 840)
	e.bootEvent(id, "image", model.EventStart, "rocky-9.4@live", 0)
	b := newBrowser(t, e)

	b.login("/discovered", "admin", pw)
	b.step("see the list", chromedp.WaitVisible(chromedp.ID("m-525400aa0301")))
	if got := b.text("nav .nav-count"); got != "3" {
		t.Errorf("the menu counts %q unassigned machines, want 3", got)
	}
	if got := b.text("#m-525400aa0301"); !strings.Contains(got, "PowerEdge R650") || !strings.Contains(got, "serial 7XK2Q53") {
		t.Errorf("the row of 52:54:00:aa:03:01 shows %q", got)
	}
	b.snap("discovered")
	t.Logf("screenshot of the unassigned machines: %s", filepath.Join(t.ArtifactDir(), "discovered.png"))

	// Assign the first machine to node025, suggested as a node without MAC.
	if got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#dl-candidates option').value`)); err != nil || got != "node025" {
		t.Errorf("the node field suggests %q (%v), want node025", got, err)
	}
	b.step("assign 52:54:00:aa:03:01 to node025",
		chromedp.SendKeys(chromedp.ID("assign-525400aa0301"), "node025"),
		chromedp.Click(chromedp.CSS(`#m-525400aa0301 .assign-form button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if loc := b.location(); loc != "/nodes/node025" {
		t.Errorf("after assigning, the browser is at %s, want /nodes/node025", loc)
	}
	if got := b.text(".alert.ok"); !strings.HasPrefix(got, "Assigned 52:54:00:aa:03:01 to node025 as eth0.") {
		t.Errorf("after assigning, the page says %q", got)
	}
	if got := b.text("main"); !strings.Contains(got, "52:54:00:aa:03:01") || !strings.Contains(got, "10.1.0.35/16") {
		t.Errorf("node025's page lacks its new MAC:\n%s", got)
	}
	if got := b.text("nav .nav-count"); got != "2" {
		t.Errorf("after assigning the menu counts %q, want 2", got)
	}

	// A name that is no node is refused next to that machine's form.
	b.step("assign 52:54:00:aa:03:03 to a missing node",
		chromedp.Click(chromedp.CSS(`nav a[href="/discovered"]`)),
		chromedp.WaitVisible(chromedp.ID("assign-525400aa0303")),
		chromedp.SendKeys(chromedp.ID("assign-525400aa0303"), "node999"),
		chromedp.Click(chromedp.CSS(`#m-525400aa0303 .assign-form button`)),
		chromedp.WaitVisible(chromedp.ID("assign-525400aa0303-err")),
	)
	if got := b.text("#assign-525400aa0303-err"); !strings.Contains(got, `node "node999" does not exist`) {
		t.Errorf("the refusal says %q", got)
	}
	b.snap("discovered-error")

	// Create a node from the second machine, in group gpu.
	b.step("create node026 from 52:54:00:aa:03:02",
		chromedp.Click(chromedp.CSS(`#m-525400aa0302 details.create summary`)),
		chromedp.WaitVisible(chromedp.ID("create-525400aa0302")),
		chromedp.SendKeys(chromedp.ID("create-525400aa0302"), "node026"),
		chromedp.SetValue(chromedp.ID("group-525400aa0302"), "gpu"),
	)
	b.snap("discovered-create")
	b.step("submit the new node",
		chromedp.Click(chromedp.CSS(`#m-525400aa0302 .create-box button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")),
	)
	if loc := b.location(); loc != "/nodes/node026" {
		t.Errorf("after creating, the browser is at %s, want /nodes/node026", loc)
	}
	if got := b.text("main"); !strings.Contains(got, "52:54:00:aa:03:02") || !strings.Contains(got, "from group gpu") {
		t.Errorf("node026's page lacks its MAC or its group's settings:\n%s", got)
	}

	// node001 is booting: its card follows the boot as bootenv reports.
	b.step("open node001",
		chromedp.Navigate(e.srv.URL+"/nodes/node001"),
		chromedp.WaitVisible(chromedp.ID("boot-sessions")),
	)
	if got := b.text("#boot-sessions"); !strings.Contains(got, "running") || !strings.Contains(got, "disks match the layout raid1-os") {
		t.Errorf("the boot card shows:\n%s", got)
	}
	e.bootEvent(id, "image", model.EventOK, "synced 48213 files", 61_300)
	b.step("see the new step without reloading",
		chromedp.Poll[chromedp.Void](`document.getElementById("boot-sessions").innerText.includes("synced 48213 files")`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	b.snap("node-boot")
	e.bootEvent(id, "bootloader", model.EventOK, "grub installed on /dev/sda", 2100)
	e.bootEvent(id, model.StepDone, model.EventOK, "handing over to /sbin/init", 0)
	b.step("see the boot end, and the card stop refreshing",
		chromedp.Poll[chromedp.Void](`(() => { const c = document.getElementById("boot-sessions");
			return c.innerText.includes("done") && !c.hasAttribute("hx-trigger"); })()`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if loc := b.location(); loc != "/nodes/node001" {
		t.Errorf("the live card moved the browser to %s", loc)
	}

	// The session's own page.
	b.step("open the session",
		chromedp.Click(chromedp.CSS(`#boot-sessions a[href="/boot-sessions/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.ID("boot-timeline")),
	)
	if got := b.text("#boot-timeline"); !strings.Contains(got, "grub installed on /dev/sda") || !strings.Contains(got, "1m01s") {
		t.Errorf("the session page shows:\n%s", got)
	}
	b.snap("boot-session")
	t.Logf("browser test of unassigned machines and boots took %v", time.Since(start).Round(10*time.Millisecond))
}
