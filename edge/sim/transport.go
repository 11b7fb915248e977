package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// DHCPConn carries the DHCP conversations of many simulated clients over
// one UDP socket and hands each answer to the conversation its transaction
// id belongs to. As a relay agent it listens on the relay address (the
// giaddr servers answer to) and sends to the server; in broadcast mode it
// listens on the client port of one interface and broadcasts.
type DHCPConn struct {
	conn   *net.UDPConn
	server netip.AddrPort
	relay  netip.Addr // invalid in broadcast mode

	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4

	stray atomic.Int64 // answers no conversation waited for
	bad   atomic.Int64 // datagrams that are no DHCP answer
	done  chan struct{}
}

// ListenRelay opens the socket of a relay agent at relay (its address is
// the giaddr put in every request; servers answer to it, normally on port
// 67) that forwards to server. SO_REUSEADDR and SO_REUSEPORT are set so
// the relay can share port 67 with a server bound to the wildcard address
// on the same host; answers to the relay's own address still come to it,
// the more specific socket.
func ListenRelay(ctx context.Context, relay, server netip.AddrPort) (*DHCPConn, error) {
	if !relay.Addr().Is4() || !server.Addr().Is4() {
		return nil, fmt.Errorf("relay %s to %s: DHCPv4 needs IPv4 addresses", relay, server)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return setSockopts(rc, "", false)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", relay.String())
	if err != nil {
		return nil, fmt.Errorf("listen as DHCP relay on %s: %w", relay, err)
	}
	return newDHCPConn(pc.(*net.UDPConn), server, relay.Addr()), nil
}

// ListenBroadcast opens the client port (normally 68) on the interface
// iface, to broadcast requests to the server port (normally 67) as clients
// without an address do. The servers' broadcast answers come back to it.
func ListenBroadcast(ctx context.Context, iface string, clientPort, serverPort uint16) (*DHCPConn, error) {
	if iface == "" {
		return nil, errors.New("broadcast mode needs an interface")
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return setSockopts(rc, iface, true)
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", clientPort))
	if err != nil {
		return nil, fmt.Errorf("listen for DHCP on %s port %d: %w", iface, clientPort, err)
	}
	server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), serverPort)
	return newDHCPConn(pc.(*net.UDPConn), server, netip.Addr{}), nil
}

func setSockopts(rc syscall.RawConn, iface string, broadcast bool) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		set := func(level, opt, v int) {
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), level, opt, v)
			}
		}
		set(syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		set(syscall.SOL_SOCKET, soReusePort, 1)
		// Thousands of clients answer at once: a bigger buffer rides out
		// a burst while the reader catches up.
		set(syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
		if broadcast {
			set(syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		}
		if iface != "" && serr == nil {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, iface)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// soReusePort is SO_REUSEPORT on Linux, which the syscall package lacks.
const soReusePort = 0xf

func newDHCPConn(conn *net.UDPConn, server netip.AddrPort, relay netip.Addr) *DHCPConn {
	c := &DHCPConn{conn: conn, server: server, relay: relay,
		waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, done: make(chan struct{})}
	go c.read()
	return c
}

// Relay is the giaddr requests carry; invalid in broadcast mode.
func (c *DHCPConn) Relay() netip.Addr { return c.relay }

// LocalAddr is the socket's address.
func (c *DHCPConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Stray counts answers that arrived when no conversation waited for them
// (late duplicates after a retry, or answers to another relay); Bad counts
// datagrams that were no DHCP answer.
func (c *DHCPConn) Stray() int64 { return c.stray.Load() }

// Bad counts datagrams that could not be read as DHCP.
func (c *DHCPConn) Bad() int64 { return c.bad.Load() }

// Close stops reading and closes the socket.
func (c *DHCPConn) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *DHCPConn) read() {
	defer close(c.done)
	buf := make([]byte, 4096)
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 240 || buf[0] != byte(dhcpv4.OpcodeBootReply) {
			c.bad.Add(1)
			continue
		}
		var xid dhcpv4.TransactionID
		copy(xid[:], buf[4:8])
		c.mu.Lock()
		ch := c.waiting[xid]
		c.mu.Unlock()
		if ch == nil {
			c.stray.Add(1)
			continue
		}
		msg, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			c.bad.Add(1)
			continue
		}
		select {
		case ch <- msg:
		default:
			c.stray.Add(1)
		}
	}
}

// Exchange sends req and returns the first answer with its transaction id
// that accept takes, sending req again after each of timeouts elapsed with
// none; retries is how many times it was sent again. The last timeout
// passing without an acceptable answer is a KindDHCPTimeout error.
func (c *DHCPConn) Exchange(ctx context.Context, req *dhcpv4.DHCPv4, timeouts []time.Duration,
	accept func(*dhcpv4.DHCPv4) bool) (reply *dhcpv4.DHCPv4, retries int, err error) {
	if len(timeouts) == 0 {
		return nil, 0, errors.New("exchange: no timeouts")
	}
	ch := make(chan *dhcpv4.DHCPv4, 4)
	c.mu.Lock()
	if _, busy := c.waiting[req.TransactionID]; busy {
		c.mu.Unlock()
		return nil, 0, fmt.Errorf("exchange: transaction id %s already in use", req.TransactionID)
	}
	c.waiting[req.TransactionID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, req.TransactionID)
		c.mu.Unlock()
	}()

	pkt := req.ToBytes()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for attempt, wait := range timeouts {
		if attempt > 0 {
			retries++
		}
		if _, err := c.conn.WriteToUDPAddrPort(pkt, c.server); err != nil {
			return nil, retries, stepErr(KindDHCPTimeout, "send %s to %s: %w", req.MessageType(), c.server, err)
		}
		timer.Reset(wait)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil, retries, &StepError{Kind: KindCanceled, Err: ctx.Err()}
			case m := <-ch:
				if accept(m) {
					return m, retries, nil
				}
			case <-timer.C:
				break wait
			}
		}
	}
	var total time.Duration
	for _, t := range timeouts {
		total += t
	}
	return nil, retries, stepErr(KindDHCPTimeout, "no answer to %s from %s in %s (%d tries)",
		req.MessageType(), c.server, total, len(timeouts))
}
