package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/bootenv/qemu"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

const edgeSecret = "edge-secret-for-tests"

func goBuild(t *testing.T, out, pkg string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lineLog passes console lines to the test log.
type lineLog struct{ t *testing.T }

func (l lineLog) Write(b []byte) (int, error) {
	l.t.Logf("guest| %s", strings.TrimRight(string(b), "\r\n"))
	return len(b), nil
}

// TestBootenvInQEMU boots Debian's kernel with bootenv as /init against a
// real boot function (Redis, MinIO) on this machine, reached through
// qemu's user network (the guest sees the host as 10.0.2.2 and gets its
// address from qemu's DHCP): a stateless node brings up its NIC with
// DHCP, fetches its plan, syncs the image into a RAM root, runs the
// plugins and pivots into the image's init, which reports on the console.
func TestBootenvInQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (make deps installs qemu-system-x86)")
	}
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	k := testenv.DebianKernel(t)
	ctx := context.Background()
	dir := t.TempDir()

	// The boot function, listening on all addresses of loopback so the
	// guest reaches it as 10.0.2.2.
	st := storetest.Open(t)
	obj := testenv.Objects(t)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: edgeSecret, Log: log}
	srv := httptest.NewServer(boot.New(st, au, boot.ObjectArtifacts{Objects: obj, Seen: store.BootArtifacts{S: st}}, boot.Config{}, log))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// The image: the fake init and a little content.
	src := filepath.Join(dir, "image")
	for p, c := range map[string][]byte{
		"sbin/init":        goBuild(t, filepath.Join(dir, "fakeinit"), "./testdata/fakeinit"),
		"etc/motd":         []byte("welcome to tiny\n"),
		"etc/hosts":        []byte("127.0.0.1\tlocalhost\n"),
		"usr/share/data/x": bytes.Repeat([]byte("herd"), 1<<18),
	} {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rdb, prefix := st.Redis()
	if _, err := imgstore.New(obj, rdb, prefix).ImportDir(ctx, "tiny", boot.LiveBranch, src); err != nil {
		t.Fatal(err)
	}
	for key, data := range map[string]string{
		boot.ImageKey("tiny", boot.LiveBranch, "kernel"): "kernel", boot.ImageKey("tiny", boot.LiveBranch, boot.ModulesFile): "modules",
		boot.BootenvKey: "bootenv",
	} {
		if err := obj.Put(ctx, key, strings.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	actor := store.Actor{User: "test", Host: "test"}
	yes := true
	if _, err := st.CreateGroup(ctx, actor, model.Group{Name: "compute", Settings: model.Settings{Image: "tiny", Stateless: &yes}}); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56"
	if _, err := st.CreateNode(ctx, actor, model.Node{Name: "n001", Group: "compute",
		Interfaces: []model.Interface{{Name: "eth0", MAC: mac, Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutPlugin(ctx, actor, model.PluginSettings{Name: "hostname", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}

	// A session, as iPXE would open it.
	req, _ := http.NewRequest("GET", srv.URL+"/boot/ipxe?mac="+mac+"&arch=x86_64&platform=pcbios", nil)
	req.Header.Set(auth.HeaderEdgeSecret, edgeSecret)
	req.Header.Set("X-Forwarded-Host", "10.0.2.2:"+port)
	req.Header.Set("X-Forwarded-Proto", "http")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmdline := regexp.MustCompile(`herd\.session=\S+ herd\.server=\S+ herd\.token=\S+`).Find(script)
	if cmdline == nil {
		t.Fatalf("boot script:\n%s", script)
	}
	id := regexp.MustCompile(`herd\.session=(\S+)`).FindSubmatch(cmdline)[1]
	token := regexp.MustCompile(`herd\.token=(\S+)`).FindSubmatch(cmdline)[1]

	// The initramfs: bootenv as /init, modprobe, the NIC's modules. The
	// boot script would append the image's modules archive instead.
	var buf bytes.Buffer
	spec := initramfs.Spec{
		Init:       goBuild(t, filepath.Join(dir, "bootenv"), "."),
		Tools:      []string{"/sbin/modprobe", "kmod"},
		ModulesDir: k.Modules,
		Modules:    []string{"virtio_pci", "virtio_net", "af_packet", "virtio_rng"},
	}
	if err := initramfs.Build(ctx, spec, &buf); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(initrd, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := qemu.Config{Kernel: k.Vmlinuz, Initrd: initrd, MemoryMB: 512, Append: "quiet loglevel=3 " + string(cmdline)}
	// The guest needs entropy before it can make a DHCP transaction id
	// or a TLS key: a TCG CPU with RDRAND (-cpu max) and a virtio RNG.
	args := append(cfg.Args(), "-cpu", "max", "-device", "virtio-rng-pci",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac="+mac)
	qctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	var console bytes.Buffer
	q := exec.CommandContext(qctx, "qemu-system-x86_64", args...)
	q.Stdout = io.MultiWriter(&console, lineLog{t})
	q.Stderr = q.Stdout
	start := time.Now()
	if err := q.Run(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	t.Logf("guest ran %s", time.Since(start).Round(time.Second))

	if !regexp.MustCompile(`HERD-PIVOTED pid=1 host=n001 motd="welcome to tiny" proc=true initramfs-gone=true`).Match(console.Bytes()) {
		t.Errorf("the image's init did not report a clean pivot")
	}
	d, err := client.NewBoot(srv.URL, string(token), nil).Session(ctx, string(id))
	if err != nil {
		t.Fatal(err)
	}
	if d.Session.State != model.BootDone {
		t.Errorf("session state %s (%s), want done", d.Session.State, d.Session.Reason)
	}
	var steps []string
	for _, e := range d.Events {
		steps = append(steps, e.Step+":"+string(e.State))
	}
	t.Logf("timeline: %s", strings.Join(steps, " "))
	for _, want := range []string{"network:ok", "plan:ok", "disks:ok", "image:ok", "plugins:ok", "bootloader:ok", "done:ok"} {
		if !strings.Contains(" "+strings.Join(steps, " ")+" ", " "+want+" ") {
			t.Errorf("timeline lacks %s", want)
		}
	}
	data, _, err := st.Console(ctx, string(id))
	if err != nil || !bytes.Contains(data, []byte("step=image")) {
		t.Errorf("the session's console lacks bootenv's output (%v):\n%s", err, data)
	}
}
