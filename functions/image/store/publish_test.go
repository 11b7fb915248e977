package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	name string
	mode uint32
	data string
}

// readNewc parses a newc cpio archive up to its trailer.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) int {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		must(t, err)
		return int(v)
	}
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		mode, size, namesize := field(1), field(6), field(11)
		if field(2) != 0 || field(3) != 0 || field(5) != 0 {
			t.Errorf("entry at %d: uid %d gid %d mtime %d", off, field(2), field(3), field(5))
		}
		name := string(b[off+110 : off+110+namesize-1])
		off += 110 + namesize
		off += pad4(off)
		data := string(b[off : off+size])
		off += size + pad4(size)
		if name == newcTrailer {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, uint32(mode), data})
	}
}

func TestPublish(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	const (
		img = "debian 12 / ü"
		v28 = "6.1.0-28-amd64"
		v9  = "6.1.0-9-amd64"
	)
	dir := t.TempDir()
	kernel28 := make([]byte, 5<<20) // big enough to be stored in chunks
	rand.NewChaCha8([32]byte{28}).Read(kernel28)
	files := map[string]string{
		"boot/vmlinuz-" + v28:    string(kernel28),
		"boot/initrd.img-" + v28: "debian initrd",
		"boot/vmlinuz-" + v9:     "old kernel",
		"usr/lib/modules/" + v28 + "/modules.dep": "kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz\n" +
			"kernel/drivers/block/virtio_blk.ko.xz:\nkernel/sound/snd.ko.xz:\n",
		"usr/lib/modules/" + v28 + "/modules.alias":                         "alias virtio:d00000002v* virtio_blk\n",
		"usr/lib/modules/" + v28 + "/kernel/drivers/block/virtio_blk.ko.xz": "virtio_blk module",
		"usr/lib/modules/" + v28 + "/kernel/fs/ext4/ext4.ko.xz":             "ext4 module",
		"usr/lib/modules/" + v28 + "/kernel/fs/mbcache.ko.xz":               "mbcache module",
		"usr/lib/modules/" + v28 + "/kernel/sound/snd.ko.xz":                "sound module",
		"usr/lib/modules/" + v9 + "/kernel/fs/xfs/xfs.ko.xz":                "old xfs module",
	}
	for p, c := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
	}
	must(t, os.Symlink("usr/lib", filepath.Join(dir, "lib")))
	must(t, os.Symlink("boot/vmlinuz-"+v28, filepath.Join(dir, "vmlinuz")))
	_, err := s.ImportDir(ctx, img, "live", dir)
	must(t, err)

	p, err := s.Publish(ctx, img, "live")
	must(t, err)
	if p.Default != v28 || len(p.Kernels) != 2 || p.Kernels[1].Version != v9 || p.Kernels[0].Initrd != "boot/initrd.img-"+v28 {
		t.Fatalf("published: %+v", p)
	}
	if want := "images/debian%2012%20%2F%20%C3%BC/live/versions/" + v28 + "/kernel"; p.Kernels[0].KernelKey != want {
		t.Errorf("kernel key %q, want %q", p.Kernels[0].KernelKey, want)
	}
	get := func(key string) []byte {
		t.Helper()
		rc, _, err := s.obj.Get(ctx, key)
		must(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		must(t, err)
		return b
	}
	if !bytes.Equal(get(ArtifactKey(img, "live", "kernel")), kernel28) || !bytes.Equal(get(p.Kernels[0].KernelKey), kernel28) {
		t.Error("the default kernel differs from the image's")
	}
	if string(get(p.Kernels[1].KernelKey)) != "old kernel" {
		t.Error("the older kernel differs from the image's")
	}

	archive := get(ArtifactKey(img, "live", "modules"))
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	must(t, err)
	raw, err := io.ReadAll(zr)
	must(t, err)
	var got []string
	root := "usr/lib/modules/" + v28
	for _, e := range readNewc(t, raw) {
		got = append(got, e.name)
		if e.mode == newcFile {
			if rel := strings.TrimPrefix(e.name, root+"/"); e.data != files["usr/lib/modules/"+v28+"/"+rel] {
				t.Errorf("%s holds %q", e.name, e.data)
			}
		} else if e.mode != newcDir {
			t.Errorf("%s has mode %o", e.name, e.mode)
		}
	}
	want := []string{"usr", "usr/lib", "usr/lib/modules", root, root + "/kernel", root + "/kernel/drivers", root + "/kernel/drivers/block",
		root + "/kernel/drivers/block/virtio_blk.ko.xz", root + "/kernel/fs", root + "/kernel/fs/ext4",
		root + "/kernel/fs/ext4/ext4.ko.xz", root + "/kernel/fs/mbcache.ko.xz", root + "/modules.alias", root + "/modules.dep"}
	if !slices.Equal(got, want) {
		t.Errorf("modules archive:\n got %q\nwant %q", got, want)
	}
	// busybox's cpio, when there is one, reads the archive the same way.
	if bb, err := exec.LookPath("busybox"); err == nil {
		cmd := exec.Command(bb, "cpio", "-t")
		cmd.Stdin = bytes.NewReader(raw)
		out, err := cmd.Output()
		must(t, err)
		if listed := strings.Fields(string(out)); !slices.Equal(listed, want) {
			t.Errorf("busybox cpio -t lists %q", listed)
		}
	}

	// Publishing again writes the same bytes under every key.
	keys := []string{ArtifactKey(img, "live", "kernel"), ArtifactKey(img, "live", "modules")}
	for _, k := range p.Kernels {
		keys = append(keys, k.KernelKey, k.ModulesKey)
	}
	before := map[string][]byte{}
	for _, k := range keys {
		before[k] = get(k)
	}
	_, err = s.Publish(ctx, img, "live")
	must(t, err)
	for _, k := range keys {
		if !bytes.Equal(get(k), before[k]) {
			t.Errorf("%s changed when published again", k)
		}
	}

	// An image without a kernel says so.
	empty := t.TempDir()
	must(t, os.WriteFile(filepath.Join(empty, "hostname"), []byte("x"), 0o644))
	_, err = s.ImportDir(ctx, "no kernel", "main", empty)
	must(t, err)
	if _, err := s.Publish(ctx, "no kernel", "main"); !errors.Is(err, ErrNoKernel) {
		t.Errorf("publish without a kernel: %v", err)
	}
	if _, err := s.Publish(ctx, img, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("publish a missing branch: %v", err)
	}
}

func TestKeySegment(t *testing.T) {
	for in, want := range map[string]string{
		"rocky9":      "rocky9",
		"rocky-9.4_a": "rocky-9.4_a",
		"a/b":         "a%2Fb",
		"a%2Fb":       "a%252Fb",
		".":           "%2E",
		"..":          "%2E%2E",
		"...":         "...",
		"ü":           "%C3%BC",
		"a b&c":       "a%20b%26c",
	} {
		if got := KeySegment(in); got != want {
			t.Errorf("KeySegment(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ArtifactKey("a/b", "..", "kernel"); got != "images/a%2Fb/%2E%2E/kernel" {
		t.Errorf("ArtifactKey: %s", got)
	}
	if got := VersionArtifactKey("a", "b", "6.1/x", "modules"); got != "images/a/b/versions/6.1%2Fx/modules" {
		t.Errorf("VersionArtifactKey: %s", got)
	}
}
