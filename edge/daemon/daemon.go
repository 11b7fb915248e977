// Package daemon wires the edge's parts together and runs them: the HTTP(S)
// front door that forwards to functions, TFTP and DHCP. herd-edge's main and
// the all-in-one runner both start the edge through it.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/edge/dhcp"
	"github.com/herd-hpc/herd/edge/pki"
	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/eaton"
	"github.com/herd-hpc/herd/edge/proxy"
	"github.com/herd-hpc/herd/edge/tftp"
	"github.com/herd-hpc/herd/functions/client"
)

// ShutdownGrace is how long requests in flight may take to finish after
// shutdown begins; streams still open then are cut.
const ShutdownGrace = 5 * time.Second

// Addrs are the addresses the edge actually listens on.
type Addrs struct {
	HTTP net.Addr
	TFTP net.Addr // nil when TFTP is off
	// DHCP is the (first) DHCP socket; DHCPProxyPXE the (first) proxyDHCP
	// boot-server socket, port 4011 on interfaces. Nil when off.
	DHCP         net.Addr
	DHCPProxyPXE net.Addr
}

// Edge is one running edge.
type Edge struct {
	cfg   config.Edge
	log   *slog.Logger
	proxy *proxy.Proxy
	tftp  *tftp.Server // nil when TFTP is off
	tls   *tls.Config  // nil for plain HTTP
	dhcp  *dhcp.Server // nil when DHCP is off
	// reservations feeds DHCP the reservation table; nil when DHCP is off
	// or in proxy mode.
	reservations *dhcp.Reservations

	// power runs the power jobs this edge claims; nil when power is off.
	power *power.Worker
	pdus  *power.PDUs

	httpLn   net.Listener
	tftpConn *net.UDPConn
}

// New checks cfg and prepares an Edge; nothing listens yet. Certificate and
// key are loaded here so a bad pair fails before anything starts.
func New(cfg config.Edge, log *slog.Logger) (*Edge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge config: %w", err)
	}
	e := &Edge{cfg: cfg, log: log}
	pcfg := proxy.Config{Upstream: cfg.FunctionsURL, Secret: string(cfg.Secret)}
	if cfg.DHCP() {
		if err := e.newDHCP(); err != nil {
			return nil, err
		}
		// Requests from addresses DHCP knows carry the client's MAC.
		pcfg.ClientMAC = e.dhcp.MACFor
		pcfg.ClientVendorClass = e.dhcp.VendorClassOf
	}
	p, err := proxy.New(pcfg, log.With("part", "proxy"))
	if err != nil {
		return nil, err
	}
	e.proxy = p
	switch {
	case cfg.PKIDir != "":
		t, err := pki.LoadServer(cfg.PKIDir)
		if err != nil {
			return nil, fmt.Errorf("load the cluster PKI from %s: %w", cfg.PKIDir, err)
		}
		e.tls = t
	case cfg.TLS():
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		e.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if !cfg.PowerOff {
		e.newPower()
	}
	if cfg.TFTP() {
		s, err := tftp.New(tftp.Config{Root: cfg.TFTPRoot}, log.With("part", "tftp"))
		if err != nil {
			return nil, err
		}
		e.tftp = s
	}
	return e, nil
}

// newPower prepares the worker that claims power jobs from functions and
// runs them against BMCs and PDUs.
func (e *Edge) newPower() {
	// The claim long-polls for up to a minute; the client must outwait it.
	hc := &http.Client{Timeout: 90 * time.Second}
	q := client.NewPowerQueue(e.cfg.FunctionsURL.String(), hc, string(e.cfg.Secret))
	q.Name = e.cfg.Listen
	opts := power.PDUOptions{Timeout: e.cfg.PowerTimeout}
	e.pdus = power.NewPDUs(power.PDUDrivers{eaton.Driver: eaton.NewPDU}, opts)
	e.power = power.NewWorker(q, power.NewBMC(power.BMCOptions{Timeout: e.cfg.PowerTimeout}), e.pdus,
		power.WorkerOptions{Parallelism: e.cfg.PowerParallelism}, e.log.With("part", "power"))
}

// newDHCP prepares the DHCP server and, in server mode, the reservation
// table it answers from.
func (e *Edge) newDHCP() error {
	cfg, log := e.cfg, e.log.With("part", "dhcp")
	dc := dhcp.Config{
		Policy: dhcp.Policy{
			Subnet:         cfg.DHCPSubnet,
			Router:         cfg.DHCPRouter,
			DNS:            cfg.DHCPDNS,
			Domain:         cfg.DHCPDomain,
			Lease:          cfg.DHCPLease,
			DiscoveryLease: cfg.DHCPDiscoveryLease,
			BIOSFile:       cfg.DHCPBIOSFile,
			UEFIFile:       cfg.DHCPUEFIFile,
			ARMFile:        cfg.DHCPARMFile,
		},
		PoolStart:  cfg.DHCPDiscoveryPool.Start,
		PoolEnd:    cfg.DHCPDiscoveryPool.End,
		Interfaces: cfg.DHCPInterfaces,
		Listen:     cfg.DHCPListen,
		ServerAddr: cfg.DHCPServerAddress,
	}
	if cfg.BootURL != nil {
		dc.BootURL = cfg.BootURL.String()
	} else if _, port, err := net.SplitHostPort(cfg.Listen); err == nil {
		dc.BootPort, _ = strconv.Atoi(port)
	}
	var src dhcp.TableSource
	if cfg.DHCPProxy() {
		dc.Policy.Mode = dhcp.ModeProxy
	} else {
		r, err := dhcp.NewReservations(dhcp.ReservationsConfig{
			FunctionsURL: cfg.FunctionsURL,
			Secret:       string(cfg.Secret),
			Client:       &http.Client{Transport: proxy.NewTransport()},
		}, log)
		if err != nil {
			return err
		}
		e.reservations, src = r, r
	}
	s, err := dhcp.New(dc, src, log)
	if err != nil {
		return err
	}
	e.dhcp = s
	return nil
}

