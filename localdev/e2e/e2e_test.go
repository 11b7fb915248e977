package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/edge/daemon"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/push"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/ui"
	"github.com/herd-hpc/herd/localdev/testenv"
)

const (
	imageName = "e2e"
	branch    = "live"
	nodeName  = "n001"
	layout    = "root-swap"
	vmMAC     = "52:54:00:e2:e0:01"
	secret    = "e2e-edge-secret"
)

// boot is what one power-on of the machine did.
type boot struct {
	session     model.BootSessionDetail
	marker      string
	toPivot     time.Duration // power-on to the image's init on the console
	fetched     uint64        // image bytes fetched
	blobs       int
	batched     int // blobs that came in batches (POST …/blobs through the edge)
	imageMsg    string
	disksMsg    string
	sessionTime time.Duration // session start to its done event
	console     []byte        // the session's console, from the API
	work        time.Duration // the disks and image steps
}

// TestMachineProvisionsItselfThroughHerd is issue 7: a bare QEMU machine
// boots through herd end to end, three times; then herd powers it off and
// on through its BMC (ipmi_sim driving qemu), twice booting it again; a
// UEFI machine boots; and headless Chromium saves the node's page.
func TestMachineProvisionsItselfThroughHerd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine three times (minutes)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and a tap device")
	}
	for _, tool := range []string{"qemu-system-x86_64", "ip", "depmod", "sgdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps)", tool)
		}
	}
	rom := firstFile("/usr/lib/ipxe/qemu/pxe-e1000.rom")
	if rom == "" {
		t.Skip("no iPXE ROM for qemu's e1000 NIC (Debian package ipxe-qemu)")
	}
	for _, tool := range []string{"ipmi_sim", "ipmitool", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps): the machine's BMC needs it", tool)
		}
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	k := testenv.DebianKernel(t)

	// What stays after the test, passing or not: the node page's
	// screenshot, the figures, the logs.
	artifacts := artifactDir(t, began)
	t.Logf("e2e artifacts: %s", artifacts)
	// The work folder (disks, image, sockets): kept when the test fails.
	out, err := os.MkdirTemp("", "herd-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keepLogs(out, artifacts)
		if t.Failed() {
			t.Logf("e2e work folder kept in %s (serial-*.log: the VM's serial console; edge.log: the edge); logs and figures in %s", out, artifacts)
			return
		}
		os.RemoveAll(out)
		t.Logf("e2e artifacts: %s", artifacts)
	})

	// herd's functions on the real Redis and MinIO, on this host's loopback;
	// the edge reaches them from its own goroutines, which stay in this
	// host's network namespace.
	cfg := server.Defaults()
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(t), testenv.Prefix(t)
	s3 := testenv.S3(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket
	cfg.EdgeSecret = secret
	fns, err := server.Open(ctx, cfg, ui.NewHandler, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fns.Close() })
	fsrv := httptest.NewServer(fns.Handler())
	t.Cleanup(fsrv.Close)
	user, pw, _, err := fns.Auth.EnsureFirstAdmin(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	api := client.New(fsrv.URL, "", nil)
	lr, err := api.Login(ctx, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	api = api.WithToken(lr.Token)

	// The image, bootenv, a layout, a group and the node, as an admin
	// would set them up.
	imageDir := filepath.Join(out, "image")
	imageTree(t, k, imageDir)
	first := pushImage(t, ctx, api, imageDir, manifest.Digest{}, "the e2e image")
	bootenvPath := filepath.Join(out, "bootenv")
	goBuild(t, bootenvPath, "github.com/herd-hpc/herd/bootenv/cmd/bootenv")
	publishBootenv(t, ctx, api, bootenvPath)
	if _, err := api.CreateLayout(ctx, model.Layout{Name: layout, Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0"}},
		Simple: &model.SimpleLayout{Firmware: model.FirmwareBIOS, Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
			{Type: model.FSSwap, Size: model.PartSize{Size: 128 << 20}},
		}}}); err != nil {
		t.Fatalf("create layout: %v", err)
	}
	stateful := false
	// The kernel arguments go to the provisioner's boot and to the disk's
	// fallback entry: the kernel then prints on the serial line.
	if _, err := api.CreateGroup(ctx, model.Group{Name: "e2e", Settings: model.Settings{Image: imageName, Branch: branch,
		DiskLayout: layout, Stateless: &stateful, KernelArgs: "console=ttyS0,115200"}}); err != nil {
		t.Fatalf("create group: %v", err)
	}
	for _, p := range []string{"hostname", "hosts", "interfaces"} {
		if _, err := api.PutPlugin(ctx, model.PluginSettings{Name: p, Enabled: true}, 0); err != nil {
			t.Fatalf("enable plugin %s: %v", p, err)
		}
	}
	if _, err := api.CreateNode(ctx, model.Node{Name: nodeName, Group: "e2e",
		Interfaces: []model.Interface{{Name: "eth0", Address: nodeAddr + edgePrefix, Boot: true}}}); err != nil {
		t.Fatalf("create node: %v", err)
	}

	// The segment and the edge on it.
	ns := segment(t)
	routerAdverts(ctx, t, ns)
	edgeLog := startEdge(t, ctx, ns, fsrv.URL, out)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nlook at: %s (serial-*.log: the VM's serial line; console-<session>.log: bootenv's console from the API), the edge's log %s; "+
			"the node's page %s/nodes/%s (while the test runs; log in as %s)",
			append(args, out, edgeLog, fsrv.URL, nodeName, user)...)
	}

	disk := filepath.Join(out, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 2<<30); err != nil {
		t.Fatal(err)
	}

	// Boot 1: unknown, discovered, assigned, provisioned.
	m := startVM(t, ctx, ns, disk, vmMAC, rom, filepath.Join(out, "serial-1.log"))
	var found []model.Discovered
	for deadline := time.Now().Add(3 * time.Minute); len(found) == 0; time.Sleep(time.Second) {
		if time.Now().After(deadline) || m.ended() {
			fail("the VM never showed up as discovered")
		}
		all, err := api.AllDiscovered(ctx)
		if err != nil {
			fail("discovered: %v", err)
		}
		for _, d := range all {
			if string(d.MAC) == vmMAC {
				found = append(found, d)
			}
		}
	}
	t.Logf("discovered %s after %s (from %s, %s)", vmMAC, time.Since(m.started).Round(time.Second), found[0].ClientAddr, found[0].VendorClass)
	if _, err := api.AssignDiscovered(ctx, vmMAC, model.AssignRequest{Node: nodeName}); err != nil {
		fail("assign: %v", err)
	}
	b1 := awaitBoot(t, ctx, api, m, "", fail)
	t.Logf("boot 1: %s", b1)
	if !strings.Contains(b1.marker, "hostname="+nodeName) || !strings.Contains(b1.marker, `marker="version 1"`) ||
		!strings.Contains(b1.marker, "pid=1") || !strings.Contains(b1.marker, ":ext4") || !strings.Contains(b1.marker, "initramfs-gone=true") {
		t.Errorf("boot 1: the image's init said %q", b1.marker)
	}
	checkTimeline(t, b1)
	if b1.batched == 0 {
		t.Errorf("boot 1 fetched no blob in a batch: %s", b1.imageMsg)
	}

	// Boot 2: same disk, nothing changed.
	m = startVM(t, ctx, ns, disk, vmMAC, rom, filepath.Join(out, "serial-2.log"))
	b2 := awaitBoot(t, ctx, api, m, b1.session.Session.ID, fail)
	t.Logf("boot 2: %s", b2)
	checkTimeline(t, b2)
	if !strings.Contains(b2.disksMsg, "nothing to do") {
		t.Errorf("boot 2: disks step %q, want nothing to do", b2.disksMsg)
	}
	// The first boot's plugins wrote files (hostname, hosts, fstab), which
	// changed their directories' times: the second sync sets those back
	// (metadata only) and fetches and writes nothing.
	if !strings.Contains(b2.imageMsg, "nothing to do") && !strings.Contains(b2.imageMsg, "not compared") &&
		!strings.Contains(b2.imageMsg, "remove 0, create 0, replace 0,") {
		t.Errorf("boot 2: image step %q, want nothing to do", b2.imageMsg)
	}
	if b2.fetched != 0 {
		t.Errorf("boot 2 fetched %d image bytes, want 0", b2.fetched)
	}
	// Wall times swing by seconds on a shared machine under emulation;
	// the provisioning work itself (disks and image) must shrink.
	if b2.fetched >= b1.fetched || b2.work >= b1.work {
		t.Errorf("boot 2 was no cheaper: %d bytes, disks+image %s; boot 1 %d bytes, %s", b2.fetched, b2.work, b1.fetched, b1.work)
	}

	// Boot 3: one file of the live branch changed.
	writeFile(t, filepath.Join(imageDir, "etc", "herd-e2e"), "version 2\n")
	pushImage(t, ctx, api, imageDir, first, "change one file")
	m = startVM(t, ctx, ns, disk, vmMAC, rom, filepath.Join(out, "serial-3.log"))
	b3 := awaitBoot(t, ctx, api, m, b2.session.Session.ID, fail)
	t.Logf("boot 3: %s", b3)
	checkTimeline(t, b3)
	if !strings.Contains(b3.marker, `marker="version 2"`) {
		t.Errorf("boot 3: the image's init said %q, want the changed file", b3.marker)
	}
	if b3.blobs != 1 || b3.fetched != uint64(len("version 2\n")) {
		t.Errorf("boot 3 fetched %d blobs, %d bytes; want exactly the changed file (1 blob, %d bytes): %s",
			b3.blobs, b3.fetched, len("version 2\n"), b3.imageMsg)
	}

	// Step 8: herd powers the machine off and on through its BMC.
	pf := powerThroughHerd(t, ctx, api, ns, disk, rom, out, b3.session.Session.ID, fail)

	// The appliance is down: the disk boots on its own, with no network.
	cmdline, took := fallbackBoot(t, ctx, disk, filepath.Join(out, "serial-fallback.log"))
	for _, want := range []string{"BOOT_IMAGE=/herd/vmlinuz", "root=/dev/system/root", "console=ttyS0,115200"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("the fallback booted a kernel with %q, which lacks %s", cmdline, want)
		}
	}
	t.Logf("fallback: with no network the disk's SYSLINUX started the image's kernel in %s: %s", took.Round(100*time.Millisecond), cmdline)

	// The disk, read from this side: the layout's partitions.
	checkDisk(t, disk)

	// Boot 4, when OVMF is installed: a second, UEFI machine.
	uefiMachine(t, ctx, api, ns, out, fail)

	// The audit stream: the assignment and the image change.
	if page, err := api.Audit(ctx, client.AuditQuery{Ref: nodeName, Method: "assign"}); err != nil || len(page.Items) != 1 {
		t.Errorf("audit of the assignment: %+v %v", page.Items, err)
	}
	page, err := api.Audit(ctx, client.AuditQuery{ListOptions: client.ListOptions{Limit: 500}})
	if err != nil {
		t.Errorf("audit: %v", err)
	}
	commits := 0
	for _, e := range page.Items {
		if e.Kind == "image" && strings.Contains(e.Method, "commit") {
			commits++
		}
	}
	if commits < 2 {
		t.Errorf("audit holds %d image commits, want 2: %+v", commits, page.Items)
	}
	checkPowerAudit(t, ctx, api, edgeLog)

	// The node's page, as an admin sees it after all this.
	png := filepath.Join(artifacts, "node-"+nodeName+".png")
	text, console, err := nodeScreenshot(ctx, fsrv.URL, user, pw, nodeName, png)
	switch {
	case err != nil:
		t.Errorf("screenshot of the node page: %v (chromium: make deps, or set HERD_CHROMIUM)", err)
	case !strings.Contains(text, nodeName) || !strings.Contains(text, "Boot sessions") || !strings.Contains(text, pf.boot5.session.Session.ID[:8]):
		t.Errorf("the node page does not show %s and its last boot session %s:\n%s", nodeName, pf.boot5.session.Session.ID, text)
	default:
		t.Logf("screenshot of the node page: %s", png)
	}
	for _, c := range console {
		t.Errorf("the node page's browser console: %s", c)
	}

	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	figures := fmt.Sprintf("figures: power-on to pivot %s (first, with the discovery round), %s (second), %s (third); "+
		"boot script to done %s, %s, %s; disks+image steps %s, %s, %s; image bytes fetched %d, %d, %d; "+
		"through the BMC: %s; whole e2e %s",
		r(b1.toPivot), r(b2.toPivot), r(b3.toPivot), r(b1.sessionTime), r(b2.sessionTime), r(b3.sessionTime),
		b1.work, b2.work, b3.work, b1.fetched, b2.fetched, b3.fetched, pf, time.Since(began).Round(time.Second))
	t.Log(figures)
	if err := os.WriteFile(filepath.Join(artifacts, "figures.txt"), []byte(figures+"\n"), 0o644); err != nil {
		t.Error(err)
	}
}

