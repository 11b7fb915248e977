package cli

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/edge/pki"
	"github.com/herd-hpc/herd/functions/image/newc"
	"github.com/herd-hpc/herd/functions/model"
)

// TestBootenvBuild builds bootenv's initramfs twice (same bytes), with the
// cluster PKI's node files in it and no CA key, and publishes it.
func TestBootenvBuild(t *testing.T) {
	h := loggedIn(t)
	dir := t.TempDir()
	init := filepath.Join(dir, "bootenv")
	build := exec.Command("go", "build", "-o", init, "./testdata/staticinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static init: %v\n%s", err, out)
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := pki.Init(pkiDir, pki.InitOptions{EdgeHosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	var builds [2][]byte
	for i := range builds {
		out := filepath.Join(dir, "initrd"+string(rune('a'+i)))
		r := h.ok(h.run("bootenv", "build", "--init", init, "--pki", pkiDir, "-o", out))
		if !strings.Contains(r.stdout, "with the cluster PKI") {
			t.Errorf("build said %q", r.stdout)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		builds[i] = b
	}
	if !bytes.Equal(builds[0], builds[1]) {
		t.Fatal("two builds of the same inputs differ")
	}
	entries, err := newc.Read(gunzip(t, builds[0]), 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	for _, want := range []string{"init", initramfs.PKIDir + "/" + pki.NodeCert, initramfs.PKIDir + "/" + pki.NodeKey, initramfs.PKIDir + "/" + pki.CACert, "etc/lvm/lvm.conf"} {
		if !names[want] {
			t.Errorf("the initramfs lacks %s", want)
		}
	}
	if names[initramfs.PKIDir+"/"+pki.CAKey] {
		t.Error("the initramfs holds the CA's private key")
	}

	r := h.ok(h.run("bootenv", "build", "--init", init, "--pki", pkiDir))
	if !strings.Contains(r.stdout, "published bootenv") {
		t.Fatalf("publish said %q", r.stdout)
	}
	info := decode[model.BootenvInfo](t, h.ok(h.run("bootenv", "show", "--json")).stdout)
	if info.Size != int64(len(builds[0])) {
		t.Errorf("published %d bytes, built %d", info.Size, len(builds[0]))
	}
	h.failed(h.run("bootenv", "build", "--init", filepath.Join(dir, "nothing")), 1, "make build")
}

func gunzip(t *testing.T, b []byte) io.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