// Listen binds the HTTP, TFTP and DHCP sockets and returns their addresses, so a
// caller that asked for port 0 learns the ports before Run. Calling it is
// optional: Run listens itself if needed. Call Listen and Run from one
// goroutine, or start Run after Listen has returned.
func (e *Edge) Listen(ctx context.Context) (Addrs, error) {
	if e.httpLn != nil {
		return e.addrs(), nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Listen)
	if err != nil {
		return Addrs{}, fmt.Errorf("listen for HTTP on %s: %w", e.cfg.Listen, err)
	}
	if e.tftp != nil {
		conn, err := tftp.Listen(ctx, e.cfg.TFTPListen)
		if err != nil {
			ln.Close()
			return Addrs{}, err
		}
		e.tftpConn = conn
	}
	if e.dhcp != nil {
		if err := e.dhcp.Listen(ctx); err != nil {
			ln.Close()
			if e.tftpConn != nil {
				e.tftpConn.Close()
				e.tftpConn = nil
			}
			return Addrs{}, err
		}
	}
	e.httpLn = ln
	return e.addrs(), nil
}

func (e *Edge) addrs() Addrs {
	a := Addrs{HTTP: e.httpLn.Addr()}
	if e.tftpConn != nil {
		a.TFTP = e.tftpConn.LocalAddr()
	}
	if e.dhcp != nil {
		d, p := e.dhcp.Addrs()
		if len(d) > 0 {
			a.DHCP = d[0]
		}
		if len(p) > 0 {
			a.DHCPProxyPXE = p[0]
		}
	}
	return a
}

// Handler is the edge's HTTP handler: /edge/... is answered by the edge
// itself, everything else goes to functions.
func (e *Edge) Handler() http.Handler {
	health := e.proxy.Health()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/edge/health":
			health.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/edge/"):
			http.NotFound(w, r)
		default:
			e.proxy.ServeHTTP(w, r)
		}
	})
}

// Run serves until ctx ends or a part fails, then shuts everything down.
// It returns nil after a shutdown asked for by ctx.
func (e *Edge) Run(ctx context.Context) error {
	addrs, err := e.Listen(ctx)
	if err != nil {
		return err
	}

	// Requests get a context of their own, cancelled only once the grace
	// period is over, so streams end then rather than with ctx.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler:           e.Handler(),
		TLSConfig:         e.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		failure error
	)
	fail := func(err error) {
		errMu.Lock()
		if failure == nil {
			failure = err
		}
		errMu.Unlock()
		stop()
	}

	e.log.Info("edge listening", "http", addrs.HTTP.String(), "tls", e.tls != nil,
		"functions", e.cfg.FunctionsURL.Redacted())
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		if e.tls != nil {
			err = srv.ServeTLS(e.httpLn, "", "")
		} else {
			err = srv.Serve(e.httpLn)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("serve HTTP on %s: %w", addrs.HTTP, err))
		}
	}()

	if e.tftp != nil {
		e.log.Info("TFTP listening", "tftp", addrs.TFTP.String(), "root", e.cfg.TFTPRoot)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.tftp.Serve(runCtx, e.tftpConn); err != nil {
				fail(err)
			}
		}()
	} else {
		e.log.Info("TFTP off: no tftp_listen configured")
	}

	if e.dhcp != nil {
		attrs := []any{"dhcp", addrs.DHCP.String(), "mode", e.dhcp.Mode().String()}
		if len(e.cfg.DHCPInterfaces) > 0 {
			attrs = append(attrs, "interfaces", e.cfg.DHCPInterfaces)
		}
		if addrs.DHCPProxyPXE != nil {
			attrs = append(attrs, "pxe", addrs.DHCPProxyPXE.String())
		}
		e.log.Info("DHCP listening", attrs...)
		if e.reservations != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.reservations.Run(runCtx)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.dhcp.Serve(runCtx); err != nil {
				fail(err)
			}
		}()
	} else {
		e.log.Info("DHCP off: no interfaces configured")
	}

	if e.power != nil {
		e.log.Info("power jobs: claiming from functions", "parallelism", e.cfg.PowerParallelism)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Run returns once runCtx ends and the tasks it started are
			// finished and reported; then the PDU sessions are logged out.
			if err := e.power.Run(runCtx); err != nil && runCtx.Err() == nil {
				fail(fmt.Errorf("power worker: %w", err))
			}
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
			defer cancel()
			if err := e.pdus.Close(closeCtx); err != nil {
				e.log.Warn("PDU sessions not closed", "err", err)
			}
		}()
	} else {
		e.log.Info("power off: this edge takes no power jobs")
	}

	<-runCtx.Done()
	e.log.Info("edge shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		e.log.Warn("requests still open after the grace period; closing them", "grace", ShutdownGrace)
		cancelRequests()
		srv.Close()
	}
	wg.Wait()
	e.log.Info("edge stopped")
	return failure
}
