package sim

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/herd-hpc/herd/edge/config"
	"github.com/herd-hpc/herd/edge/daemon"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// cluster is herd for real: functions on testenv's Redis and MinIO, and
// the edge in front with DHCP for relay agents on loopback and TFTP.
type cluster struct {
	edgeURL *url.URL
	dhcp    netip.AddrPort
	tftp    netip.AddrPort
	api     *client.Client
	subnet  netip.Prefix
}

func startCluster(t *testing.T) cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	s3 := testenv.S3(t)
	cfg := server.Defaults()
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(t), testenv.Prefix(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket
	cfg.EdgeSecret = "e2e-edge-secret"
	fns, err := server.Open(ctx, cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fns.Close() })
	fsrv := httptest.NewServer(fns.Handler())
	t.Cleanup(fsrv.Close)

	// The boot files of image "e2e" and bootenv, where functions/boot
	// looks for them.
	mc, err := minio.New(s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fns.API.Images.CreateEmpty(ctx, "e2e", "main"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{boot.ImageKey("e2e", "main", "kernel"), boot.ImageKey("e2e", "main", boot.ModulesFile), boot.BootenvKey} {
		body := bytes.Repeat([]byte(key), 1000)
		if _, err := mc.PutObject(ctx, s3.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// A TFTP root with an iPXE stand-in, so the test needs no ipxe package.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "undionly.kpxe"), bytes.Repeat([]byte("iPXE"), 20_000), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	edgeAddr := ln.Addr().String()
	ln.Close()
	fu, _ := url.Parse(fsrv.URL)
	edgeURL := &url.URL{Scheme: "http", Host: edgeAddr}
	subnet := netip.MustParsePrefix("127.78.0.0/16")
	ecfg := config.Edge{
		Listen: edgeAddr, FunctionsURL: fu, Secret: config.Secret(cfg.EdgeSecret),
		TFTPListen: "127.0.0.1:0", TFTPRoot: root,
		DHCPListen: "127.0.0.1:0", DHCPSubnet: subnet,
		DHCPDiscoveryPool: config.AddrRange{Start: netip.MustParseAddr("127.78.200.1"), End: netip.MustParseAddr("127.78.200.250")},
		BootURL:           edgeURL,
	}
	edge, err := daemon.New(ecfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := edge.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- edge.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge: %v", err)
		}
	})

	user, pw, _, err := fns.Auth.EnsureFirstAdmin(ctx, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	api := client.New(edgeURL.String(), "", nil)
	if err := waitFor(ctx, func() error {
		reply, err := api.Login(ctx, user, pw)
		if err == nil {
			api = api.WithToken(reply.Token)
		}
		return err
	}); err != nil {
		t.Fatalf("log in through the edge: %v", err)
	}
	return cluster{edgeURL: edgeURL, dhcp: addrs.DHCP.(*net.UDPAddr).AddrPort(), tftp: addrs.TFTP.(*net.UDPAddr).AddrPort(),
		api: api, subnet: subnet}
}

func waitFor(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRackBootsThroughHerd plays 20 registered nodes and 5 unknown
// machines through a real edge and functions: every registered node must
// get its reserved address, iPXE over TFTP, a boot script with a kernel,
// its artifacts and accepted events; every unknown one a discovery lease
// and the discovery script, and a discovery entry.
func TestRackBootsThroughHerd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Redis and MinIO")
	}
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	known := Rack{Nodes: 20, MACPrefix: DefaultMACPrefix(), NamePrefix: "e2e", Subnet: c.subnet,
		FirstAddr: netip.MustParseAddr("127.78.1.0")}
	reg, err := Register(ctx, c.api, known, Registration{Image: "e2e"}, 4)
	if err != nil || reg.Created != 20 {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	// Again: nothing new, nothing refused.
	if reg, err := Register(ctx, c.api, known, Registration{Image: "e2e"}, 4); err != nil || reg.Existed != 20 {
		t.Fatalf("register again: %+v, %v", reg, err)
	}

	// The relay agent listens on a port of its own: herd answers a relay
	// where it sent from, so no root is needed.
	dhcp, err := ListenRelay(ctx, netip.MustParseAddrPort("127.0.0.1:0"), c.dhcp)
	if err != nil {
		t.Fatal(err)
	}
	defer dhcp.Close()

	bios, _ := FirmwareByName("bios")
	events, _ := ParseEvents("ipxe:ok,done:ok")
	cfg := Config{
		Rack: known, Firmware: bios, Inflight: 8, Spread: 200 * time.Millisecond, Until: UntilBoot,
		Expect: ExpectBoot, CheckAddr: true, TFTP: c.tftp, Edge: c.edgeURL, HTTP: &http.Client{Timeout: 10 * time.Second},
		Artifacts: ArtifactsGet, ArtifactBytes: 1000, Events: events, Seed: 0x1234500,
		DHCPTimeouts: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
	}
	if err := WaitReserved(ctx, dhcp, cfg, known.Nodes-1, 20*time.Second, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var lines int
	sum := Run(ctx, cfg, dhcp, func(Progress) { lines++ })
	if sum.Failures() > 0 || sum.Outcomes[OutcomeBooted] != 20 || sum.Leases != 40 {
		var b bytes.Buffer
		sum.Write(&b)
		t.Fatalf("registered nodes:\n%s", b.String())
	}
	if sum.Script.Count != 20 || sum.TFTPBytes != 20*80_000 || sum.BlockSizes[IPXEBlockSize] != 20 || lines == 0 {
		t.Errorf("summary %+v, %d progress lines", sum, lines)
	}
	// herd saw each boot: a session per node, ended by the done event.
	sessions, err := c.api.BootSessions(ctx, "e2e07", 5)
	if err != nil || len(sessions) == 0 {
		t.Fatalf("sessions of e2e07: %v, %v", sessions, err)
	}
	if s := sessions[0]; s.State != model.BootDone || s.MAC != "02:68:64:00:00:07" || s.Image != "e2e" {
		t.Errorf("session %+v", s)
	}

	// Machines nobody registered: a discovery lease and the wait script.
	unknown := Rack{Nodes: 5, MACPrefix: [3]byte{0x02, 0x68, 0x65}}
	cfg.Rack, cfg.Expect, cfg.CheckAddr, cfg.Seed = unknown, ExpectUnknown, false, 0x7777700
	sum = Run(ctx, cfg, dhcp, nil)
	if sum.Failures() > 0 || sum.Outcomes[OutcomeDiscovery] != 5 {
		var b bytes.Buffer
		sum.Write(&b)
		t.Fatalf("unknown machines:\n%s", b.String())
	}
	d, err := c.api.GetDiscovered(ctx, model.MAC(unknown.Node(2).MAC.String()))
	if err != nil || d.Arch != "i386" || d.Serial != "SIM00000003" {
		t.Errorf("discovery entry %+v, %v", d, err)
	}

	// The same machines with the wrong expectation are failures of kind
	// script, counted as such.
	cfg.Expect = ExpectBoot
	sum = Run(ctx, cfg, dhcp, nil)
	if sum.Failures() != 5 || sum.Errors[KindScript] != 5 {
		t.Errorf("expecting kernels for unknown machines: %+v", sum)
	}
}
