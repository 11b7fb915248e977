package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/herd-hpc/herd/localdev/testenv"
)

// Addresses of the test's segment.
const (
	bridge     = "br0"
	tap        = "tap0"
	edgeAddr   = "10.77.0.1"
	nodeAddr   = "10.77.0.10"
	edgePrefix = "/24"
)

// segment makes a network namespace holding a bridge with the edge's
// address and a tap device on it for the VM; it goes when the test ends.
func segment(t *testing.T) string {
	t.Helper()
	ns := "herd-e2e-" + strings.ToLower(rand.Text()[:8])
	testenv.IP(t, "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("remove namespace %s: %v: %s", ns, err, out)
		}
	})
	testenv.IP(t, "-n", ns, "link", "set", "lo", "up")
	// No STP and no forward delay: the port forwards as soon as qemu
	// opens the tap, or the firmware's first DHCP packets are lost.
	testenv.IP(t, "-n", ns, "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	testenv.IP(t, "-n", ns, "addr", "add", edgeAddr+edgePrefix, "dev", bridge)
	testenv.IP(t, "-n", ns, "link", "set", bridge, "up")
	testenv.IP(t, "-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
	testenv.IP(t, "-n", ns, "link", "set", tap, "master", bridge, "up")
	return ns
}

// routerAdverts sends an IPv6 router advertisement (no prefix, not a
// default router, no DHCPv6) on the bridge every second until ctx ends:
// iPXE waits ~15 s for one before it gives up on IPv6 (FIELD-NOTES).
func routerAdverts(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	var c *icmp.PacketConn
	var ifi *net.Interface
	err := testenv.InNetns(ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(bridge); err != nil {
			return err
		}
		c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	})
	if err != nil {
		t.Fatalf("router advertisements: %v", err)
	}
	p := c.IPv6PacketConn()
	// RFC 4861: hop limit 255, or receivers drop the advertisement.
	if err := p.SetMulticastHopLimit(255); err != nil {
		t.Fatal(err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{
		// cur hop limit 64, flags 0 (no DHCPv6), router lifetime 0,
		// reachable time 0, retrans timer 0.
		Data: []byte{64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}}).Marshal(nil) // the kernel fills in the checksum
	if err != nil {
		t.Fatal(err)
	}
	done, quit := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(quit); c.Close(); <-done })
	go func() {
		defer close(done)
		dst := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: bridge}
		for tick := time.NewTicker(time.Second); ; {
			// Errors while the bridge's link-local address is tentative
			// are expected; the next tick tries again.
			_, _ = c.WriteTo(msg, dst)
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
}

// vm is one run of the test machine: qemu in the namespace, its NIC on
// the tap, firmware network boot, the serial console in a file.
type vm struct {
	cmd     *exec.Cmd // nil when its BMC started it
	conn    net.Conn  // its serial line, when its BMC started it
	started time.Time
	lines   chan string
	serial  string
	exited  chan error
	gone    chan struct{} // closed when qemu has ended
	// stays: the machine has a BMC, and its init stays up until the BMC
	// powers it off.
	stays bool
}

// machineArgs are qemu's arguments for the test machine, but for its
// display and serial line: software emulation, the disk, the NIC on the
// tap with rom as its option ROM (iPXE) and first in the boot order.
// ovmf, when set, boots UEFI firmware: its code file and a copy of its
// variables store (the boot entries bootenv writes).
func machineArgs(disk, mac, rom string, ovmf ...string) []string {
	args := []string{"-accel", "tcg", "-cpu", "max", "-m", "768", "-smp", "1",
		"-nodefaults", "-no-user-config",
		// The image's init powers off; a panic or reboot ends qemu too.
		"-no-reboot",
		"-drive", "file=" + disk + ",format=raw,if=none,cache=unsafe,id=d0", "-device", "virtio-blk-pci,drive=d0",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "e1000,netdev=n0,mac=" + mac + ",romfile=" + rom + ",bootindex=1",
		// Entropy for DHCP ids and TLS before the guest has its own.
		"-device", "virtio-rng-pci",
	}
	if len(ovmf) == 2 {
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+ovmf[0],
			"-drive", "if=pflash,format=raw,file="+ovmf[1])
	}
	return args
}

// startVM boots the machine once, its serial line on qemu's stdout. rom
// and ovmf are machineArgs'.
func startVM(t *testing.T, ctx context.Context, ns, disk, mac, rom, serial string, ovmf ...string) *vm {
	t.Helper()
	f, err := os.Create(serial)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"netns", "exec", ns, "qemu-system-x86_64"}, machineArgs(disk, mac, rom, ovmf...)...)
	args = append(args, "-nographic", "-serial", "stdio")
	cmd := exec.CommandContext(ctx, "ip", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	m := newVM(serial)
	m.cmd = cmd
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	t.Logf("vm started; serial console in %s", serial)
	go m.read(out, f, cmd.Wait)
	t.Cleanup(m.stop)
	return m
}

func newVM(serial string) *vm {
	return &vm{lines: make(chan string, 4096), serial: serial, exited: make(chan error, 1), gone: make(chan struct{}), started: time.Now()}
}

// read copies the serial line into f and hands its lines to waitLine;
// when the line ends it waits for qemu with wait and closes gone.
func (m *vm) read(line io.Reader, f *os.File, wait func() error) {
	defer f.Close()
	sc := bufio.NewScanner(io.TeeReader(line, f))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		select {
		case m.lines <- sc.Text():
		default:
		}
	}
	close(m.lines)
	m.exited <- wait()
	close(m.gone)
}

// stop kills qemu if it still runs and waits for it.
func (m *vm) stop() {
	select {
	case <-m.gone:
	default:
		if m.cmd != nil {
			_ = m.cmd.Process.Kill()
		} else {
			// Its BMC's cleanup ends qemu; stop reading.
			_ = m.conn.Close()
		}
		<-m.gone
	}
}

// ended reports whether qemu has ended.
func (m *vm) ended() bool {
	select {
	case <-m.gone:
		return true
	default:
		return false
	}
}

// waitLine waits for a console line containing want and returns it with
// the time since power-on.
func (m *vm) waitLine(ctx context.Context, want string) (string, time.Duration, error) {
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				return "", 0, fmt.Errorf("qemu ended before %q (serial console: %s)", want, m.serial)
			}
			if strings.Contains(l, want) {
				return strings.TrimSpace(l), time.Since(m.started), nil
			}
		case <-ctx.Done():
			return "", 0, fmt.Errorf("no %q: %w (serial console: %s)", want, ctx.Err(), m.serial)
		}
	}
}

// wait waits for qemu to end (the guest powered off).
func (m *vm) wait(ctx context.Context) error {
	select {
	case <-m.gone:
		return <-m.exited
	case <-ctx.Done():
		return ctx.Err()
	}
}

// firstFile returns the first of paths that exists.
func firstFile(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ensureDir makes dir and returns it.
func ensureDir(t *testing.T, dir ...string) string {
	t.Helper()
	p := filepath.Join(dir...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
