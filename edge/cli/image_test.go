package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestImageCommands(t *testing.T) {
	h := loggedIn(t)
	dir := tree(t, map[string]string{"etc/hostname": "x\n", "etc/motd": "hello\n"})

	r := h.ok(h.run("image", "import", dir, "rocky 9"))
	if !strings.Contains(r.stdout, "rocky 9:main is now") || !strings.Contains(r.stdout, "4 added") {
		t.Fatalf("import said %q", r.stdout)
	}
	// Unchanged: nothing sent.
	r = h.ok(h.run("image", "import", dir, "rocky 9"))
	if !strings.Contains(r.stderr, "sent 0 B in 0 new blobs") {
		t.Errorf("re-import said %q", r.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/motd"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = h.ok(h.run("image", "import", dir, "rocky 9:main", "-m", "new motd"))
	if !strings.Contains(r.stdout, "1 changed") {
		t.Errorf("second import said %q", r.stdout)
	}

	r = h.ok(h.run("image", "list"))
	checkAligned(t, r.stdout)
	if !strings.Contains(r.stdout, "rocky 9") {
		t.Errorf("list: %q", r.stdout)
	}
	page := decode[model.Page[model.Image]](t, h.ok(h.run("image", "list", "--json")).stdout)
	if page.Total != 1 || page.Items[0].Live != "main" {
		t.Fatalf("list --json: %+v", page)
	}

	r = h.ok(h.run("image", "history", "rocky 9"))
	checkAligned(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "new motd") {
		t.Fatalf("history:\n%s", r.stdout)
	}
	first := strings.Fields(lines[len(lines)-1])[0]

	r = h.ok(h.run("image", "diff", "rocky 9", "sha256:"+first, "main"))
	if strings.TrimSpace(r.stdout) != "~ etc/motd (content,mtime)" && strings.TrimSpace(r.stdout) != "~ etc/motd (content)" {
		t.Errorf("diff: %q", r.stdout)
	}

	h.ok(h.run("image", "branch", "rocky 9", "testing"))
	h.failed(h.run("image", "delete-branch", "rocky 9", "main"), 1, "live")
	h.ok(h.run("image", "live", "rocky 9", "testing"))
	h.ok(h.run("image", "rollback", "rocky 9:main", first[:8]))
	h.failed(h.run("image", "rollback", "rocky 9:main", "00000000"), 1, "no version 00000000")

	// migrate: one directory per image, named after it.
	old := t.TempDir()
	for _, name := range []string{"compute", "login"} {
		d := filepath.Join(old, name)
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "etc", "role"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r = h.ok(h.run("image", "migrate", filepath.Join(old, "compute"), filepath.Join(old, "login")))
	if !strings.Contains(r.stdout, "compute:main is now") || !strings.Contains(r.stdout, "login:main is now") {
		t.Errorf("migrate said %q", r.stdout)
	}
	h.failed(h.run("image", "migrate", filepath.Join(old, "login")), 1, "exists already")

	h.failed(h.run("image", "delete", "compute"), 2, "--yes")
	h.ok(h.run("image", "delete", "compute", "--yes"))
	h.failed(h.run("image", "show", "compute"), 1, "compute")
}

// busyboxTree is a tiny root with a working /bin/sh: the host's busybox
// and the libraries it links.
func busyboxTree(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox is needed (make deps installs it): %v", err)
	}
	dir := tree(t, map[string]string{"etc/motd": "old motd\n", "etc/old": "to be removed\n", "etc/resolv.conf": "# image's own\n"})
	files := []string{bb}
	out, err := exec.Command("ldd", bb).Output()
	if err != nil {
		t.Fatalf("ldd busybox: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if f == bb {
			dst = filepath.Join(dir, "bin", "busybox")
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, applet := range []string{"sh", "rm", "grep", "sleep", "test", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// TestImageExec edits a branch with a command in a chroot: the change is
// committed and audited with the command; /proc, /dev and the host's
// resolv.conf are there while it runs and gone after; a commit made by
// someone else meanwhile makes the edit refuse, keeping the tree.
func TestImageExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("image exec needs root")
	}
	h := loggedIn(t)
	h.ok(h.run("image", "import", busyboxTree(t), "tiny"))
	work := filepath.Join(t.TempDir(), "work")

	script := `echo new motd > /etc/motd && rm /etc/old && test -e /proc/self/status && test -c /dev/null && ! grep -q "image's own" /etc/resolv.conf`
	r := h.ok(h.run("image", "exec", "--dir", work, "tiny", "--", "/bin/sh", "-c", script))
	if !strings.Contains(r.stdout, "tiny:main is now") || !strings.Contains(r.stdout, "2 changed, 1 removed") {
		t.Fatalf("exec said %q / %q", r.stdout, r.stderr)
	}
	if m := mountsUnder(t, work); len(m) != 0 {
		t.Errorf("mounts left after exec: %v", m)
	}
	hist := decode[model.Page[model.ImageVersion]](t, h.ok(h.run("image", "history", "tiny", "--json")).stdout)
	if hist.Items[0].Message != "exec: /bin/sh -c "+script || hist.Items[0].User != "admin" {
		t.Errorf("history record %+v", hist.Items[0])
	}
	d := h.ok(h.run("image", "diff", "tiny", hist.Items[1].Version, "main")).stdout
	if !strings.Contains(d, "~ etc/motd") || !strings.Contains(d, "- etc/old") || strings.Contains(d, "resolv.conf") || strings.Contains(d, "herd-sync") {
		t.Errorf("diff after exec:\n%s", d)
	}
	events, err := h.store.Audit(context.Background(), store.AuditQuery{Kind: "image", Method: "commit"})
	if err != nil {
		t.Fatal(err)
	}
	var edit *model.AuditEvent
	for i, ev := range events.Items {
		if strings.Contains(ev.Msg, "exec: /bin/sh -c") {
			edit = &events.Items[i]
		}
	}
	if edit == nil || edit.Extras["removed_paths"] != "etc/old" || edit.User != "admin" {
		t.Errorf("audit of the edit: %+v", edit)
	}

	// A failing command commits nothing.
	h.failed(h.run("image", "exec", "--dir", work, "tiny", "--", "/bin/sh", "-c", "echo x > /etc/motd; exit 3"), 1, "nothing committed")

	// Someone commits while the edit runs: the edit is refused.
	gate := filepath.Join(work, "tmp", "go")
	done := make(chan result)
	go func() {
		done <- h.run("image", "exec", "--dir", work, "tiny", "--", "/bin/sh", "-c",
			"echo mine > /etc/motd; while [ ! -e /tmp/go ]; do sleep 0.05; done; rm /tmp/go")
	}()
	for {
		if b, err := os.ReadFile(filepath.Join(work, "etc/motd")); err == nil && string(b) == "mine\n" {
			break
		}
	}
	other := busyboxTree(t)
	if err := os.WriteFile(filepath.Join(other, "etc/motd"), []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.ok(h.run("image", "import", other, "tiny"))
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.failed(<-done, 1, "changed by someone else", work)
}

// TestImageImportArchive imports a tar.gz made by GNU tar and refuses a
// hostile one, leaving the branch where it was.
func TestImageImportArchive(t *testing.T) {
	h := loggedIn(t)
	dir := tree(t, map[string]string{"etc/hostname": "x\n", "usr/bin/tool": "#!/bin/sh\n"})
	tgz := filepath.Join(t.TempDir(), "root.tar.gz")
	if out, err := exec.Command("tar", "--format=posix", "-C", dir, "-czf", tgz, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	r := h.ok(h.run("image", "import", tgz, "from-tar"))
	if !strings.Contains(r.stdout, "from-tar:main is now") || !strings.Contains(r.stdout, "6 added") {
		t.Fatalf("import said %q", r.stdout)
	}
	// The same tree as a directory is the same version: nothing changes.
	r = h.ok(h.run("image", "import", dir, "from-tar"))
	if !strings.Contains(r.stdout, "0 added, 0 changed, 0 removed") {
		t.Errorf("directory import of the same tree said %q", r.stdout)
	}

	evil := filepath.Join(t.TempDir(), "evil.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", evil, "--transform", "s,^./etc,../../etc,", "./etc/hostname").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	before := h.ok(h.run("image", "show", "from-tar", "--json")).stdout
	h.failed(h.run("image", "import", evil, "from-tar"), 1, "../../etc/hostname")
	if after := h.ok(h.run("image", "show", "from-tar", "--json")).stdout; after != before {
		t.Errorf("a refused archive moved the branch:\n%s\n%s", before, after)
	}
}

func TestImageKernelsAndGC(t *testing.T) {
	h := loggedIn(t)
	dir := tree(t, map[string]string{
		"boot/vmlinuz-6.1.0-9-amd64":                            "old kernel",
		"boot/vmlinuz-6.1.0-28-amd64":                           "new kernel",
		"lib/modules/6.1.0-28-amd64/kernel/fs/ext4/ext4.ko":     "module",
		"lib/modules/6.1.0-28-amd64/kernel/drivers/md/raid1.ko": "module",
		"lib/modules/6.1.0-28-amd64/modules.dep":                "",
	})
	h.ok(h.run("image", "import", dir, "debian"))
	r := h.ok(h.run("image", "kernels", "debian"))
	checkAligned(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "6.1.0-28-amd64") || !strings.Contains(lines[1], "2 in /lib/modules/6.1.0-28-amd64") {
		t.Fatalf("kernels:\n%s", r.stdout)
	}

	// Content of a deleted image goes, once old enough; a dry run frees nothing.
	h.ok(h.run("image", "import", tree(t, map[string]string{"only-here": "unique content"}), "scratch"))
	h.ok(h.run("image", "delete", "scratch", "--yes"))
	r = h.ok(h.run("image", "gc", "--dry-run", "--grace", "1m"))
	if !strings.Contains(r.stdout, "would free 0 B") {
		t.Errorf("dry run with content younger than the grace: %q", r.stdout)
	}
	rep := decode[model.GCReport](t, h.ok(h.run("image", "gc", "--json")).stdout)
	if rep.DeletedBlobs != 0 || rep.KeptYoung == 0 {
		t.Errorf("gc deleted young content: %+v", rep)
	}
}
