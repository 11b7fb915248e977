package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bsync "github.com/herd-hpc/herd/bootenv/sync"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/archive"
	"github.com/herd-hpc/herd/functions/image/kernel"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/push"
	"github.com/herd-hpc/herd/functions/model"
)

func (a *app) imageCommand() *command {
	return &command{
		name: "image", aliases: []string{"images"}, summary: "import, branch, edit and roll back node images",
		help: `An image is a whole operating system tree that nodes sync at boot. Each
image has branches; one is live, and nodes follow it unless they or their
group pin another. Every change is a new version (a manifest digest) that
a branch points at; history and rollback work per branch.

IMAGE[:BRANCH] names a branch; without :BRANCH it means the live branch.
Image names may hold any characters; when a name itself holds a colon,
the whole argument is tried as a name first.`,
		subs: append([]*command{
			{
				name: "list", aliases: []string{"ls"}, maxArgs: 0, summary: "list images",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.imageList(ctx, *asJSON) }
				},
			},
			{
				name: "show", aliases: []string{"get"}, args: "IMAGE", minArgs: 1, maxArgs: 1,
				summary: "show an image's branches",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.imageShow(ctx, args[0], *asJSON) }
				},
			},
			{
				name: "import", args: "SOURCE IMAGE[:BRANCH]", minArgs: 2, maxArgs: 2,
				summary: "import a tree or an archive as a new version of a branch",
				help: `Imports SOURCE as a new version of the branch: a directory holding a root
filesystem (a chroot), a tar archive (plain, gzip, zstd, xz or bzip2), an
OCI image layout directory or a docker save archive. Archives are read as
they stream; one with .., absolute paths, links out of the tree, duplicate
entries or truncated data is refused naming the entry, and no version is
made. The new version belongs to the branch (default main for a new image, else the live
branch); the image and branch are created when new. Only content herd
does not have yet is sent: re-importing an unchanged tree sends nothing.
If someone else committed to the branch meanwhile, the import is refused
and the branch keeps their version.`,
				flags: func(fs *flag.FlagSet) action {
					msg := fs.String("m", "", "a `MESSAGE` for the branch's history")
					return func(ctx context.Context, args []string) error { return a.imageImport(ctx, args[0], args[1], *msg) }
				},
			},
			{
				name: "migrate", args: "DIR...", minArgs: 1, maxArgs: -1,
				summary: "bring over 1.x cloner image directories",
				help: `Imports each DIR, a 1.x "cloner" image directory (a plain root tree named
after its image), as an image of that name with a main branch. Images
that exist already are left alone and reported.`,
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error { return a.imageMigrate(ctx, args) }
				},
			},
			{
				name: "branch", args: "IMAGE NEW", minArgs: 2, maxArgs: 2,
				summary: "create a branch as a copy of another (instant)",
				flags: func(fs *flag.FlagSet) action {
					from := fs.String("from", "", "copy `BRANCH` (default the live branch)")
					return func(ctx context.Context, args []string) error {
						return a.imageDo(ctx, "create branch "+args[1]+" of "+args[0], func(cl *client.Client) (string, error) {
							_, err := cl.CreateBranch(ctx, args[0], model.BranchRequest{Name: args[1], From: *from})
							return fmt.Sprintf("created branch %s of image %s", args[1], args[0]), err
						})
					}
				},
			},
			{
				name: "rename-branch", args: "IMAGE BRANCH NEW", minArgs: 3, maxArgs: 3,
				summary: "rename a branch (the live mark follows it)",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						return a.imageDo(ctx, "rename branch "+args[1]+" of "+args[0], func(cl *client.Client) (string, error) {
							_, err := cl.RenameBranch(ctx, args[0], args[1], args[2])
							return fmt.Sprintf("renamed branch %s of image %s to %s", args[1], args[0], args[2]), err
						})
					}
				},
			},
			{
				name: "delete-branch", args: "IMAGE BRANCH", minArgs: 2, maxArgs: 2,
				summary: "delete a branch that is not live and no node pins",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						return a.imageDo(ctx, "delete branch "+args[1]+" of "+args[0], func(cl *client.Client) (string, error) {
							return fmt.Sprintf("deleted branch %s of image %s", args[1], args[0]), cl.DeleteBranch(ctx, args[0], args[1])
						})
					}
				},
			},
			{
				name: "live", args: "IMAGE BRANCH", minArgs: 2, maxArgs: 2,
				summary: "make a branch the one nodes follow",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						return a.imageDo(ctx, "set live branch of "+args[0], func(cl *client.Client) (string, error) {
							_, err := cl.PatchImage(ctx, args[0], model.ImagePatch{Live: args[1]})
							return fmt.Sprintf("branch %s of image %s is live", args[1], args[0]), err
						})
					}
				},
			},
			{
				name: "rename", args: "IMAGE NEW", minArgs: 2, maxArgs: 2, summary: "rename an image",
				flags: func(fs *flag.FlagSet) action {
					return func(ctx context.Context, args []string) error {
						return a.imageDo(ctx, "rename image "+args[0], func(cl *client.Client) (string, error) {
							_, err := cl.PatchImage(ctx, args[0], model.ImagePatch{Name: args[1]})
							return fmt.Sprintf("renamed image %s to %s", args[0], args[1]), err
						})
					}
				},
			},
			{
				name: "delete", aliases: []string{"rm"}, args: "IMAGE", minArgs: 1, maxArgs: 1,
				summary: "delete an image and all its branches",
				flags: func(fs *flag.FlagSet) action {
					yes := fs.Bool("yes", false, "do not ask for confirmation")
					return func(ctx context.Context, args []string) error { return a.imageDelete(ctx, args[0], *yes) }
				},
			},
			{
				name: "history", aliases: []string{"log"}, args: "IMAGE[:BRANCH]", minArgs: 1, maxArgs: 1,
				summary: "list a branch's versions, newest first",
				flags: func(fs *flag.FlagSet) action {
					limit := fs.Int("limit", 20, "show at most `N` records")
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.imageHistory(ctx, args[0], *limit, *asJSON) }
				},
			},
			{
				name: "rollback", args: "IMAGE[:BRANCH] VERSION", minArgs: 2, maxArgs: 2,
				summary: "move a branch back to an earlier version of its own",
				help: `Moves the branch back to VERSION, a digest from its history (the first
hex digits are enough when they name one version). The rollback is a
new history record, so it can itself be rolled back.`,
				flags: func(fs *flag.FlagSet) action {
					msg := fs.String("m", "", "a `MESSAGE` for the branch's history")
					return func(ctx context.Context, args []string) error { return a.imageRollback(ctx, args[0], args[1], *msg) }
				},
			},
			{
				name: "diff", args: "IMAGE FROM TO", minArgs: 3, maxArgs: 3,
				summary: "list the paths that differ between two branches or versions",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error {
						return a.imageDiff(ctx, args[0], args[1], args[2], *asJSON)
					}
				},
			},
			{
				name: "kernels", args: "IMAGE[:BRANCH]", minArgs: 1, maxArgs: 1,
				summary: "list the kernels found in a branch, newest first",
				help: `Lists the kernels of the branch's version with their initramfs and
modules. Nodes boot the newest; herd publishes it (and a modules archive
for the provisioner) when the branch is committed.`,
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, args []string) error { return a.imageKernels(ctx, args[0], *asJSON) }
				},
			},
			{
				name: "gc", maxArgs: 0, summary: "free content no image version refers to",
				help: `Deletes blobs and versions that no branch, no branch history (so rollback
keeps working) and no running import refers to, and that are older than
the grace period. Safe while imports run.`,
				flags: func(fs *flag.FlagSet) action {
					dry := fs.Bool("dry-run", false, "count what would be freed, delete nothing")
					grace := fs.Duration("grace", 0, "keep unreferenced content younger than `DURATION` (default 1h)")
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.imageGC(ctx, *dry, *grace, *asJSON) }
				},
			},
		}, a.imageEditCommands()...),
	}
}

