package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/herd-hpc/herd/edge/config"
)

const nodeMAC = "52:54:00:12:34:56"

// TestDHCPWiredIn runs the edge with DHCP on a loopback socket against a
// fake functions: the reservation table arrives in the background, a
// relayed DISCOVER gets the reservation, and an HTTP request from the
// reserved address reaches functions with the node's MAC.
func TestDHCPWiredIn(t *testing.T) {
	var (
		mu     sync.Mutex
		gotMAC string
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boot/reservations" {
			if r.Header.Get("X-Herd-Edge-Secret") != "dev-secret" {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			w.Header().Set("ETag", `"1"`)
			fmt.Fprintf(w, `{"reservations":[{"mac":%q,"node":"node001","address":"127.0.0.1/8"}]}`, nodeMAC)
			return
		}
		mu.Lock()
		gotMAC = r.Header.Get("X-Herd-Client-Mac")
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := devConfig(t, up.URL)
	cfg.DHCPListen = "127.0.0.1:0"
	cfg.DHCPSubnet = netip.MustParsePrefix("127.0.0.0/8")
	cfg.DHCPDiscoveryPool = config.AddrRange{Start: netip.MustParseAddr("127.0.1.10"), End: netip.MustParseAddr("127.0.1.50")}
	cfg.BootURL = &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}
	addrs, logs, _, _ := start(t, cfg)
	if addrs.DHCP == nil || addrs.DHCP.(*net.UDPAddr).Port == 0 || addrs.DHCPProxyPXE != nil {
		t.Fatalf("DHCP addresses %v %v", addrs.DHCP, addrs.DHCPProxyPXE)
	}

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hw, _ := net.ParseMAC(nodeMAC)
	discover, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 1)), dhcpv4.WithUserClass("iPXE", false))
	if err != nil {
		t.Fatal(err)
	}
	var offer *dhcpv4.DHCPv4
	// The first table arrives in the background; until then DHCP is silent.
	for deadline := time.Now().Add(5 * time.Second); offer == nil && time.Now().Before(deadline); {
		c.WriteTo(discover.ToBytes(), addrs.DHCP)
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 1500)
		if n, _, err := c.ReadFrom(buf); err == nil {
			offer, err = dhcpv4.FromBytes(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if offer == nil {
		t.Fatalf("no offer; logs:\n%s", logs)
	}
	if offer.YourIPAddr.String() != "127.0.0.1" || offer.HostName() != "node001" ||
		offer.BootFileName != "http://127.0.0.1:8080/boot/ipxe" {
		t.Errorf("offer %s", offer.Summary())
	}

	res, err := http.Get("http://" + addrs.HTTP.String() + "/boot/ipxe")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if gotMAC != nodeMAC {
		t.Errorf("functions saw X-Herd-Client-Mac %q, want %q", gotMAC, nodeMAC)
	}
	if !strings.Contains(logs.String(), `"msg":"DHCP listening"`) || strings.Contains(logs.String(), "DHCP off") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestDHCPProxyModeWiredIn(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	cfg := devConfig(t, up.URL)
	cfg.DHCPListen = "127.0.0.1:0"
	cfg.DHCPMode = config.DHCPProxy
	cfg.BootURL = &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}
	addrs, logs, _, _ := start(t, cfg)
	if addrs.DHCP == nil || addrs.DHCPProxyPXE == nil {
		t.Fatalf("DHCP addresses %v %v", addrs.DHCP, addrs.DHCPProxyPXE)
	}
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(logs.String(), `"mode":"proxy"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no proxy-mode DHCP log line:\n%s", logs)
		}
	}
}

func TestDHCPBadInterfaceFailsListen(t *testing.T) {
	cfg := devConfig(t, "http://127.0.0.1:1")
	cfg.DHCPInterfaces = []string{"herd-nosuch0"}
	cfg.DHCPSubnet = netip.MustParsePrefix("10.0.0.0/16")
	cfg.DHCPDiscoveryPool = config.AddrRange{Start: netip.MustParseAddr("10.0.1.10"), End: netip.MustParseAddr("10.0.1.50")}
	cfg.BootURL = &url.URL{Scheme: "http", Host: "10.0.0.1:8080"}
	e, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Listen(t.Context()); err == nil || !strings.Contains(err.Error(), "herd-nosuch0") {
		t.Fatalf("Listen = %v", err)
	}
}
