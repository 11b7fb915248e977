// Command bootenv-mkinitramfs writes bootenv's initramfs: a static /init
// program, the disk tools from this machine's Debian packages with their
// libraries, and the disk modules of a kernel. It is the build half of
// `herd bootenv build`, which also publishes the result.
//
//	bootenv-mkinitramfs -init bin/bootenv -modules /lib/modules/6.1.0-56-amd64 -o initrd.gz
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/herd-hpc/herd/bootenv/initramfs"
)

func main() {
	init := flag.String("init", "", "static program to run as /init")
	modules := flag.String("modules", "", "lib/modules/<version> of the kernel it boots with")
	extra := flag.String("extra-modules", "", "more modules, comma separated")
	out := flag.String("o", "initrd.gz", "output file")
	flag.Parse()
	if err := run(context.Background(), *init, *modules, *extra, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bootenv-mkinitramfs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, init, modules, extra, out string) error {
	if init == "" || modules == "" {
		return fmt.Errorf("-init and -modules are required")
	}
	prog, err := os.ReadFile(init)
	if err != nil {
		return err
	}
	var more []string
	if extra != "" {
		more = strings.Split(extra, ",")
	}
	spec := initramfs.Bootenv(prog, nil, modules, more...)
	var buf bytes.Buffer
	if err := initramfs.Build(ctx, spec, &buf); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, sha256 %x\n", out, buf.Len(), sha256.Sum256(buf.Bytes()))
	return nil
}
