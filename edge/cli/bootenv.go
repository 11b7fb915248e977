package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/edge/pki"
)

func (a *app) bootenvCommand() *command {
	return &command{
		name: "bootenv", summary: "build and publish the provisioner nodes boot",
		help: `bootenv is the small program every node runs from an initramfs on every
boot: it checks disks and image against what herd says and fixes only
what drifted, then starts the node's own system. One bootenv serves every
image and kernel: the boot script loads the image's kernel modules beside
it.`,
		subs: []*command{
			{
				name: "build", maxArgs: 0, summary: "build bootenv's initramfs and publish it",
				help: `Builds the initramfs from the static bootenv program (--init, default the
bootenv binary installed beside herd), this machine's disk tools (sgdisk,
mdadm, lvm, mkfs.*, from Debian packages) with their libraries, and the
cluster PKI's CA and node certificate (--pki, default /etc/herd/pki, when
it exists), then publishes it: nodes boot it from their next boot on. The
same inputs give the same bytes. -o writes it to a file instead.`,
				flags: func(fs *flag.FlagSet) action {
					init := fs.String("init", "", "the static bootenv `PROGRAM` (default: bootenv beside this herd)")
					pkiDir := fs.String("pki", "/etc/herd/pki", "cluster PKI `DIR` from herd pki init; empty for none")
					out := fs.String("o", "", "write the initramfs to `FILE` instead of publishing it")
					return func(ctx context.Context, _ []string) error { return a.bootenvBuild(ctx, *init, *pkiDir, *out) }
				},
			},
			{
				name: "show", maxArgs: 0, summary: "show the published bootenv",
				flags: func(fs *flag.FlagSet) action {
					asJSON := fs.Bool("json", false, "print JSON")
					return func(ctx context.Context, _ []string) error { return a.bootenvShow(ctx, *asJSON) }
				},
			},
		},
	}
}

// defaultBootenvProgram is the bootenv binary installed beside herd.
func defaultBootenvProgram() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(exe), "bootenv"), nil
}

// nodePKIFiles reads what a node needs of the cluster PKI: the CA to trust
// the edge by and the node certificate to prove itself with. A missing
// directory means no PKI (nodes then use the boot token alone).
func nodePKIFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	if dir == "" {
		return files, nil
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CACert)); errors.Is(err, os.ErrNotExist) {
		return files, nil
	}
	for _, name := range []string{pki.CACert, pki.NodeCert, pki.NodeKey} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("cluster PKI: %w", err)
		}
		files[initramfs.PKIDir+"/"+name] = b
	}
	return files, nil
}

func (a *app) bootenvBuild(ctx context.Context, init, pkiDir, out string) error {
	const cmd = "bootenv build"
	if init == "" {
		var err error
		if init, err = defaultBootenvProgram(); err != nil {
			return fail(cmd, err)
		}
	}
	prog, err := os.ReadFile(init)
	if err != nil {
		return fmt.Errorf("%s: read the bootenv program: %w (build it with make build, or name it with --init)", cmd, err)
	}
	files, err := nodePKIFiles(pkiDir)
	if err != nil {
		return fail(cmd, err)
	}
	var buf bytes.Buffer
	if err := initramfs.Build(ctx, initramfs.Bootenv(prog, files, ""), &buf); err != nil {
		return fail(cmd, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := hex.EncodeToString(sum[:])
	pkiNote := "without the cluster PKI"
	if len(files) > 0 {
		pkiNote = "with the cluster PKI of " + pkiDir
	}
	if out != "" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			return fail(cmd, err)
		}
		fmt.Fprintf(a.stdout, "wrote %s: %s, sha256 %s (%s)\n", out, humanBytes(uint64(buf.Len())), digest, pkiNote)
		return nil
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	size := buf.Len()
	if _, err := cl.PublishBootenv(ctx, &buf, int64(size), digest); err != nil {
		return fail("publish bootenv", err)
	}
	fmt.Fprintf(a.stdout, "published bootenv: %s, sha256 %s (%s)\n", humanBytes(uint64(size)), digest, pkiNote)
	return nil
}

func (a *app) bootenvShow(ctx context.Context, asJSON bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	info, err := cl.Bootenv(ctx)
	if err != nil {
		return fail("bootenv show", err)
	}
	if asJSON {
		return writeJSON(a.stdout, info)
	}
	d := newDetails(a.stdout)
	d.add("Size", humanBytes(uint64(info.Size)))
	d.add("Published", formatTime(info.Modified))
	return d.flush()
}
