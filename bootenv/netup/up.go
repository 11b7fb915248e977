package netup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/client4"
	"golang.org/x/sys/unix"
)

// Options tune Up.
type Options struct {
	// MAC names the boot NIC (BootMAC); nil takes the first with a link.
	MAC net.HardwareAddr
	// LinkWait is how long to wait for a carrier after raising the
	// links; 20 s (switch ports without portfast take long).
	LinkWait time.Duration
	// DHCPTimeout bounds the whole DHCP exchange; 60 s.
	DHCPTimeout time.Duration
	// ResolvConf is where resolv.conf goes; /etc/resolv.conf.
	ResolvConf string
	Log        *slog.Logger
}

// Up raises the links, picks the boot NIC, gets a lease, configures the
// address and default route, and writes resolv.conf.
func Up(ctx context.Context, opt Options) (Config, error) {
	if opt.LinkWait <= 0 {
		opt.LinkWait = 20 * time.Second
	}
	if opt.DHCPTimeout <= 0 {
		opt.DHCPTimeout = 60 * time.Second
	}
	if opt.ResolvConf == "" {
		opt.ResolvConf = "/etc/resolv.conf"
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	link, err := waitLink(ctx, opt.MAC, opt.LinkWait)
	if err != nil {
		return Config{}, err
	}
	log.Info("boot NIC", "name", link.Name, "mac", link.MAC.String())
	ack, err := lease(ctx, link.Name, opt.DHCPTimeout, log)
	if err != nil {
		return Config{}, err
	}
	c, err := ConfigFromLease(link.Name, ack)
	if err != nil {
		return c, err
	}
	if err := configure(link.Index, c); err != nil {
		return c, fmt.Errorf("configure %s: %w", c, err)
	}
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return c, err
	}
	if err := os.WriteFile(opt.ResolvConf, []byte(ResolvConf(c)), 0o644); err != nil {
		return c, fmt.Errorf("write %s: %w", opt.ResolvConf, err)
	}
	return c, nil
}

// lease runs DHCP exchanges on iface until one is acknowledged or the
// timeout passes. client4 rather than nclient4: nclient4 pulls in
// mdlayher/packet, which go.mod does not hold; client4 does the same
// exchange over raw sockets bound to the interface.
func lease(ctx context.Context, iface string, timeout time.Duration, log *slog.Logger) (*dhcpv4.DHCPv4, error) {
	deadline := time.Now().Add(timeout)
	cl := client4.NewClient()
	for attempt := 1; ; attempt++ {
		conv, err := cl.Exchange(iface, dhcpv4.WithRequestedOptions(
			dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList))
		if err == nil && len(conv) == 4 {
			return conv[3], nil
		}
		if err == nil {
			err = errors.New("the exchange ended early")
		}
		log.Warn("DHCP", "interface", iface, "attempt", attempt, "err", err)
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("DHCP on %s: no lease after %s: %w", iface, timeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Links lists this machine's interfaces with their carrier.
func Links() ([]Link, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []Link
	for _, i := range ifs {
		out = append(out, Link{
			Name: i.Name, Index: i.Index, MAC: i.HardwareAddr,
			Loopback: i.Flags&net.FlagLoopback != 0,
			// IFF_RUNNING: the link is up and has a carrier. Read from the
			// interface, not /sys/class/net, so it answers in any network
			// namespace.
			Carrier: i.Flags&net.FlagRunning != 0,
		})
	}
	return out, nil
}

// waitLink raises every interface (loopback too: some tools need it) and
// waits until the boot NIC can be chosen.
func waitLink(ctx context.Context, mac net.HardwareAddr, wait time.Duration) (Link, error) {
	links, err := Links()
	if err != nil {
		return Link{}, err
	}
	for _, l := range links {
		if err := raise(l.Name); err != nil {
			return Link{}, fmt.Errorf("raise %s: %w", l.Name, err)
		}
	}
	deadline := time.Now().Add(wait)
	for {
		links, err := Links()
		if err != nil {
			return Link{}, err
		}
		l, err := ChooseLink(links, mac)
		if err == nil && (mac == nil || l.Carrier) {
			return l, nil
		}
		if err == nil {
			err = fmt.Errorf("%s (MAC %s) has no link", l.Name, mac)
		}
		if time.Now().After(deadline) {
			return Link{}, fmt.Errorf("after %s: %w", wait, err)
		}
		select {
		case <-ctx.Done():
			return Link{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// raise sets IFF_UP on an interface.
func raise(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// configure adds the address and the default route.
func configure(index int, c Config) error {
	if err := netlinkDo(AddrMessage(index, c.Address)); err != nil {
		return fmt.Errorf("add address %s: %w", c.Address, err)
	}
	if c.Gateway.IsValid() {
		if err := netlinkDo(RouteMessage(index, c.Gateway)); err != nil {
			return fmt.Errorf("add default route via %s: %w", c.Gateway, err)
		}
	}
	return nil
}

// AddrMessage is the rtnetlink request that adds prefix to interface
// index (RTM_NEWADDR with IFA_LOCAL, IFA_ADDRESS and, for IPv4,
// IFA_BROADCAST).
func AddrMessage(index int, p netip.Prefix) []byte {
	fam := byte(unix.AF_INET)
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	body := []byte{fam, byte(p.Bits()), 0, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	a := p.Addr().AsSlice()
	body = appendAttr(body, unix.IFA_LOCAL, a)
	body = appendAttr(body, unix.IFA_ADDRESS, a)
	if p.Addr().Is4() {
		bc := p.Masked().Addr().As4()
		host := ^uint32(0) >> p.Bits()
		v := binary.BigEndian.Uint32(bc[:]) | host
		binary.BigEndian.PutUint32(bc[:], v)
		body = appendAttr(body, unix.IFA_BROADCAST, bc[:])
	}
	return nlMessage(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body)
}

// RouteMessage is the rtnetlink request that adds the default route via
// gw out of interface index.
func RouteMessage(index int, gw netip.Addr) []byte {
	fam := byte(unix.AF_INET)
	if gw.Is6() {
		fam = unix.AF_INET6
	}
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
	body := []byte{fam, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	body = appendAttr(body, unix.RTA_GATEWAY, gw.AsSlice())
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(index))
	body = appendAttr(body, unix.RTA_OIF, oif)
	return nlMessage(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body)
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	hdr := make([]byte, 4)
	binary.NativeEndian.PutUint16(hdr, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	b = append(b, hdr...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nlMessage(typ uint16, flags int, body []byte) []byte {
	m := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+nlAlign(len(body)))
	binary.NativeEndian.PutUint32(m, uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(m[4:], typ)
	binary.NativeEndian.PutUint16(m[6:], uint16(flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK))
	binary.NativeEndian.PutUint32(m[8:], 1) // sequence number
	return append(m, body...)
}

// netlinkDo sends one request and reads its acknowledgement.
func netlinkDo(msg []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	return ackError(buf[:n])
}

// ackError reads a netlink acknowledgement: nil, or the errno it carries.
func ackError(b []byte) error {
	if len(b) < unix.SizeofNlMsghdr+4 {
		return errors.New("short netlink answer")
	}
	if binary.NativeEndian.Uint16(b[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("unexpected netlink answer type %d", binary.NativeEndian.Uint16(b[4:]))
	}
	if code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}
