package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Config is one DHCP service.
type Config struct {
	Policy Policy
	// PoolStart and PoolEnd bound the discovery pool, inclusive (server
	// mode).
	PoolStart, PoolEnd netip.Addr

	// Interfaces are served each with its own socket bound to the device
	// (port 67, and 4011 in proxy mode).
	Interfaces []string
	// Listen, host:port, replaces Interfaces with one socket bound to no
	// device: for tests and the simulator, which reach the edge as a relay
	// agent, unprivileged.
	Listen string
	// PXEListen is the proxyDHCP boot-server socket when Listen is used;
	// empty: Listen's host and a port the kernel picks.
	PXEListen string

	// ServerAddr is the edge's address as nodes reach it; invalid: each
	// interface's first IPv4 address, or Listen's host.
	ServerAddr netip.Addr
	// BootURL is how nodes reach the edge over HTTP, e.g.
	// http://10.0.0.1:8080; iPXE clients get BootURL/boot/ipxe. Empty:
	// http://<server address>:<BootPort>.
	BootURL  string
	BootPort int
}

// Server answers DHCP. Decisions are taken one at a time under a lock
// around the pool; each is a few map lookups, so the lock is never held
// across I/O.
type Server struct {
	cfg    Config
	policy Policy
	src    TableSource
	log    *slog.Logger

	mu   sync.Mutex
	pool *Pool // nil in proxy mode
	// vendor is the last vendor class (option 60) each MAC sent, for the
	// discovery entry functions record when the machine asks for its script.
	vendor map[MAC]string

	listeners []*listener
	stats     counters

	malformed   *throttle[netip.Addr]
	notices     *throttle[noticeKey]
	sendErrs    *throttle[netip.AddrPort]
	noTableSeen atomic.Bool
}

type listener struct {
	conn  *net.UDPConn
	via   Listener
	pxe   bool   // the proxyDHCP boot-server port
	iface string // "" for Listen
}

type noticeKey struct {
	mac    MAC
	notice string
}

// New checks cfg and prepares a server answering from src (which may be
// nil in proxy mode: proxy answers do not depend on the table).
func New(cfg Config, src TableSource, log *slog.Logger) (*Server, error) {
	s := &Server{
		cfg:       cfg,
		policy:    cfg.Policy.withDefaults(),
		src:       src,
		log:       log,
		malformed: newThrottle[netip.Addr](time.Minute, 4096),
		notices:   newThrottle[noticeKey](0, 4096),
		sendErrs:  newThrottle[netip.AddrPort](time.Minute, 1024),
		vendor:    map[MAC]string{},
	}
	if len(cfg.Interfaces) == 0 && cfg.Listen == "" {
		return nil, errors.New("dhcp: no interfaces and no listen address")
	}
	if len(cfg.Interfaces) > 0 && cfg.Listen != "" {
		return nil, errors.New("dhcp: give interfaces or a listen address, not both")
	}
	if cfg.BootURL != "" {
		u, err := url.Parse(cfg.BootURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("dhcp: boot URL %q is not an http(s) URL with a host", cfg.BootURL)
		}
	} else if cfg.BootPort <= 0 || cfg.BootPort > 65535 {
		return nil, errors.New("dhcp: no boot URL and no HTTP port to build one from")
	}
	if s.policy.Mode == ModeProxy {
		return s, nil
	}
	if src == nil {
		return nil, errors.New("dhcp: server mode needs a reservation table source")
	}
	p := s.policy.Subnet
	if !p.IsValid() || !p.Addr().Is4() {
		return nil, fmt.Errorf("dhcp: subnet %v is not an IPv4 prefix", p)
	}
	if !p.Contains(cfg.PoolStart) || !p.Contains(cfg.PoolEnd) {
		return nil, fmt.Errorf("dhcp: discovery pool %s-%s is not inside subnet %s", cfg.PoolStart, cfg.PoolEnd, p)
	}
	pool, err := NewPool(cfg.PoolStart, cfg.PoolEnd)
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	s.pool = pool
	return s, nil
}

// Listen binds the sockets. Calling it is optional (Serve listens if
// needed); it lets a caller learn the addresses first.
func (s *Server) Listen(ctx context.Context) error {
	if s.listeners != nil {
		return nil
	}
	var ls []*listener
	fail := func(err error) error {
		for _, l := range ls {
			l.conn.Close()
		}
		return err
	}
	if s.cfg.Listen != "" {
		l, err := s.listenAddr(ctx, s.cfg.Listen, false)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
		if s.policy.Mode == ModeProxy {
			addr := s.cfg.PXEListen
			if addr == "" {
				host, _, _ := net.SplitHostPort(s.cfg.Listen)
				addr = net.JoinHostPort(host, "0")
			}
			p, err := s.listenAddr(ctx, addr, true)
			if err != nil {
				return fail(err)
			}
			p.via = l.via
			ls = append(ls, p)
		}
	}
	for _, name := range s.cfg.Interfaces {
		via, err := s.interfaceVia(name)
		if err != nil {
			return fail(err)
		}
		ports := []int{ServerPort}
		if s.policy.Mode == ModeProxy {
			ports = append(ports, PXEPort)
		}
		for _, port := range ports {
			conn, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: port})
			if err != nil {
				return fail(fmt.Errorf("dhcp: listen on interface %s port %d: %w", name, port, err))
			}
			tune(conn)
			ls = append(ls, &listener{conn: conn, via: via, pxe: port == PXEPort, iface: name})
		}
	}
	s.listeners = ls
	return nil
}