func (b boot) String() string {
	return fmt.Sprintf("session %s: power-on to pivot %s, session %s, disks+image %s; image: %s; disks: %s; console: %q",
		b.session.Session.ID, b.toPivot.Round(100*time.Millisecond), b.sessionTime.Round(100*time.Millisecond), b.work,
		b.imageMsg, strings.TrimSpace(b.disksMsg), b.marker)
}

// pushImage stores dir as the next version of the live branch, as `herd
// image push` does, and returns the new version.
func pushImage(t *testing.T, ctx context.Context, api *client.Client, dir string, base manifest.Digest, msg string) manifest.Digest {
	t.Helper()
	imp, err := api.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := push.Dir(ctx, imp, dir, push.Options{})
	if err != nil {
		t.Fatalf("push %s: %v", dir, err)
	}
	reply, err := imp.Commit(ctx, imageName, branch, base, r.Manifest, msg)
	if err != nil {
		t.Fatalf("commit %s: %v", dir, err)
	}
	t.Logf("image %s/%s: %s (%d files, %d bytes, %d blobs uploaded); kernel %q %s", imageName, branch, msg,
		r.Files, r.BytesScanned, r.BlobsUploaded, reply.Kernel, reply.Note)
	if reply.Kernel == "" {
		t.Fatalf("the commit published no kernel: %+v", reply)
	}
	return r.Manifest
}

