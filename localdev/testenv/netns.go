package testenv

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Segment is a network segment made for one test: a server namespace and
// a client namespace joined by a veth pair, both ends and both loopbacks
// up, the server end holding the address NewSegment was given and the
// client end none, as a node's NIC before DHCP. Both namespaces go when
// the test ends, failed or not.
type Segment struct {
	Server, Client     string // namespace names
	ServerIf, ClientIf string // the veth ends
}

// NewSegment makes a Segment whose server end holds serverAddr (an
// address with prefix, such as 10.0.0.1/16). tag (a few letters) names
// the namespaces after the test package. Without root or iproute2 the
// test is skipped with the reason.
func NewSegment(t testing.TB, tag, serverAddr string) *Segment {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testenv: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("testenv: no ip command (iproute2) to make network namespaces")
	}
	id := strings.ToLower(rand.Text()[:8])
	s := &Segment{Server: "herd-" + tag + "-s-" + id, Client: "herd-" + tag + "-c-" + id,
		ServerIf: "hs" + id, ClientIf: "hc" + id}
	for _, ns := range []string{s.Server, s.Client} {
		IP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("testenv: remove namespace %s: %v: %s", ns, err, out)
			}
		})
	}
	IP(t, "link", "add", s.ServerIf, "netns", s.Server, "type", "veth", "peer", "name", s.ClientIf, "netns", s.Client)
	IP(t, "-n", s.Server, "addr", "add", serverAddr, "dev", s.ServerIf)
	for _, c := range [][2]string{{s.Server, s.ServerIf}, {s.Server, "lo"}, {s.Client, s.ClientIf}, {s.Client, "lo"}} {
		IP(t, "-n", c[0], "link", "set", c[1], "up")
	}
	return s
}

// SetClientMAC gives the client end the hardware address a node has.
func (s *Segment) SetClientMAC(t testing.TB, mac string) {
	t.Helper()
	IP(t, "-n", s.Client, "link", "set", s.ClientIf, "address", mac)
}

// IP runs the ip command and returns its output; a failure fails the test.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// InNetns runs f on an OS thread moved into namespace ns. The thread is
// never unlocked, so the runtime retires it afterwards rather than let
// other goroutines run in the namespace. Sockets f opens stay in ns
// wherever they are used later.
func InNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
