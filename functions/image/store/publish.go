package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/herd-hpc/herd/functions/image/kernel"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/newc"
)

// ErrNoKernel is returned for publishing an image version without a kernel.
var ErrNoKernel = errors.New("the image has no kernel (no /boot/vmlinuz-<version>, no /lib/modules/<version>/vmlinuz)")

// publishWorkers is how many module files Publish reads at once.
const publishWorkers = 8

// Published says what Publish wrote.
type Published struct {
	Image, Branch string
	Manifest      manifest.Digest // the version published
	Default       string          // the version under the keys "kernel" and "modules"
	Kernels       []PublishedKernel
}

// PublishedKernel is one kernel's boot files.
type PublishedKernel struct {
	kernel.Kernel
	KernelKey   string // VersionArtifactKey(image, branch, version, "kernel")
	ModulesKey  string // VersionArtifactKey(image, branch, version, "modules")
	ModulesSize int64  // bytes of the gzip'd archive
	Modules     []string
}

// Publish writes the boot files of the version branch points at to the
// object store, for the provisioner to boot: for every kernel the image has,
//
//	images/<image>/<branch>/versions/<version>/kernel   the kernel image
//	images/<image>/<branch>/versions/<version>/modules  a gzip'd newc cpio archive
//	                                                    of usr/lib/modules/<version>/
//	                                                    holding what
//	                                                    kernel.SelectModules picks
//
// and for the default (newest) kernel the same as images/<image>/<branch>/kernel
// and .../modules. The versions sit apart from those two, not under
// "kernel/<version>": MinIO cannot hold an object whose key is also the
// prefix of others (it lists only one of them).
// The boot script appends the modules archive to bootenv's initramfs, so the
// provisioner can load the drivers of this very kernel. The archive is
// deterministic (sorted, mtime 0, owner 0), so publishing the same version
// again writes the same bytes. An image without a kernel is an error
// wrapping ErrNoKernel.
func (s *Store) Publish(ctx context.Context, image, branch string) (Published, error) {
	p, err := s.publish(ctx, image, branch)
	if err != nil {
		return p, fmt.Errorf("publish boot files of image %q branch %q: %w", image, branch, err)
	}
	return p, nil
}

func (s *Store) publish(ctx context.Context, image, branch string) (Published, error) {
	p := Published{Image: image, Branch: branch}
	d, err := s.Branch(ctx, image, branch)
	if err != nil {
		return p, err
	}
	p.Manifest = d
	m, err := s.Manifest(ctx, d)
	if err != nil {
		return p, err
	}
	ks := kernel.Find(m)
	if len(ks) == 0 {
		return p, fmt.Errorf("version %s: %w", d, ErrNoKernel)
	}
	p.Default = ks[0].Version
	t := kernel.NewTree(m)
	for i, k := range ks {
		pk := PublishedKernel{
			Kernel:     k,
			KernelKey:  VersionArtifactKey(image, branch, k.Version, "kernel"),
			ModulesKey: VersionArtifactKey(image, branch, k.Version, "modules"),
		}
		img, err := s.fileContent(ctx, t, k.File)
		if err != nil {
			return p, fmt.Errorf("kernel %s: %w", k.Version, err)
		}
		archive, mods, err := s.modulesArchive(ctx, m, t, k)
		if err != nil {
			return p, fmt.Errorf("modules of kernel %s: %w", k.Version, err)
		}
		pk.ModulesSize, pk.Modules = int64(len(archive)), mods
		keys := [][2]string{{pk.KernelKey, pk.ModulesKey}}
		if i == 0 {
			keys = append(keys, [2]string{ArtifactKey(image, branch, "kernel"), ArtifactKey(image, branch, "modules")})
		}
		for _, kk := range keys {
			if err := s.obj.Put(ctx, kk[0], bytes.NewReader(img), int64(len(img)), "application/octet-stream"); err != nil {
				return p, err
			}
			if err := s.obj.Put(ctx, kk[1], bytes.NewReader(archive), int64(len(archive)), "application/gzip"); err != nil {
				return p, err
			}
		}
		p.Kernels = append(p.Kernels, pk)
	}
	return p, nil
}

