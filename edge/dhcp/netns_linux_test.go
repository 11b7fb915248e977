package dhcp

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/client4"
)

// startServerIn runs a server whose sockets live in namespace ns.
func startServerIn(t *testing.T, ns string, cfg Config, src TableSource) *Server {
	t.Helper()
	s, err := New(cfg, src, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := testenv.InNetns(ns, func() error { return s.Listen(ctx) }); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// testWriter sends server logs to the test log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func segmentConfig(s *testenv.Segment) Config {
	cfg := loopbackConfig()
	cfg.Listen = ""
	cfg.Interfaces = []string{s.ServerIf}
	cfg.ServerAddr = netip.Addr{} // from the interface
	return cfg
}

// TestClient4 runs insomniacslk's client4 — raw sockets, broadcast, port
// 68 — against the server across a veth pair.
func TestClient4(t *testing.T) {
	seg := testenv.NewSegment(t, "dhcp", "10.0.0.1/16")
	srv := startServerIn(t, seg.Server, segmentConfig(seg), StaticTable{testTable(t)})

	exchange := func(t *testing.T, mods ...dhcpv4.Modifier) []*dhcpv4.DHCPv4 {
		t.Helper()
		var conv []*dhcpv4.DHCPv4
		err := testenv.InNetns(seg.Client, func() error {
			c := client4.NewClient()
			var err error
			conv, err = c.Exchange(seg.ClientIf, mods...)
			return err
		})
		if err != nil {
			t.Fatalf("client4 exchange: %v (got %d messages)", err, len(conv))
		}
		return conv
	}

	t.Run("known MAC", func(t *testing.T) {
		seg.SetClientMAC(t, macNode1)
		conv := exchange(t, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}))
		ack := conv[3]
		if ack.YourIPAddr.String() != "10.0.0.5" || ack.HostName() != "node001" || ack.SubnetMask().String() != "ffff0000" ||
			len(ack.Router()) != 1 || ack.Router()[0].String() != "10.0.0.254" || len(ack.DNS()) != 2 ||
			ack.DomainName() != "cluster.example" || ack.IPAddressLeaseTime(0) != time.Hour {
			t.Errorf("ack: %s", ack.Summary())
		}
		if ack.ServerIdentifier().String() != "10.0.0.1" || ack.ServerIPAddr.String() != "10.0.0.1" ||
			ack.BootFileName != "snponly.efi" || ack.ClassIdentifier() != "PXEClient" {
			t.Errorf("boot options: %s", ack.Summary())
		}
		if m, ok := srv.MACFor(net.IPv4(10, 0, 0, 5)); !ok || m != macNode1 {
			t.Errorf("MACFor = %q %v", m, ok)
		}
	})
	t.Run("unknown MAC", func(t *testing.T) {
		seg.SetClientMAC(t, macUnknown)
		conv := exchange(t)
		ack := conv[3]
		if ack.YourIPAddr.String() != "10.0.1.10" || ack.SubnetMask().String() != "ffff0000" ||
			ack.IPAddressLeaseTime(0) != 2*time.Minute || ack.BootFileName != "undionly.kpxe" || ack.ServerIPAddr.String() != "10.0.0.1" {
			t.Errorf("ack: %s", ack.Summary())
		}
		for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionHostName, dhcpv4.OptionDomainName} {
			if ack.Options.Has(o) {
				t.Errorf("unknown MAC got %v: %s", o, ack.Summary())
			}
		}
		if m, ok := srv.MACFor(net.IPv4(10, 0, 1, 10)); !ok || m != macUnknown {
			t.Errorf("MACFor = %q %v", m, ok)
		}
	})
	if st := srv.Stats(); st.Leases != 2 || st.SendErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestUdhcpc runs busybox's udhcpc, a second client written by other
