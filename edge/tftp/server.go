// Package tftp serves files read-only over TFTP (RFC 1350, with the blksize
// and tsize options of RFC 2348 and 2349) from one root directory: the iPXE
// binaries that PXE firmware loads first.
package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// Defaults for Config. One second between retransmissions is tftpd-hpa's
// default too; a silent client is given up after about six seconds.
const (
	DefaultTimeout = time.Second
	DefaultRetries = 5
)

// Config says what to serve and how patiently.
type Config struct {
	// Root is the directory served. It may not exist yet: requests are
	// refused until it does.
	Root string
	// Timeout is how long to wait for an acknowledgement before sending a
	// packet again; 0 means DefaultTimeout.
	Timeout time.Duration
	// Retries is how often a packet is sent again; 0 means DefaultRetries.
	Retries int
	// MaxBlockSize caps the block size a client may negotiate (513 to
	// 65464); 0 leaves only the cap of the interface's MTU.
	MaxBlockSize int
}

// Server answers TFTP read requests from Config.Root and refuses writes.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Server.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("tftp: no root directory")
	}
	if cfg.MaxBlockSize != 0 && (cfg.MaxBlockSize <= 512 || cfg.MaxBlockSize > 65464) {
		return nil, fmt.Errorf("tftp: max block size %d is outside 513..65464", cfg.MaxBlockSize)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries <= 0 {
		cfg.Retries = DefaultRetries
	}
	return &Server{cfg: cfg, log: log}, nil
}

// Listen opens the UDP socket for addr: IPv4 unless the host is an IPv6
// literal, because PXE firmware speaks IPv4 and an IPv4 socket lets the
// server learn which local address each request arrived on.
func Listen(ctx context.Context, addr string) (*net.UDPConn, error) {
	network := "udp4"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			network = "udp6"
		}
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen on %s: %w", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// Serve answers requests arriving on conn until ctx ends, then lets running
// transfers finish (or time out) and closes conn. It takes a *net.UDPConn
// because only on one can the server read each request's local address and
// interface MTU; without them pin/tftp caps blocks at 512 bytes.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	s.checkRoot()
	srv := pintftp.NewServer(s.read, s.write)
	srv.SetTimeout(s.cfg.Timeout)
	srv.SetRetries(s.cfg.Retries)
	// The timeout already paces retransmissions; no random extra wait.
	srv.SetBackoff(func(int) time.Duration { return 0 })
	if s.cfg.MaxBlockSize > 0 {
		srv.SetBlockSize(s.cfg.MaxBlockSize)
	}
	srv.SetHook(hook{log: s.log})

	served := make(chan struct{})
	shutDown := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-served:
		}
		srv.Shutdown()
		close(shutDown)
	}()
	err := srv.Serve(conn)
	close(served)
	<-shutDown
	conn.Close()
	if err != nil {
		return fmt.Errorf("tftp: serve on %s: %w", conn.LocalAddr(), err)
	}
	return nil
}

func (s *Server) checkRoot() {
	st, err := os.Stat(s.cfg.Root)
	switch {
	case err != nil:
		s.log.Warn("TFTP root unavailable; requests are refused until it exists", "root", s.cfg.Root, "err", err)
	case !st.IsDir():
		s.log.Warn("TFTP root is not a directory; requests are refused", "root", s.cfg.Root)
	default:
		s.warnEscapingLinks()
	}
}

// warnEscapingLinks names, once at start, the symlinks at the top of the
// root that lead out of it and so will be refused. Debian's ipxe package
// has two: /usr/lib/ipxe/ipxe.efi and ipxe.lkrn point into /boot.
func (s *Server) warnEscapingLinks() {
	root, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return
	}
	defer root.Close()
	entries, err := os.ReadDir(s.cfg.Root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if _, err := root.Stat(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("symlink leads out of the TFTP root and will be refused; copy the file into the root instead",
				"root", s.cfg.Root, "file", e.Name(), "err", err)
		}
	}
}

// read answers one read request.
func (s *Server) read(name string, rf io.ReaderFrom) error {
	client := peer(rf)
	start := time.Now()
	rel, err := CleanPath(name)
	if err != nil {
		return s.refuse(client, name, err.(Refusal), nil)
	}
	f, err := s.open(rel)
	if err != nil {
		var r refusal
		errors.As(err, &r)
		return s.refuse(client, name, r.reason, r.detail)
	}
	defer f.Close()
	n, err := rf.ReadFrom(f)
	if err != nil {
		// PXE ROMs often ask with tsize only to learn the size and then
		// abort; that ends up here too, so this is not a warning.
		s.log.Info("tftp transfer ended early", "client", client, "file", rel, "bytes", n, "err", err)
		return err
	}
	s.log.Info("tftp sent", "client", client, "file", rel, "bytes", n, "duration", time.Since(start).Round(time.Microsecond).String())
	return nil
}

// refusal carries the reason the client is told and the detail only the
// log gets.
type refusal struct {
	reason Refusal
	detail error
}

func (r refusal) Error() string { return r.reason.Error() }

// open opens rel inside the root. The root is opened anew for each request
// so a root that appears, or is replaced, after start is picked up; os.Root
// refuses ".." and symlinks that lead out of it.
func (s *Server) open(rel string) (*os.File, error) {
	root, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return nil, refusal{RefuseNotFound, err}
	}
	defer root.Close()
	// O_NONBLOCK so that a FIFO in the root cannot hang the request; it has
	// no effect on reading regular files.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, refusal{RefuseNotFound, nil}
	case errors.Is(err, fs.ErrPermission):
		return nil, refusal{RefuseDenied, err}
	case err != nil:
		// Among others: a symlink that leads out of the root.
		return nil, refusal{RefuseDenied, err}
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, refusal{RefuseDenied, err}
	case st.IsDir():
		f.Close()
		return nil, refusal{RefuseDirectory, nil}
	case !st.Mode().IsRegular():
		f.Close()
		return nil, refusal{RefuseNotFile, fmt.Errorf("mode %s", st.Mode())}
	}
	return f, nil
}

// write refuses every write request.
func (s *Server) write(name string, wt io.WriterTo) error {
	return s.refuse(peer(wt), name, RefuseWrite, nil)
}

// refuse logs one line for a refused request and returns the reason, which
// pin/tftp sends to the client in an error packet.
func (s *Server) refuse(client, name string, reason Refusal, detail error) error {
	level := slog.LevelWarn
	if reason == RefuseNotFound && detail == nil {
		level = slog.LevelInfo
	}
	attrs := []any{"client", client, "file", name, "reason", string(reason)}
	if detail != nil {
		attrs = append(attrs, "err", detail)
	}
	s.log.Log(context.Background(), level, "tftp request refused", attrs...)
	return reason
}

func peer(t any) string {
	if p, ok := t.(interface{ RemoteAddr() net.UDPAddr }); ok {
		a := p.RemoteAddr()
		return a.String()
	}
	return "unknown"
}

// hook reports what pin/tftp sees outside the handlers: packets on the
// listening port that start no transfer. Refusals and transfer failures
// are logged by the handlers, once.
type hook struct {
	log *slog.Logger
}

func (hook) OnSuccess(pintftp.TransferStats) {}

func (h hook) OnFailure(st pintftp.TransferStats, err error) {
	var r Refusal
	if st.Filename != "" || err == nil || errors.As(err, &r) {
		return
	}
	h.log.Info("tftp packet ignored", "err", err)
}