// fileContent reads the content of the regular file at manifest path p
// (resolved through symlinks and hardlinks).
func (s *Store) fileContent(ctx context.Context, t *kernel.Tree, p string) ([]byte, error) {
	_, e, ok := t.Resolve(p)
	if !ok || e.Type != manifest.TypeFile {
		return nil, fmt.Errorf("%q is not a regular file in the image", p)
	}
	var buf bytes.Buffer
	buf.Grow(int(e.Size))
	switch {
	case e.Size == 0:
	case len(e.Chunks) == 0:
		if err := s.readBlob(ctx, e.Digest, &buf, e.Size); err != nil {
			return nil, err
		}
	default:
		for _, c := range e.Chunks {
			if err := s.readBlob(ctx, c.Digest, &buf, c.Size); err != nil {
				return nil, err
			}
		}
	}
	return buf.Bytes(), nil
}

// modulesArchive builds the gzip'd cpio of k's provisioner modules and
// returns it with the files it holds (relative to the modules directory).
func (s *Store) modulesArchive(ctx context.Context, m *manifest.Manifest, t *kernel.Tree, k kernel.Kernel) ([]byte, []string, error) {
	var dep []byte
	if k.ModulesDir != "" {
		if _, e, ok := t.Resolve(k.ModulesDir + "/modules.dep"); ok && e.Type == manifest.TypeFile {
			var err error
			if dep, err = s.fileContent(ctx, t, k.ModulesDir+"/modules.dep"); err != nil {
				return nil, nil, err
			}
		}
	}
	rels := kernel.SelectModules(m, k, dep)
	contents, err := s.fileContents(ctx, t, k.ModulesDir, rels)
	if err != nil {
		return nil, nil, err
	}
	// Every directory an entry needs comes first: the kernel's unpacker
	// creates no parents. Sorted paths put a directory before its contents.
	// The modules go under usr/: bootenv's initramfs is usr-merged, and its
	// lib link, unpacked after this archive, must not find a lib
	// directory in its place.
	root := "usr/lib/modules/" + k.Version
	files := make(map[string][]byte, len(rels))
	dirs := map[string]bool{"usr": true, "usr/lib": true, "usr/lib/modules": true, root: true}
	for i, rel := range rels {
		name := root + "/" + rel
		files[name] = contents[i]
		for d := path.Dir(name); d != root; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	names := make([]string, 0, len(files)+len(dirs))
	for n := range files {
		names = append(names, n)
	}
	for n := range dirs {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // no name, mtime 0: the same input gives the same bytes
	cw := newc.NewWriter(zw)
	for _, n := range names {
		if dirs[n] {
			cw.Dir(n, newcDir)
		} else {
			cw.File(n, newcFile, files[n])
		}
	}
	if err := cw.Close(); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), rels, nil
}

// fileContents reads the files dir/rel for every rel, a few at a time.
func (s *Store) fileContents(ctx context.Context, t *kernel.Tree, dir string, rels []string) ([][]byte, error) {
	out := make([][]byte, len(rels))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range publishWorkers {
		wg.Go(func() {
			for i := range jobs {
				b, err := s.fileContent(ctx, t, dir+"/"+rels[i])
				if err != nil {
					cancel(fmt.Errorf("%s: %w", rels[i], err))
					continue
				}
				out[i] = b
			}
		})
	}
	for i := range rels {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return out, context.Cause(ctx)
}

// Unpublish removes every boot file published for a branch (after the
// branch is deleted or renamed, or its image renamed): nodes must not boot
// files of a branch that no longer exists under that name.
func (s *Store) Unpublish(ctx context.Context, image, branch string) error {
	prefix := ArtifactKey(image, branch, "")
	for o, err := range s.obj.List(ctx, prefix) {
		if err != nil {
			return fmt.Errorf("unpublish image %q branch %q: %w", image, branch, err)
		}
		if err := s.obj.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("unpublish image %q branch %q: %w", image, branch, err)
		}
	}
	return nil
}

// MovePublished publishes a branch's boot files under its (new) name
// (toImage empty: nowhere) and removes them under the old one (fromImage
// empty: none), after a branch or image was created, renamed, rolled back
// or deleted. A version without a kernel publishes nothing and is no
// error: images often get one later.
func (s *Store) MovePublished(ctx context.Context, fromImage, fromBranch, toImage, toBranch string) error {
	var errs []error
	if toImage != "" {
		if _, err := s.Publish(ctx, toImage, toBranch); err != nil && !errors.Is(err, ErrNoKernel) {
			errs = append(errs, err)
		}
	}
	if fromImage != "" {
		if err := s.Unpublish(ctx, fromImage, fromBranch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