// people, across the same kind of segment.
func TestUdhcpc(t *testing.T) {
	seg := testenv.NewSegment(t, "dhcp", "10.0.0.1/16")
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox not found: make deps installs it (Debian package busybox)")
	}
	startServerIn(t, seg.Server, segmentConfig(seg), StaticTable{testTable(t)})

	dir := t.TempDir()
	out := filepath.Join(dir, "lease.env")
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+out+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lease := func(t *testing.T) map[string]string {
		t.Helper()
		os.Remove(out)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", seg.Client, bb, "udhcpc",
			"-i", seg.ClientIf, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", script, "-O", "hostname", "-O", "domain")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("udhcpc: %v\n%s", err, b)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatalf("udhcpc ran no bound event: %v", err)
		}
		defer f.Close()
		env := map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				env[k] = v
			}
		}
		return env
	}

	t.Run("known MAC", func(t *testing.T) {
		seg.SetClientMAC(t, macNode1)
		env := lease(t)
		want := map[string]string{"ip": "10.0.0.5", "subnet": "255.255.0.0", "router": "10.0.0.254",
			"dns": "10.0.0.53 10.0.0.54", "hostname": "node001", "domain": "cluster.example",
			"lease": "3600", "serverid": "10.0.0.1", "siaddr": "10.0.0.1", "boot_file": "undionly.kpxe"}
		for k, v := range want {
			if got := strings.TrimSpace(env[k]); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("unknown MAC", func(t *testing.T) {
		seg.SetClientMAC(t, macOther)
		env := lease(t)
		if env["ip"] != "10.0.1.10" || env["subnet"] != "255.255.0.0" || env["lease"] != "120" || env["boot_file"] != "undionly.kpxe" {
			t.Errorf("lease env %v", env)
		}
		for _, k := range []string{"router", "dns", "hostname", "domain"} {
			if v, ok := env[k]; ok {
				t.Errorf("unknown MAC got %s=%q", k, v)
			}
		}
	})
}

// TestRelayAnsweredOnPort67 puts a relay agent on a privileged port in a
// namespace of its own: replies go to giaddr:67 whoever forwarded them.
func TestRelayAnsweredOnPort67(t *testing.T) {
	seg := testenv.NewSegment(t, "dhcp", "10.0.0.1/16")
	testenv.IP(t, "-n", seg.Server, "addr", "add", "127.0.0.2/8", "dev", "lo")
	cfg := loopbackConfig()
	srv := startServerIn(t, seg.Server, cfg, StaticTable{testTable(t)})

	err := testenv.InNetns(seg.Server, func() error {
		agent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: ServerPort})
		if err != nil {
			return err
		}
		defer agent.Close()
		sender, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer sender.Close()
		// Forwarded by 127.0.0.1 on behalf of the relay at 127.0.0.2.
		b := handPacket(dhcpv4.MessageTypeDiscover, 7, mac(t, macNode1), ip("127.0.0.2"), netip.Addr{})
		if _, err := sender.WriteToUDPAddrPort(b, dhcpAddr(t, srv)); err != nil {
			return err
		}
		agent.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := agent.ReadFromUDPAddrPort(buf)
		if err != nil {
			return fmt.Errorf("relay on 127.0.0.2:67 got nothing: %w", err)
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			return err
		}
		if p.MessageType() != dhcpv4.MessageTypeOffer || p.YourIPAddr.String() != "10.0.0.5" || from.Port() != dhcpAddr(t, srv).Port() {
			return fmt.Errorf("relay got %s from %s", p.Summary(), from)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProxyDHCPOnInterface serves proxyDHCP on a device: port 67 and the
// boot-server port 4011 bound to the interface.
func TestProxyDHCPOnInterface(t *testing.T) {
	seg := testenv.NewSegment(t, "dhcp", "10.0.0.1/16")
	cfg := segmentConfig(seg)
	cfg.Policy.Mode = ModeProxy
	srv := startServerIn(t, seg.Server, cfg, nil)
	d, p := srv.Addrs()
	if len(d) != 1 || len(p) != 1 || p[0].(*net.UDPAddr).Port != PXEPort || d[0].(*net.UDPAddr).Port != ServerPort {
		t.Fatalf("sockets %v %v", d, p)
	}
	seg.SetClientMAC(t, macUnknown)
	testenv.IP(t, "-n", seg.Client, "addr", "add", "10.0.0.77/16", "dev", seg.ClientIf)
	err := testenv.InNetns(seg.Client, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 77), Port: PXEPort})
		if err != nil {
			return err
		}
		defer c.Close()
		b := handPacket(dhcpv4.MessageTypeRequest, 9, mac(t, macUnknown), netip.Addr{}, ip("10.0.0.77"),
			opt(60, []byte("PXEClient:Arch:00000:UNDI:002001")), opt(93, []byte{0, 0}))
		b[3] = 0 // hops: straight from the client
		if _, err := c.WriteToUDPAddrPort(b, netip.MustParseAddrPort("10.0.0.1:4011")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return fmt.Errorf("no answer on the boot-server port: %w", err)
		}
		ack, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			return err
		}
		if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "undionly.kpxe" || !ack.YourIPAddr.IsUnspecified() {
			return fmt.Errorf("boot-server answer %s", ack.Summary())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
