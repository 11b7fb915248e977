package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/bootenv/sync"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) imageEditCommands() []*command {
	return []*command{
		{
			name: "shell", args: "IMAGE[:BRANCH]", minArgs: 1, maxArgs: 1,
			summary: "edit a branch in an interactive shell, committing on exit",
			help: `Checks the branch out to a working tree on this machine (only what
changed since the last checkout is fetched), opens a shell chrooted into
it with /proc, /sys and /dev bound and the host's resolv.conf, and on exit
commits what changed as a new version of the branch. If someone else
committed to the branch meanwhile, nothing is committed: the working tree
is kept and the message says where. Needs root.`,
			flags: func(fs *flag.FlagSet) action {
				dir := fs.String("dir", "", "working tree `DIR` (default under the user's cache directory)")
				msg := fs.String("m", "", "a `MESSAGE` for the branch's history (default: the command run)")
				return func(ctx context.Context, args []string) error {
					return a.imageEdit(ctx, "image shell", args[0], nil, *dir, *msg)
				}
			},
		},
		{
			name: "exec", args: "IMAGE[:BRANCH] -- COMMAND [ARG...]", minArgs: 2, maxArgs: -1,
			summary: "run a command in a branch, committing what it changed",
			help: `Like shell, but runs COMMAND in the chroot and commits when it exits
successfully; a failing command commits nothing and exits with its
status.`,
			flags: func(fs *flag.FlagSet) action {
				dir := fs.String("dir", "", "working tree `DIR` (default under the user's cache directory)")
				msg := fs.String("m", "", "a `MESSAGE` for the branch's history (default: the command run)")
				return func(ctx context.Context, args []string) error {
					cmdArgs := args[1:]
					if len(cmdArgs) > 0 && cmdArgs[0] == "--" {
						cmdArgs = cmdArgs[1:]
					}
					if len(cmdArgs) == 0 {
						return usagef("image exec", "no COMMAND after IMAGE[:BRANCH] --")
					}
					return a.imageEdit(ctx, "image exec", args[0], cmdArgs, *dir, *msg)
				}
			},
		},
	}
}

// blobFetcher reads blobs for a checkout through the API.
type blobFetcher struct{ cl *client.Client }

func (f blobFetcher) Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error) {
	return sync.OpenSized(d, size, func() (io.ReadCloser, int64, error) { return f.cl.OpenBlob(ctx, d) })
}

// checkoutDir is where a branch's working tree lives between edits, so the
// next checkout fetches only what changed.
func checkoutDir(im model.Image, branch string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "herd", "checkouts", im.ID, fmt.Sprintf("%x", branch)), nil
}

func (a *app) imageEdit(ctx context.Context, cmd, ref string, command []string, dir, msg string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s: needs root (chroot and bind mounts)", cmd)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, branch, base, err := a.existingBranch(ctx, cl, cmd, ref)
	if err != nil {
		return err
	}
	image := im.Name
	if dir == "" {
		if dir, err = checkoutDir(im, branch); err != nil {
			return fail(cmd, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(cmd, err)
	}
	if err := detachMountsUnder(dir); err != nil { // left by an edit that was killed
		return fail(cmd, err)
	}

	// Check out: make the tree exactly the branch's version.
	m, err := cl.Manifest(ctx, base)
	if err != nil {
		return fail(cmd, err)
	}
	plan, err := sync.Plan(ctx, m, dir, sync.Policy{Verify: sync.VerifyUnsure})
	if err != nil {
		return fail("check out "+image+":"+branch, err)
	}
	if !plan.Empty() {
		fmt.Fprintf(a.stderr, "checking out %s:%s into %s: %s\n", image, branch, dir, plan.Summary())
		if _, err := sync.Apply(ctx, plan, dir, blobFetcher{cl}, sync.ApplyOptions{}); err != nil {
			return fail("check out "+image+":"+branch, err)
		}
	}

	shell := len(command) == 0
	if shell {
		command = []string{"/bin/sh"}
		if _, err := os.Lstat(filepath.Join(dir, "bin/bash")); err == nil {
			command = []string{"/bin/bash", "-l"}
		}
		fmt.Fprintf(a.stderr, "Editing %s:%s. Exit the shell to commit what you changed.\n", image, branch)
	}
	runErr := runChrooted(ctx, dir, command, a.stdin, a.stdout, a.stderr)
	var exit *exec.ExitError
	if runErr != nil && !(shell && errors.As(runErr, &exit)) {
		return fmt.Errorf("%s: %s: %w; nothing committed (working tree kept in %s)", cmd, strings.Join(command, " "), runErr, dir)
	}

	if msg == "" {
		msg = "shell"
		if !shell {
			msg = "exec: " + strings.Join(command, " ")
		}
	}
	r, reply, err := a.pushCommit(ctx, cl, dir, image, branch, base, msg)
	if client.IsStatus(err, 409) {
		return fmt.Errorf("%s: %s:%s was changed by someone else while you edited; nothing committed, your tree is kept in %s", cmd, image, branch, dir)
	}
	if err != nil {
		return fail(fmt.Sprintf("commit %s:%s", image, branch), err)
	}
	if reply.Added+reply.Changed+reply.Removed == 0 {
		fmt.Fprintf(a.stdout, "%s:%s unchanged\n", image, branch)
		return nil
	}
	a.printCommit(r, reply)
	return nil
}

// runChrooted runs command with dir as its root, /proc, /sys and /dev of
// the host bound into it and the host's resolv.conf over the image's, and
// removes all of that again before returning.
func runChrooted(ctx context.Context, dir string, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var mounted []string
	defer func() {
		for _, m := range slices.Backward(mounted) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}()
	bind := func(src, rel string, flags uintptr) error {
		dst := filepath.Join(dir, rel)
		if fi, err := os.Lstat(dst); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return nil // the image has no such place (or a link): leave it
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|flags, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, dst, err)
		}
		mounted = append(mounted, dst)
		return nil
	}
	if fi, err := os.Lstat(filepath.Join(dir, "proc")); err == nil && fi.IsDir() {
		p := filepath.Join(dir, "proc")
		if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount proc on %s: %w", p, err)
		}
		mounted = append(mounted, p)
	}
	for _, rel := range []string{"sys", "dev"} {
		if err := bind("/"+rel, rel, unix.MS_REC); err != nil {
			return err
		}
	}
	if err := bind("/etc/resolv.conf", "etc/resolv.conf", 0); err != nil {
		return err
	}
	c := exec.CommandContext(ctx, command[0], command[1:]...)
	c.Dir = "/"
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
		"TERM=" + os.Getenv("TERM"), "PS1=(herd image) \\w# "}
	c.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	return c.Run()
}

// detachMountsUnder detaches whatever is mounted below dir, deepest first.
func detachMountsUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var under []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			under = append(under, fields[4])
		}
	}
	slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) })
	for _, m := range under {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("detach %s left by an earlier edit: %w", m, err)
		}
	}
	return sc.Err()
}
