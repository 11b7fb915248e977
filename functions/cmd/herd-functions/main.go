// Command herd-functions serves every herd function on one port: the
// appliance's and development's way of running what Lambda runs in AWS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/ui"
)

func main() {
	configPath := flag.String("config", "/etc/herd/herd.ini", "INI configuration file")
	adminFile := flag.String("initial-admin-file", "/var/lib/herd/initial-admin-password",
		"where the first admin's password is written when no account exists yet")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*configPath, *adminFile, log); err != nil {
		log.Error("herd-functions stopped", "err", err)
		os.Exit(1)
	}
}

func run(configPath, adminFile string, log *slog.Logger) error {
	cfg, err := server.LoadConfig(configPath, os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fns, err := server.Open(ctx, cfg, ui.NewHandler, log)
	if err != nil {
		return err
	}
	defer fns.Close()
	user, pw, created, err := fns.Auth.EnsureFirstAdmin(ctx, "localhost")
	if err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}
	if created {
		// The password goes to a root-only file, never to the log.
		if err := os.MkdirAll(filepath.Dir(adminFile), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(adminFile, []byte(user+" "+pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("write first admin password: %w", err)
		}
		log.Info("created the first admin; its password is in the file", "user", user, "file", adminFile)
	}
	srv := &http.Server{Addr: cfg.Listen, Handler: fns.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("herd-functions listening", "addr", cfg.Listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
