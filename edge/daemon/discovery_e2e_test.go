package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// relay sends one relayed DHCP message and waits for the answer of the
// given type, retrying while the edge has no table yet.
func relay(t *testing.T, dhcpAddr net.Addr, msg *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := c.WriteTo(msg.ToBytes(), dhcpAddr); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		reply, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if reply.MessageType() == want {
			return reply
		}
	}
	t.Fatalf("no %s for %s", want, msg.ClientHWAddr)
	return nil
}

// dora runs DISCOVER→OFFER→REQUEST→ACK for mac through a relay on loopback.
func dora(t *testing.T, dhcpAddr net.Addr, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	gw := dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 1))
	discover, err := dhcpv4.NewDiscovery(mac, gw, dhcpv4.WithOption(dhcpv4.OptClientArch(0)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorClass)))
	if err != nil {
		t.Fatal(err)
	}
	offer := relay(t, dhcpAddr, discover, dhcpv4.MessageTypeOffer)
	request, err := dhcpv4.NewRequestFromOffer(offer, gw)
	if err != nil {
		t.Fatal(err)
	}
	return relay(t, dhcpAddr, request, dhcpv4.MessageTypeAck)
}

const vendorClass = "PXEClient:Arch:00000:UNDI:002001"

// script asks for the boot script as the machine at from (its leased
// address; loopback holds all of 127/8) would.
func script(t *testing.T, edgeHTTP net.Addr, mac string, from net.IP) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}).DialContext}}
	res, err := hc.Get("http://" + edgeHTTP.String() + "/boot/ipxe?mac=" + mac + "&arch=x86_64&platform=pcbios")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/boot/ipxe: %d %s", res.StatusCode, b)
	}
	return string(b)
}

// TestUnknownNodeIsDiscoveredAssignedAndBoots is the new-node workflow end
// to end through the real edge and functions on real Redis and MinIO: an
// unknown machine gets a discovery lease and a retry script and shows up as
// unassigned; an admin assigns it; its next DHCP exchange gets the node's
// reservation and its next script boots it as that node.
func TestUnknownNodeIsDiscoveredAssignedAndBoots(t *testing.T) {
	ctx := context.Background()
	fns, ecfg := startFunctions(t)
	ecfg.DHCPListen = "127.0.0.1:0"
	ecfg.DHCPSubnet = netip.MustParsePrefix("127.0.0.0/8")
	ecfg.DHCPDiscoveryPool = config.AddrRange{Start: netip.MustParseAddr("127.0.9.10"), End: netip.MustParseAddr("127.0.9.50")}
	ecfg.BootURL = &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}
	addrs, logs, _, _ := start(t, ecfg)

	user, pw, _, err := fns.Auth.EnsureFirstAdmin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	api := client.New("http://"+addrs.HTTP.String(), "", nil)
	lr, err := api.Login(ctx, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	api = api.WithToken(lr.Token)
	if _, err := api.CreateNode(ctx, model.Node{Name: "node042", Settings: model.Settings{Image: "Rocky 9/HPC"},
		Interfaces: []model.Interface{{Name: "eth0", Address: "127.0.5.42/8", Boot: true}}}); err != nil {
		t.Fatal(err)
	}
	// An image whose live branch is main, with boot files where the image
	// store publishes them.
	if _, err := fns.API.Images.CreateEmpty(ctx, "Rocky 9/HPC", "main"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{boot.ImageKey("Rocky 9/HPC", "main", "kernel"), boot.ImageKey("Rocky 9/HPC", "main", boot.ModulesFile), boot.BootenvKey} {
		body := "file " + key
		if err := fns.Objects.Put(ctx, key, strings.NewReader(body), int64(len(body)), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}

	const mac = "52:54:00:0e:2e:01"
	hw, _ := net.ParseMAC(mac)
	// Unknown: a short lease from the discovery pool, nothing else.
	ack := dora(t, addrs.DHCP, hw)
	pool := ecfg.DHCPDiscoveryPool
	if ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4()); ip.Less(pool.Start) || pool.End.Less(ip) || ack.HostName() != "" || len(ack.Router()) != 0 {
		t.Fatalf("unknown MAC got %s", ack.Summary())
	}
	if s := script(t, addrs.HTTP, mac, ack.YourIPAddr); !strings.Contains(s, "not assigned") || !strings.Contains(s, "sleep 30") {
		t.Fatalf("unknown MAC script:\n%s", s)
	}
	found, err := api.AllDiscovered(ctx)
	if err != nil || len(found) != 1 || string(found[0].MAC) != mac || found[0].Arch != "x86_64" ||
		found[0].VendorClass != vendorClass || found[0].ClientAddr != ack.YourIPAddr.String() {
		t.Fatalf("discovered: %+v %v", found, err)
	}

	if _, err := api.AssignDiscovered(ctx, mac, model.AssignRequest{Node: "node042"}); err != nil {
		t.Fatal(err)
	}
	// The edge learns of the assignment in the background; the next
	// exchange gets the node's reservation.
	var got *dhcpv4.DHCPv4
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got = dora(t, addrs.DHCP, hw)
		if got.YourIPAddr.String() == "127.0.5.42" {
			break
		}
	}
	if got.YourIPAddr.String() != "127.0.5.42" || got.HostName() != "node042" {
		t.Fatalf("assigned MAC got %s\nedge logs:\n%s", got.Summary(), logs)
	}
	s := script(t, addrs.HTTP, mac, got.YourIPAddr)
	if !strings.Contains(s, "herd.session=") || !strings.Contains(s, "\nkernel ") || strings.Contains(s, "not assigned") {
		t.Fatalf("assigned node's script:\n%s", s)
	}
	// The kernel the script names is served through the edge.
	var kernelURL string
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "kernel" {
			for _, w := range f[1:] {
				if strings.HasPrefix(w, "http") {
					kernelURL = w
					break
				}
			}
		}
	}
	u, err := url.Parse(kernelURL)
	if err != nil || kernelURL == "" {
		t.Fatalf("no kernel URL in:\n%s", s)
	}
	res, err := http.Get("http://" + addrs.HTTP.String() + u.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	kernel, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasSuffix(string(kernel), "/kernel") {
		t.Fatalf("kernel through the edge: %d %q", res.StatusCode, kernel)
	}
	sessions, err := api.BootSessions(ctx, "node042", 10)
	if err != nil || len(sessions) != 1 || string(sessions[0].MAC) != mac {
		t.Fatalf("sessions of node042: %+v %v", sessions, err)
	}
	page, err := api.Audit(ctx, client.AuditQuery{Ref: "node042", Method: "assign"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("assign audit: %+v %v", page.Items, err)
	}
}

// startFunctions serves herd's functions on the test's Redis and MinIO and
// returns them with an edge config that forwards to them. Stop them after
// the edge (start's cleanup runs first: cleanups run last first), since the
// edge long-polls them for power work.
func startFunctions(t testing.TB, opts ...func(*server.Config)) (*server.Functions, config.Edge) {
	t.Helper()
	cfg := server.Defaults()
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(t), testenv.Prefix(t)
	s3 := testenv.S3(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket
	cfg.EdgeSecret = "e2e-secret"
	for _, o := range opts {
		o(&cfg)
	}
	fns, err := server.Open(context.Background(), cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fns.Close() })
	fsrv := httptest.NewServer(fns.Handler())
	t.Cleanup(fsrv.Close)
	ecfg := devConfig(t, fsrv.URL)
	ecfg.Secret = config.Secret(cfg.EdgeSecret)
	return fns, ecfg
}