// publishBootenv builds bootenv's initramfs as `herd bootenv build` does
// and publishes it.
func publishBootenv(t *testing.T, ctx context.Context, api *client.Client, prog string) {
	t.Helper()
	init, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := initramfs.Build(ctx, initramfs.Bootenv(init, nil, ""), &buf); err != nil {
		t.Fatalf("build bootenv's initramfs: %v", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	size := buf.Len()
	if _, err := api.PublishBootenv(ctx, &buf, int64(size), hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("publish bootenv: %v", err)
	}
	t.Logf("bootenv published: %d bytes", size)
}

// startEdge runs the edge with its sockets (DHCP on the bridge, TFTP,
// HTTP) in namespace ns, forwarding to functions; its log goes to
// out/edge.log.
func startEdge(t *testing.T, ctx context.Context, ns, functions, out string) string {
	t.Helper()
	fu, err := url.Parse(functions)
	if err != nil {
		t.Fatal(err)
	}
	tftpRoot := ensureDir(t, out, "tftp")
	for name, p := range map[string]string{"undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe", "snponly.efi": "/usr/lib/ipxe/snponly.efi"} {
		if firstFile(p) != "" {
			copyFile(t, p, filepath.Join(tftpRoot, name))
		}
	}
	logPath := filepath.Join(out, "edge.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	ecfg := config.Edge{
		Listen: edgeAddr + ":8080", FunctionsURL: fu, Secret: config.Secret(secret),
		TFTPListen: edgeAddr + ":69", TFTPRoot: tftpRoot,
		DHCPInterfaces: []string{bridge}, DHCPSubnet: netip.MustParsePrefix("10.77.0.0/24"),
		DHCPDiscoveryPool: config.AddrRange{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.150")},
		DHCPServerAddress: netip.MustParseAddr(edgeAddr),
		BootURL:           &url.URL{Scheme: "http", Host: edgeAddr + ":8080"},
		// The power worker claims herd's power jobs and drives BMCs.
		PowerTimeout: 20 * time.Second,
	}
	e, err := daemon.New(ecfg, slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ectx, stop := context.WithCancel(ctx)
	if err := testenv.InNetns(ns, func() error { _, err := e.Listen(ectx); return err }); err != nil {
		stop()
		t.Fatalf("edge listen in %s: %v", ns, err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ectx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the edge did not stop")
		}
	})
	return logPath
}

// awaitBoot waits for the machine's next session after prev to pivot,
// and for qemu to end (the image's init powers off) unless the machine
// stays up for its BMC.
func awaitBoot(t *testing.T, ctx context.Context, api *client.Client, m *vm, prev string, fail func(string, ...any)) boot {
	t.Helper()
	var b boot
	var err error
	b.marker, b.toPivot, err = m.waitLine(ctx, "HERD-E2E-UP")
	sid := latestSession(ctx, api, prev)
	if err != nil {
		fail("boot: %v; session %s:\n%s", err, sid, sessionReport(ctx, api, sid, filepath.Dir(m.serial)))
	}
	if !m.stays {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := m.wait(wctx); err != nil {
			t.Logf("qemu: %v", err)
		}
	}
	if sid == "" {
		fail("no new boot session of %s after %q", nodeName, prev)
	}
	// The done event may trail the pivot by a moment.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if b.session, err = api.BootSession(ctx, sid); err != nil {
			fail("session %s: %v", sid, err)
		}
		if b.session.Session.State == model.BootDone || time.Now().After(deadline) {
			break
		}
	}
	b.console = sessionConsole(ctx, api, sid)
	_ = os.WriteFile(filepath.Join(filepath.Dir(m.serial), "console-"+sid+".log"), b.console, 0o644)
	for _, e := range b.session.Events {
		switch e.Step {
		case "image":
			b.work += time.Duration(e.DurationMS) * time.Millisecond
			b.imageMsg = e.Message
			b.fetched, _ = strconv.ParseUint(e.Extras["fetched_bytes"], 10, 64)
			b.blobs, _ = strconv.Atoi(e.Extras["fetched_blobs"])
			b.batched, _ = strconv.Atoi(e.Extras["from_batches"])
			if e.Extras["failed_batches"] != "0" && e.Extras["failed_batches"] != "" {
				t.Errorf("%s batches of blobs failed through the edge: %s", e.Extras["failed_batches"], e.Message)
			}
		case "disks":
			b.work += time.Duration(e.DurationMS) * time.Millisecond
			b.disksMsg = e.Message
		case "done":
			b.sessionTime = e.Time.Sub(b.session.Session.Started)
		}
	}
	return b
}

// sessionReport saves the session's console (from the API) beside the
// serial log and returns its timeline and the console's last lines.
func sessionReport(ctx context.Context, api *client.Client, sid, out string) string {
	if sid == "" {
		return "(no session)"
	}
	var b strings.Builder
	if d, err := api.BootSession(ctx, sid); err == nil {
		fmt.Fprintf(&b, "state %s (%s), step %s\n", d.Session.State, d.Session.Reason, d.Session.Step)
		for _, e := range d.Events {
			fmt.Fprintf(&b, "  %s %s %dms %s\n", e.Step, e.State, e.DurationMS, e.Message)
		}
	}
	console := sessionConsole(ctx, api, sid)
	p := filepath.Join(out, "console-"+sid+".log")
	_ = os.WriteFile(p, console, 0o644)
	lines := strings.Split(strings.TrimSpace(string(console)), "\n")
	fmt.Fprintf(&b, "console (%s), last lines:\n  %s", p, strings.Join(lines[max(0, len(lines)-25):], "\n  "))
	return b.String()
}

// latestSession returns the newest session of the node other than prev.
func latestSession(ctx context.Context, api *client.Client, prev string) string {
	ss, err := api.BootSessions(ctx, nodeName, 1)
	if err != nil || len(ss) == 0 || ss[0].ID == prev {
		return ""
	}
	return ss[0].ID
}

// checkTimeline wants every step done, each with its duration, and the
// session's console retrievable.
func checkTimeline(t *testing.T, b boot) {
	t.Helper()
	d := b.session
	if d.Session.State != model.BootDone {
		t.Errorf("session %s: state %s (%s), want done", d.Session.ID, d.Session.State, d.Session.Reason)
	}
	var steps []string
	ok := map[string]bool{}
	for _, e := range d.Events {
		steps = append(steps, fmt.Sprintf("%s:%s(%dms)@%.1fs", e.Step, e.State, e.DurationMS, e.Time.Sub(d.Session.Started).Seconds()))
		if e.State == model.EventOK {
			ok[e.Step] = true
			if e.DurationMS <= 0 && slices.Contains([]string{"network", "disks", "image", "done"}, e.Step) {
				t.Errorf("session %s: step %s has no duration", d.Session.ID, e.Step)
			}
		}
	}
	t.Logf("session %s timeline: %s", d.Session.ID, strings.Join(steps, " "))
	for _, want := range []string{"network", "plan", "disks", "image", "plugins", "bootloader", "done"} {
		if !ok[want] {
			t.Errorf("session %s: the timeline lacks %s:ok", d.Session.ID, want)
		}
	}
	switch {
	case len(b.console) == 0:
		t.Errorf("session %s: its console (API) is empty", d.Session.ID)
	case !bytes.Contains(b.console, []byte("step=image")):
		t.Errorf("session %s: its console (API) lacks bootenv's output:\n%s", d.Session.ID, b.console)
	}
}

// sessionConsole reads a session's whole console through the API; it is
// archived a moment after the session ends, so an empty one is read again.
func sessionConsole(ctx context.Context, api *client.Client, sid string) []byte {
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var console []byte
		for after := ""; ; {
			c, err := api.Console(ctx, sid, after, 0)
			if err != nil {
				return []byte("(console: " + err.Error() + ")")
			}
			if len(c.Data) == 0 {
				break
			}
			console = append(console, c.Data...)
			after = c.Next
		}
		if len(console) > 0 || time.Now().After(deadline) {
			return console
		}
	}
}