// listenAddr binds one socket to no device, allowed to broadcast.
func (s *Server) listenAddr(ctx context.Context, addr string, pxe bool) (*listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s: %w", addr, err)
	}
	conn := pc.(*net.UDPConn)
	tune(conn)
	server := s.cfg.ServerAddr
	if !server.IsValid() {
		local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		if local.IsUnspecified() {
			conn.Close()
			return nil, fmt.Errorf("dhcp: listen address %s names no host: set the server address nodes reach", addr)
		}
		server = local
	}
	return &listener{conn: conn, via: s.via(server), pxe: pxe}, nil
}

// interfaceVia finds the server address of an interface.
func (s *Server) interfaceVia(name string) (Listener, error) {
	if s.cfg.ServerAddr.IsValid() {
		return s.via(s.cfg.ServerAddr), nil
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return Listener{}, fmt.Errorf("dhcp: interface %s: %w", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return Listener{}, fmt.Errorf("dhcp: addresses of interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return s.via(ip.Unmap()), nil
			}
		}
	}
	return Listener{}, fmt.Errorf("dhcp: interface %s has no IPv4 address; give it one or set the server address", name)
}

func (s *Server) via(server netip.Addr) Listener {
	base := s.cfg.BootURL
	if base == "" {
		base = "http://" + net.JoinHostPort(server.String(), strconv.Itoa(s.cfg.BootPort))
	}
	return Listener{Server: server, BootScriptURL: strings.TrimSuffix(base, "/") + "/boot/ipxe"}
}

// tune makes room for a boot storm's burst of packets.
func tune(c *net.UDPConn) { _ = c.SetReadBuffer(4 << 20) }

// Addrs are the bound addresses: the DHCP sockets first, then the
// proxyDHCP boot-server ones. Nil before Listen.
func (s *Server) Addrs() (dhcp, pxe []net.Addr) {
	for _, l := range s.listeners {
		if l.pxe {
			pxe = append(pxe, l.conn.LocalAddr())
		} else {
			dhcp = append(dhcp, l.conn.LocalAddr())
		}
	}
	return dhcp, pxe
}

// Mode is the server's mode.
func (s *Server) Mode() Mode { return s.policy.Mode }

// Serve answers until ctx ends; it returns nil then, or the first socket
// error that stopped it.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(s.listeners))
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(l); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	<-ctx.Done()
	for _, l := range s.listeners {
		l.conn.Close()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (s *Server) serve(l *listener) error {
	buf := make([]byte, 4096)
	for {
		n, peer, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dhcp: read on %s: %w", l.conn.LocalAddr(), err)
		}
		s.handle(l, buf[:n], netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port()), time.Now())
	}
}

// handle parses, decides, applies and answers one packet.
func (s *Server) handle(l *listener, b []byte, peer netip.AddrPort, now time.Time) {
	s.stats.received.Add(1)
	req, err := ParseRequest(b, peer, l.pxe)
	if err != nil {
		s.stats.dropped.Add(1)
		if s.malformed.allow(peer.Addr(), now) {
			s.log.Warn("malformed DHCP packet dropped (logged once a minute per source)", "from", peer.String(), "err", err)
		}
		return
	}
	if req.VendorClass != "" {
		s.rememberVendor(req.MAC, req.VendorClass)
	}
	d := s.decide(l, req, now)
	if d.Unknown && s.src != nil {
		s.src.Wake()
	}
	if d.Notice != "" && s.notices.allow(noticeKey{req.MAC, d.Notice}, now) {
		s.log.Warn(d.Notice, "mac", req.MAC.String())
	}
	if d.Reason == ReasonNoTable && !s.noTableSeen.Swap(true) {
		s.log.Warn("DHCP request before any reservation table was loaded; staying silent until functions answer", "mac", req.MAC.String())
	}
	if d.Reply == nil {
		s.stats.ignored.Add(1)
		s.log.Debug("DHCP no reply", "mac", req.MAC.String(), "type", req.Type.String(), "reason", string(d.Reason))
		return
	}
	// Counted before sending, so a client that has its answer sees it
	// counted.
	switch d.Reply.Type {
	case dhcpv4.MessageTypeOffer:
		s.stats.offers.Add(1)
	case dhcpv4.MessageTypeAck:
		s.stats.acks.Add(1)
		if d.Reply.Addr.IsValid() {
			s.stats.leases.Add(1)
		}
	case dhcpv4.MessageTypeNak:
		s.stats.naks.Add(1)
	}
	out := d.Reply.Marshal(req)
	if _, err := l.conn.WriteToUDPAddrPort(out, d.Reply.To); err != nil {
		s.stats.sendErrors.Add(1)
		if s.sendErrs.allow(d.Reply.To, now) {
			s.log.Warn("DHCP reply not sent (logged once a minute per destination)", "to", d.Reply.To.String(), "err", err)
		}
		return
	}
	switch d.Reply.Type {
	case dhcpv4.MessageTypeOffer:
		s.log.Debug("DHCP offer", "mac", req.MAC.String(), "addr", d.Reply.Addr, "reason", string(d.Reason))
	case dhcpv4.MessageTypeAck:
		s.log.Info("DHCP ack", "mac", req.MAC.String(), "addr", d.Reply.Addr, "node", d.Reply.Hostname,
			"boot", d.Reply.BootFile, "reason", string(d.Reason))
	case dhcpv4.MessageTypeNak:
		s.log.Info("DHCP nak", "mac", req.MAC.String(), "requested", req.RequestedAddr, "reason", string(d.Reason))
	}
}