// imageDo runs one change and prints its line.
func (a *app) imageDo(ctx context.Context, op string, fn func(cl *client.Client) (string, error)) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	line, err := fn(cl)
	if err != nil {
		return fail(op, err)
	}
	fmt.Fprintln(a.stdout, line)
	return nil
}

// branchRef splits IMAGE[:BRANCH]. A whole argument that names an image
// wins over a split at its last colon; an empty branch means the live one
// (or main for an image that does not exist yet).
func (a *app) branchRef(ctx context.Context, cl *client.Client, ref string) (image, branch string, exists bool, err error) {
	im, err := cl.Image(ctx, ref)
	if err == nil {
		return im.Name, im.Live, true, nil
	}
	if !client.IsStatus(err, 404) {
		return "", "", false, err
	}
	image, branch = ref, ""
	if i := strings.LastIndex(ref, ":"); i > 0 {
		image, branch = ref[:i], ref[i+1:]
	}
	im, err = cl.Image(ctx, image)
	switch {
	case client.IsStatus(err, 404):
		if branch == "" {
			branch = "main"
		}
		return image, branch, false, nil
	case err != nil:
		return "", "", false, err
	}
	if branch == "" {
		branch = im.Live
	}
	return image, branch, true, nil
}

// existingBranch resolves IMAGE[:BRANCH] to an image and a branch that
// exist, and the version the branch points at.
func (a *app) existingBranch(ctx context.Context, cl *client.Client, cmd, ref string) (model.Image, string, manifest.Digest, error) {
	image, branch, exists, err := a.branchRef(ctx, cl, ref)
	if err != nil {
		return model.Image{}, "", manifest.Digest{}, fail(cmd, err)
	}
	if !exists {
		return model.Image{}, "", manifest.Digest{}, fmt.Errorf("%s: no image %s; import one first", cmd, image)
	}
	im, err := cl.Image(ctx, image)
	if err != nil {
		return model.Image{}, "", manifest.Digest{}, fail(cmd, err)
	}
	v, err := branchVersion(im, branch)
	if err != nil || v.IsZero() {
		return model.Image{}, "", manifest.Digest{}, fmt.Errorf("%s: image %s has no branch %s", cmd, image, branch)
	}
	return im, branch, v, nil
}

