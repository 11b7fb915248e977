// Command herd-allinone is `make run`: functions, edge and web page in one
// process for a laptop or a first look. Without -redis-url it brings its
// own embedded Redis and S3 servers with their state under -dir, so nothing
// needs installing; `make dev` points it at real Redis and MinIO instead.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/edge/daemon"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/ui"
	"github.com/herd-hpc/herd/localdev/embedded"
)

type options struct {
	dir, listen, tftpListen, tftpRoot                        string
	redisURL, s3Endpoint, s3AccessKey, s3SecretKey, s3Bucket string
	dhcpListen, dhcpSubnet, dhcpPool                         string
	verbose                                                  bool
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", ".herd", "state folder of the embedded servers")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP address of the edge (the web page and API)")
	flag.StringVar(&o.tftpListen, "tftp", "127.0.0.1:6969", "TFTP address; empty turns TFTP off")
	flag.StringVar(&o.tftpRoot, "tftp-root", "", "folder TFTP serves read-only (default: DIR/tftp, filled with Debian's iPXE binaries)")
	flag.StringVar(&o.redisURL, "redis-url", "", "use this Redis instead of the embedded one")
	flag.StringVar(&o.s3Endpoint, "s3-endpoint", "", "use this S3 service (host:port) instead of the embedded one")
	flag.StringVar(&o.s3AccessKey, "s3-access-key", "", "S3 access key")
	flag.StringVar(&o.s3SecretKey, "s3-secret-key", "", "S3 secret key")
	flag.StringVar(&o.s3Bucket, "s3-bucket", "herd", "S3 bucket")
	flag.StringVar(&o.dhcpListen, "dhcp-listen", "", "answer DHCP (relayed, e.g. from herd-sim) on this address:port; empty: DHCP off")
	flag.StringVar(&o.dhcpSubnet, "dhcp-subnet", "10.0.0.0/16", "the cluster subnet DHCP serves")
	flag.StringVar(&o.dhcpPool, "dhcp-pool", "10.0.255.1-10.0.255.250", "discovery pool for unknown MACs")
	flag.BoolVar(&o.verbose, "v", false, "log every part's messages, not only warnings")
	flag.Parse()
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "herd-allinone:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer, log *slog.Logger) error {
	cfg := server.Defaults()
	cfg.S3Bucket = o.s3Bucket
	if o.redisURL == "" {
		emb, err := embedded.Start(ctx, o.dir, log)
		if err != nil {
			return err
		}
		defer emb.Close()
		cfg.RedisURL = emb.RedisURL()
		s3 := emb.S3()
		cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket
	} else {
		cfg.RedisURL = o.redisURL
		cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey = o.s3Endpoint, o.s3AccessKey, o.s3SecretKey
	}
	// The edge and functions share a secret made fresh for this run.
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	cfg.EdgeSecret = hex.EncodeToString(b)

	fns, err := server.Open(ctx, cfg, ui.NewHandler, log)
	if err != nil {
		return err
	}
	defer fns.Close()
	if err := firstAdmin(ctx, fns, o.dir, out); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fsrv := &http.Server{Handler: fns.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ferr := make(chan error, 1)
	go func() { ferr <- fsrv.Serve(ln) }()
	defer func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fsrv.Shutdown(shut)
	}()

	if o.tftpRoot == "" {
		o.tftpRoot = filepath.Join(o.dir, "tftp")
		if err := stageIPXE("/usr/lib/ipxe", o.tftpRoot); err != nil {
			return err
		}
	}
	ecfg := config.Edge{
		Listen:       o.listen,
		FunctionsURL: &url.URL{Scheme: "http", Host: ln.Addr().String()},
		Secret:       config.Secret(cfg.EdgeSecret),
		TFTPListen:   o.tftpListen,
		TFTPRoot:     o.tftpRoot,
	}
	if o.dhcpListen != "" {
		if err := dhcpConfig(&ecfg, o); err != nil {
			return err
		}
	}
	edge, err := daemon.New(ecfg, log)
	if err != nil {
		return err
	}
	addrs, err := edge.Listen(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "herd is running: http://%s/  (API: http://%s/api/v1, CLI: herd login --server http://%s)\n", addrs.HTTP, addrs.HTTP, addrs.HTTP)
	if addrs.TFTP != nil {
		fmt.Fprintf(out, "TFTP on %s serving %s\n", addrs.TFTP, o.tftpRoot)
	}
	if addrs.DHCP != nil {
		fmt.Fprintf(out, "DHCP answers relayed requests on %s for %s\n", addrs.DHCP, o.dhcpSubnet)
	}
	fmt.Fprintln(out, "Stop with Ctrl-C.")
	eerr := make(chan error, 1)
	go func() { eerr <- edge.Run(ctx) }()
	select {
	case err := <-eerr:
		return err
	case err := <-ferr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("functions: %w", err)
		}
		return nil
	}
}

// firstAdmin makes the first account on an empty herd and tells the user
// its password, which is also kept in a 0600 file under dir so a later
// start can remind them.
func firstAdmin(ctx context.Context, fns *server.Functions, dir string, out io.Writer) error {
	file := filepath.Join(dir, "initial-admin-password")
	user, pw, created, err := fns.Auth.EnsureFirstAdmin(ctx, "localhost")
	if err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}
	if !created {
		if b, err := os.ReadFile(file); err == nil {
			fmt.Fprintf(out, "first admin (unless changed since): %s", b)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(user+" "+pw+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "created the first admin: user %s, password %s (also in %s)\n", user, pw, file)
	return nil
}

// dhcpConfig turns on the edge's DHCP for a simulated rack: relayed
// requests on a loopback port, boot scripts from the edge's HTTP address.
func dhcpConfig(c *config.Edge, o options) error {
	subnet, err := netip.ParsePrefix(o.dhcpSubnet)
	if err != nil {
		return fmt.Errorf("-dhcp-subnet: %w", err)
	}
	lo, hi, ok := strings.Cut(o.dhcpPool, "-")
	start, err1 := netip.ParseAddr(lo)
	end, err2 := netip.ParseAddr(hi)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("-dhcp-pool %q: want start-end, e.g. 10.0.255.1-10.0.255.250", o.dhcpPool)
	}
	c.DHCPListen = o.dhcpListen
	c.DHCPSubnet = subnet.Masked()
	c.DHCPDiscoveryPool = config.AddrRange{Start: start, End: end}
	c.BootURL = &url.URL{Scheme: "http", Host: o.listen}
	return c.Validate()
}

// stageIPXE copies Debian's iPXE binaries into the TFTP root. Some of
// them are symlinks into /boot, which TFTP rightly refuses to follow out of
// its root; copies are served like any file. Missing files are skipped:
// without the ipxe package TFTP simply has nothing to serve yet.
func stageIPXE(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	// The iPXE binaries DHCP hands out by client architecture.
	for _, name := range []string{"undionly.kpxe", "undionly.kkpxe", "snponly.efi", "ipxe.efi"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			continue
		}
		tmp := filepath.Join(to, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return nil
}