// decide takes the decision for req and applies its pool change.
func (s *Server) decide(l *listener, req *Request, now time.Time) Decision {
	in := Input{Req: req, Policy: &s.policy, Via: l.via, Now: now}
	if s.src != nil {
		in.Table = s.src.Table()
	}
	if s.pool == nil {
		return Decide(in)
	}
	in.Pool = s.pool
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Decide(in)
	if d.Lease.Kind != LeaseNone {
		s.pool.Apply(d.Lease)
	}
	return d
}

// MACFor is the MAC of the node at ip: its reservation, or a bound
// discovery-pool lease. It fits edge/proxy's ClientMACFunc.
func (s *Server) MACFor(ip net.IP) (string, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return "", false
	}
	a = a.Unmap()
	if s.src != nil {
		if t := s.src.Table(); t != nil {
			if m, ok := t.MACAt(a); ok {
				return m.String(), true
			}
		}
	}
	if s.pool == nil {
		return "", false
	}
	s.mu.Lock()
	m, ok := s.pool.MACAt(a, time.Now())
	s.mu.Unlock()
	if !ok {
		return "", false
	}
	return m.String(), true
}

// maxVendors bounds the vendor-class memory; past it the memory starts
// afresh (a storm of forged MACs must not grow the edge without bound).
const maxVendors = 65536

func (s *Server) rememberVendor(m MAC, vc string) {
	if len(vc) > 128 {
		vc = vc[:128]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vendor[m] == vc {
		return
	}
	if len(s.vendor) >= maxVendors {
		clear(s.vendor)
	}
	s.vendor[m] = vc
}

// VendorClassOf is the last vendor class (DHCP option 60) the client at ip
// sent, looked up through its MAC like MACFor.
func (s *Server) VendorClassOf(ip net.IP) (string, bool) {
	mac, ok := s.MACFor(ip)
	if !ok {
		return "", false
	}
	m, err := ParseMAC(mac)
	if err != nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vc, ok := s.vendor[m]
	return vc, ok
}

// Stats are the server's counters at one moment.
type Stats struct {
	At       time.Time
	Received uint64 // packets read
	// Replies handed to the socket (SendErrors counts those it refused).
	Offers     uint64
	Acks       uint64 // all ACKs: leases, proxy and INFORM answers
	Leases     uint64 // ACKs that granted an address
	Naks       uint64
	Dropped    uint64 // malformed packets
	Ignored    uint64 // well-formed packets left unanswered on purpose
	SendErrors uint64
}

// LeasesPerSecond is the rate of granted leases between an earlier
// snapshot and this one.
func (st Stats) LeasesPerSecond(earlier Stats) float64 {
	dt := st.At.Sub(earlier.At).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(st.Leases-earlier.Leases) / dt
}

type counters struct {
	received, offers, acks, leases, naks, dropped, ignored, sendErrors atomic.Uint64
}

// Stats snapshots the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		At: time.Now(), Received: c.received.Load(), Offers: c.offers.Load(), Acks: c.acks.Load(),
		Leases: c.leases.Load(), Naks: c.naks.Load(), Dropped: c.dropped.Load(), Ignored: c.ignored.Load(),
		SendErrors: c.sendErrors.Load(),
	}
}

// throttle lets a key through once per period (period 0: once), so one
// noisy source fills no log. It forgets keys when it holds too many.
type throttle[K comparable] struct {
	mu     sync.Mutex
	period time.Duration
	max    int
	last   map[K]time.Time
}

func newThrottle[K comparable](period time.Duration, max int) *throttle[K] {
	return &throttle[K]{period: period, max: max, last: map[K]time.Time{}}
}

func (t *throttle[K]) allow(k K, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.last[k]; ok && (t.period <= 0 || now.Sub(at) < t.period) {
		return false
	}
	if len(t.last) >= t.max {
		for key, at := range t.last {
			if t.period > 0 && now.Sub(at) >= t.period {
				delete(t.last, key)
			}
		}
		if len(t.last) >= t.max {
			clear(t.last)
		}
	}
	t.last[k] = now
	return true
}