// checkDisk reads the disk's partition table: a BIOS boot partition and
// the LVM physical volume holding root and swap.
func checkDisk(t *testing.T, disk string) {
	t.Helper()
	out, err := exec.Command("sgdisk", "-p", disk).CombinedOutput()
	if err != nil {
		t.Errorf("sgdisk -p: %v: %s", err, out)
		return
	}
	t.Logf("the disk:\n%s", out)
	// The simple layout puts root and swap in an LVM volume group, and on
	// BIOS the fallback loader on an XBOOTLDR partition flagged for the
	// GPT boot code, which is in the first 440 bytes.
	for _, code := range []string{"EA00", "8E00"} {
		if !strings.Contains(string(out), code) {
			t.Errorf("the disk has no %s partition", code)
		}
	}
	if out, err := exec.Command("sgdisk", "-A", "1:show", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "legacy BIOS bootable") {
		t.Errorf("partition 1 is not flagged legacy BIOS bootable: %v %s", err, out)
	}
	code, err := os.ReadFile("/usr/lib/syslinux/mbr/gptmbr.bin")
	if err != nil {
		t.Errorf("SYSLINUX's boot code: %v", err)
		return
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	head := make([]byte, 440)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, code[:min(440, len(code))]) {
		t.Errorf("the disk's first 440 bytes are not SYSLINUX's GPT boot code (%v)", err)
	}
}