// branchVersion returns the version a branch points at; zero if it is new.
func branchVersion(im model.Image, branch string) (manifest.Digest, error) {
	for _, b := range im.Branches {
		if b.Name == branch {
			return manifest.ParseDigest(b.Version)
		}
	}
	return manifest.Digest{}, nil
}

// shortDigest is the first 12 hex digits of a version, as tables show it.
func shortDigest(v string) string {
	v = strings.TrimPrefix(v, "sha256:")
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func (a *app) imageList(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	images, err := cl.Images(ctx)
	if err != nil {
		return fail("list images", err)
	}
	if images == nil {
		images = []model.Image{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.Image]{Items: images, Total: len(images)})
	}
	if len(images) == 0 {
		fmt.Fprintln(a.stderr, "No images. Import one with: herd image import DIR NAME")
		return nil
	}
	t := newTable(a.stdout, "NAME", "LIVE", "VERSION", "BRANCHES", "UPDATED")
	for _, im := range images {
		names := make([]string, len(im.Branches))
		live := ""
		for i, b := range im.Branches {
			names[i] = b.Name
			if b.Name == im.Live {
				live = shortDigest(b.Version)
			}
		}
		t.row(im.Name, im.Live, live, strings.Join(names, ","), formatTime(im.Updated))
	}
	return t.flush()
}

func (a *app) imageShow(ctx context.Context, name string, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, err := cl.Image(ctx, name)
	if err != nil {
		return notFoundOr(err, "image show", "image", name, "read image "+name)
	}
	if asJSON {
		return writeJSON(a.stdout, im)
	}
	d := newDetails(a.stdout)
	d.add("Name", im.Name)
	d.add("ID", im.ID)
	d.add("Live branch", im.Live)
	d.add("Created", formatTime(im.Created))
	d.add("Updated", formatTime(im.Updated))
	if err := d.flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	t := newTable(a.stdout, "BRANCH", "VERSION", "LIVE")
	for _, b := range im.Branches {
		live := ""
		if b.Name == im.Live {
			live = "yes"
		}
		t.row(b.Name, b.Version, live)
	}
	return t.flush()
}

// bytesProgress draws a push's progress, phase by phase.
type bytesProgress struct {
	mu    sync.Mutex
	a     *app
	bar   *progress
	phase push.Phase
}

func (b *bytesProgress) update(p push.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Phase != b.phase || b.bar == nil && p.Total > 0 {
		b.bar.clear()
		b.phase = p.Phase
		b.bar = b.a.newProgress(string(p.Phase), max(int(p.Total), 2))
	}
	if p.Total > 0 {
		b.bar.set(int(p.Done), int(p.Total), humanBytes(p.Done)+" of "+humanBytes(p.Total))
	}
}

func (b *bytesProgress) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar.clear()
}

