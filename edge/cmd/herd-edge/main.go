// Command herd-edge runs the edge on the appliance: the HTTP(S) front door
// that forwards every request to herd functions, and TFTP for PXE firmware.
//
//	herd-edge --config /etc/herd/herd.ini [--log-level info]
//
// Settings come from the [edge] section of the config file; HERD_EDGE_<KEY>
// environment variables override them, and HERD_EDGE_SECRET gives the
// shared secret itself instead of edge_secret_file. SIGINT or SIGTERM shuts
// the edge down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/edge/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer, env config.LookupEnv) int {
	fs := flag.NewFlagSet("herd-edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/herd/herd.ini", "herd config file; the edge reads its [edge] section")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "least important log level shown: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herd-edge: unexpected arguments %q\n", fs.Args())
		return 2
	}

	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.Load(*configPath, env)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	edge, err := daemon.New(cfg, log)
	if err != nil {
		log.Error("cannot start the edge", "err", err)
		return 1
	}
	if err := edge.Run(ctx); err != nil {
		log.Error("edge failed", "err", err)
		return 1
	}
	return 0
}