// uefiMachine boots a second machine under UEFI firmware (OVMF): the
// firmware's PXE fetches snponly.efi over TFTP, iPXE the script; the
// layout has an EFI system partition and bootenv writes the fallback
// boot entry. Skipped (logged) without OVMF.
func uefiMachine(t *testing.T, ctx context.Context, api *client.Client, ns, out string, fail func(string, ...any)) {
	t.Helper()
	code, vars := firstFile("/usr/share/OVMF/OVMF_CODE_4M.fd"), firstFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
	rom := firstFile("/usr/lib/ipxe/qemu/efi-e1000.rom")
	if code == "" || vars == "" || rom == "" {
		t.Logf("UEFI machine skipped: no OVMF (Debian package ovmf) or efi-e1000.rom")
		return
	}
	const mac, node = "52:54:00:e2:e0:02", "n002"
	varsCopy := filepath.Join(out, "ovmf-vars.fd")
	copyFile(t, vars, varsCopy)
	if _, err := api.CreateLayout(ctx, model.Layout{Name: "uefi-root-swap", Mode: model.LayoutSimple,
		Disks: []model.LayoutDisk{{Name: "disk0"}},
		Simple: &model.SimpleLayout{Firmware: model.FirmwareUEFI, Filesystems: []model.SimpleFS{
			{Mount: "/", Type: model.FSExt4, Size: model.PartSize{Rest: true}},
			{Type: model.FSSwap, Size: model.PartSize{Size: 128 << 20}},
		}}}); err != nil {
		t.Fatalf("create layout: %v", err)
	}
	stateful := false
	if _, err := api.CreateGroup(ctx, model.Group{Name: "e2e-uefi", Settings: model.Settings{Image: imageName, Branch: branch,
		DiskLayout: "uefi-root-swap", Stateless: &stateful, KernelArgs: "console=ttyS0,115200"}}); err != nil {
		t.Fatalf("create group: %v", err)
	}
	if _, err := api.CreateNode(ctx, model.Node{Name: node, Group: "e2e-uefi",
		Interfaces: []model.Interface{{Name: "eth0", MAC: mac, Address: "10.77.0.11" + edgePrefix, Boot: true}}}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	disk := filepath.Join(out, "disk-uefi.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 2<<30); err != nil {
		t.Fatal(err)
	}
	m := startVM(t, ctx, ns, disk, mac, rom, filepath.Join(out, "serial-uefi.log"), code, varsCopy)
	marker, took, err := m.waitLine(ctx, "HERD-E2E-UP")
	ss, serr := api.BootSessions(ctx, node, 1)
	sid := ""
	if serr == nil && len(ss) > 0 {
		sid = ss[0].ID
	}
	if err != nil {
		fail("UEFI boot: %v; session %s:\n%s", err, sid, sessionReport(ctx, api, sid, out))
	}
	if !strings.Contains(marker, "hostname="+node) || !strings.Contains(marker, "pid=1") {
		t.Errorf("UEFI boot: the image's init said %q", marker)
	}
	d, err := api.BootSession(ctx, sid)
	if err != nil {
		fail("session %s: %v", sid, err)
	}
	var b boot
	b.session = d
	b.console = sessionConsole(ctx, api, sid)
	checkTimeline(t, b)
	for _, e := range d.Events {
		if e.Step == "bootloader" && e.State == model.EventOK {
			t.Logf("UEFI bootloader step: %s", e.Message)
		}
	}
	if d.Session.Platform != "efi" {
		t.Errorf("UEFI session platform %q, want efi", d.Session.Platform)
	}
	t.Logf("UEFI machine: power-on to pivot %s; %s", took.Round(100*time.Millisecond), marker)

	// Its fallback: with no network the firmware boots herd's entry.
	if err := m.wait(ctx); err != nil {
		fail("the UEFI machine did not power off after its boot: %v", err)
	}
	cmdline, took := fallbackBoot(t, ctx, disk, filepath.Join(out, "serial-uefi-fallback.log"), code, varsCopy)
	for _, want := range []string{"root=/dev/system/root", "console=ttyS0,115200"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("the UEFI fallback booted a kernel with %q, which lacks %s", cmdline, want)
		}
	}
	t.Logf("UEFI fallback: with no network the firmware's herd entry started the image's kernel in %s: %s", took.Round(100*time.Millisecond), cmdline)
}