// humanBytes prints a size with a binary unit.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// pushCommit pushes dir and commits it on the branch, refusing when the
// branch moved since it was read.
func (a *app) pushCommit(ctx context.Context, cl *client.Client, dir, image, branch string, base manifest.Digest, msg string) (push.Result, model.CommitReply, error) {
	imp, err := cl.BeginImport(ctx)
	if err != nil {
		return push.Result{}, model.CommitReply{}, err
	}
	bp := &bytesProgress{a: a}
	// A working tree's sync journal is the checkout's, not the image's.
	skip := func(p string) bool { return p == bsync.JournalDir }
	_, r, err := push.Dir(ctx, imp, dir, push.Options{Progress: bp.update, Skip: skip})
	bp.done()
	if err != nil {
		_ = imp.End(context.WithoutCancel(ctx))
		return r, model.CommitReply{}, err
	}
	reply, err := imp.Commit(ctx, image, branch, base, r.Manifest, msg)
	if err != nil {
		_ = imp.End(context.WithoutCancel(ctx))
	}
	return r, reply, err
}

func (a *app) imageImport(ctx context.Context, src, ref, msg string) error {
	const cmd = "image import"
	kind, err := archive.Detect(src)
	if err != nil {
		return fail(cmd, err)
	}
	if kind == archive.KindUnknown {
		return usagef(cmd, "%s is neither a directory tree, a tar archive, an OCI layout nor a docker save archive", src)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	image, branch, exists, err := a.branchRef(ctx, cl, ref)
	if err != nil {
		return fail(cmd, err)
	}
	var base manifest.Digest
	if exists {
		im, err := cl.Image(ctx, image)
		if err != nil {
			return fail(cmd, err)
		}
		if base, err = branchVersion(im, branch); err != nil {
			return fail(cmd, err)
		}
	}
	if msg == "" {
		msg = "import " + src
	}
	var (
		r     push.Result
		reply model.CommitReply
	)
	if kind == archive.KindDir {
		r, reply, err = a.pushCommit(ctx, cl, src, image, branch, base, msg)
	} else {
		r, reply, err = a.importArchive(ctx, cl, kind, src, image, branch, base, msg)
	}
	if err != nil {
		return fail(fmt.Sprintf("import %s into %s:%s", src, image, branch), err)
	}
	a.printCommit(r, reply)
	return nil
}

// importArchive streams a tar, OCI layout or docker save archive into
// herd (nothing is extracted) and commits the version it makes.
func (a *app) importArchive(ctx context.Context, cl *client.Client, kind archive.Kind, src, image, branch string, base manifest.Digest, msg string) (push.Result, model.CommitReply, error) {
	var (
		m   *manifest.Manifest
		st  archive.Stats
		err error
	)
	imp, err := cl.BeginImport(ctx)
	if err != nil {
		return push.Result{}, model.CommitReply{}, err
	}
	defer func() {
		if err != nil {
			_ = imp.End(context.WithoutCancel(ctx))
		}
	}()
	fmt.Fprintf(a.stderr, "reading %s\n", src)
	if kind == archive.KindOCI {
		m, st, err = archive.FromOCI(ctx, imp, src, archive.Options{})
	} else {
		var f *os.File
		if f, err = os.Open(src); err != nil {
			return push.Result{}, model.CommitReply{}, err
		}
		defer f.Close()
		if kind == archive.KindDockerSave {
			m, st, err = archive.FromDockerSave(ctx, imp, f, archive.Options{})
		} else {
			m, st, err = archive.FromTar(ctx, imp, f, archive.Options{})
		}
	}
	if err != nil {
		return push.Result{}, model.CommitReply{}, err
	}
	r := push.Result{Files: st.Files, BytesScanned: st.BytesRead, BlobsUploaded: st.BlobsUploaded, BytesUploaded: st.BytesUploaded}
	if r.Manifest, err = imp.PutManifest(ctx, m); err != nil {
		return r, model.CommitReply{}, err
	}
	reply, err := imp.Commit(ctx, image, branch, base, r.Manifest, msg)
	return r, reply, err
}

func (a *app) printCommit(r push.Result, reply model.CommitReply) {
	fmt.Fprintf(a.stdout, "%s:%s is now %s (%d added, %d changed, %d removed)\n",
		reply.Image, reply.Branch, shortDigest(reply.Version), reply.Added, reply.Changed, reply.Removed)
	fmt.Fprintf(a.stderr, "%s in %s; sent %s in %s\n",
		humanBytes(r.BytesScanned), plural(r.Files, "file"), humanBytes(r.BytesUploaded), plural(r.BlobsUploaded, "new blob"))
}

func (a *app) imageMigrate(ctx context.Context, dirs []string) error {
	const cmd = "image migrate"
	cl, err := a.client()
	if err != nil {
		return err
	}
	var failed []string
	for _, dir := range dirs {
		name := filepath.Base(filepath.Clean(dir))
		err := func() error {
			if st, err := os.Stat(dir); err != nil {
				return err
			} else if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if _, err := cl.Image(ctx, name); err == nil {
				return fmt.Errorf("image %s exists already; left alone", name)
			} else if !client.IsStatus(err, 404) {
				return err
			}
			r, reply, err := a.pushCommit(ctx, cl, dir, name, "main", manifest.Digest{}, "migrated from "+dir)
			if err != nil {
				return err
			}
			a.printCommit(r, reply)
			return nil
		}()
		if err != nil {
			a.report(fail("migrate "+dir, err))
			failed = append(failed, dir)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %d of %d not migrated", cmd, len(failed), len(dirs))
	}
	return nil
}

func (a *app) imageDelete(ctx context.Context, name string, yes bool) error {
	const cmd = "image delete"
	if !yes && !isTerminal(a.stdin) {
		return usagef(cmd, "refusing to delete without --yes: stdin is not a terminal to ask for confirmation on")
	}
	if !yes {
		ok, err := a.confirm(ctx, fmt.Sprintf("Delete image %s and all its branches?", name))
		if err != nil {
			return fail(cmd, err)
		}
		if !ok {
			return fmt.Errorf("%s: not confirmed, nothing deleted", cmd)
		}
	}
	return a.imageDo(ctx, "delete image "+name, func(cl *client.Client) (string, error) {
		return "deleted image " + name, cl.DeleteImage(ctx, name)
	})
}

func (a *app) imageHistory(ctx context.Context, ref string, limit int, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, branch, _, err := a.existingBranch(ctx, cl, "image history", ref)
	if err != nil {
		return err
	}
	image := im.Name
	hist, err := cl.History(ctx, image, branch, limit)
	if err != nil {
		return fail("history of "+image+":"+branch, err)
	}
	if hist == nil {
		hist = []model.ImageVersion{}
	}
	if asJSON {
		return writeJSON(a.stdout, model.Page[model.ImageVersion]{Items: hist, Total: len(hist)})
	}
	t := newTable(a.stdout, "VERSION", "TIME", "USER", "KIND", "+", "~", "-", "MESSAGE")
	for _, v := range hist {
		t.row(shortDigest(v.Version), formatTime(v.Time), v.User, v.Kind,
			fmt.Sprint(v.Added), fmt.Sprint(v.Changed), fmt.Sprint(v.Removed), v.Message)
	}
	return t.flush()
}

func (a *app) imageRollback(ctx context.Context, ref, version, msg string) error {
	const cmd = "image rollback"
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, branch, _, err := a.existingBranch(ctx, cl, cmd, ref)
	if err != nil {
		return err
	}
	image := im.Name
	hist, err := cl.History(ctx, image, branch, 10000)
	if err != nil {
		return fail(cmd, err)
	}
	want := strings.TrimPrefix(version, "sha256:")
	var match []string
	for _, v := range hist {
		for _, d := range []string{v.Version, v.Previous} {
			if d != "" && strings.HasPrefix(strings.TrimPrefix(d, "sha256:"), want) && !contains(match, d) {
				match = append(match, d)
			}
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("%s: no version %s in the history of %s:%s", cmd, version, image, branch)
	case 1:
	default:
		return fmt.Errorf("%s: %s names %d versions of %s:%s; give more digits", cmd, version, len(match), image, branch)
	}
	to, err := manifest.ParseDigest(match[0])
	if err != nil {
		return fail(cmd, err)
	}
	if msg == "" {
		msg = "rollback"
	}
	if _, err := cl.Rollback(ctx, image, branch, to, msg); err != nil {
		return fail(fmt.Sprintf("roll back %s:%s", image, branch), err)
	}
	fmt.Fprintf(a.stdout, "%s:%s is back at %s\n", image, branch, shortDigest(to.String()))
	return nil
}

// resolveVersion turns a branch name, a digest or the first hex digits of
// a version found in any branch's history into what the API takes.
func (a *app) resolveVersion(ctx context.Context, cl *client.Client, im model.Image, v string) (string, error) {
	for _, b := range im.Branches {
		if b.Name == v {
			return v, nil
		}
	}
	want := strings.TrimPrefix(v, "sha256:")
	if len(want) == 64 {
		return "sha256:" + want, nil
	}
	var match []string
	for _, b := range im.Branches {
		hist, err := cl.History(ctx, im.Name, b.Name, 10000)
		if err != nil {
			return "", err
		}
		for _, h := range hist {
			if strings.HasPrefix(strings.TrimPrefix(h.Version, "sha256:"), want) && !contains(match, h.Version) {
				match = append(match, h.Version)
			}
		}
	}
	switch {
	case want == "" || len(match) == 0:
		return "", fmt.Errorf("%s is neither a branch of %s nor a version in its history", v, im.Name)
	case len(match) > 1:
		return "", fmt.Errorf("%s names %d versions of %s; give more digits", v, len(match), im.Name)
	}
	return match[0], nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (a *app) imageDiff(ctx context.Context, image, from, to string, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, err := cl.Image(ctx, image)
	if err != nil {
		return notFoundOr(err, "image diff", "image", image, "read image "+image)
	}
	if from, err = a.resolveVersion(ctx, cl, im, from); err != nil {
		return fail("image diff", err)
	}
	if to, err = a.resolveVersion(ctx, cl, im, to); err != nil {
		return fail("image diff", err)
	}
	d, err := cl.Diff(ctx, image, from, to)
	if err != nil {
		return fail(fmt.Sprintf("diff %s %s..%s", image, from, to), err)
	}
	if asJSON {
		return writeJSON(a.stdout, d)
	}
	for _, p := range d.Added {
		fmt.Fprintf(a.stdout, "+ %s\n", p)
	}
	for _, c := range d.Changed {
		fmt.Fprintf(a.stdout, "~ %s (%s)\n", c.Path, c.What)
	}
	for _, p := range d.Removed {
		fmt.Fprintf(a.stdout, "- %s\n", p)
	}
	fmt.Fprintf(a.stderr, "%d added, %d changed, %d removed\n", len(d.Added), len(d.Changed), len(d.Removed))
	return nil
}

func (a *app) imageKernels(ctx context.Context, ref string, asJSON bool) error {
	const cmd = "image kernels"
	cl, err := a.client()
	if err != nil {
		return err
	}
	im, branch, v, err := a.existingBranch(ctx, cl, cmd, ref)
	if err != nil {
		return err
	}
	image := im.Name
	m, err := cl.Manifest(ctx, v)
	if err != nil {
		return fail(cmd, err)
	}
	ks := kernel.Find(m)
	if asJSON {
		if ks == nil {
			ks = []kernel.Kernel{}
		}
		return writeJSON(a.stdout, ks)
	}
	if len(ks) == 0 {
		fmt.Fprintf(a.stderr, "No kernel in %s:%s: nodes cannot boot it until one is installed.\n", image, branch)
		return nil
	}
	t := newTable(a.stdout, "VERSION", "KERNEL", "SIZE", "INITRD", "MODULES")
	for _, k := range ks {
		t.row(k.Version, "/"+k.Path, humanBytes(k.Size), "/"+k.Initrd, fmt.Sprintf("%d in /%s", k.ModuleCount, k.ModulesDir))
	}
	return t.flush()
}

func (a *app) imageGC(ctx context.Context, dry bool, grace time.Duration, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	req := model.GCRequest{DryRun: dry}
	if grace > 0 {
		req.Grace = grace.String()
	}
	rep, err := cl.GC(ctx, req)
	if err != nil {
		return fail("image gc", err)
	}
	if asJSON {
		return writeJSON(a.stdout, rep)
	}
	verb := "freed"
	if dry {
		verb = "would free"
	}
	fmt.Fprintf(a.stdout, "%s %s: %s and %s; kept %s referenced by %s, and %s too young to judge\n",
		verb, humanBytes(uint64(rep.BytesFreed)), plural(rep.DeletedBlobs, "blob"), plural(rep.DeletedManifests, "version"),
		plural(rep.Blobs, "blob"), plural(rep.Versions, "version"), plural(rep.KeptYoung, "object"))
	return nil
}
