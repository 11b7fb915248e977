// Command herd is the herd admin command line; see edge/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/herd-hpc/herd/edge/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
