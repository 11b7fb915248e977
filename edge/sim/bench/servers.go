package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/store"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/edge/sim"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
)

// Backing is the Redis and S3 the herd under test uses (localdev/up's,
// from localdev/.state/env).
type Backing struct {
	RedisURL                          string
	S3Endpoint, S3AccessKey, S3Secret string
}

// herd is herd-functions and herd-edge, built from this tree and started
// on loopback with DHCP for relays and TFTP over Debian's iPXE.
type herd struct {
	dir                  string
	functions, edge      *proc
	edgeURL              string
	edgeBase             *url.URL
	dhcp, tftp           netip.AddrPort
	prefix, bucket       string
	backing              Backing
	adminUser, adminPass string
	closed               bool
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// buildHerd compiles the two servers into dir.
func buildHerd(ctx context.Context, dir string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return fmt.Errorf("find the herd module (run from the repository): %v", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./functions/cmd/herd-functions", "./edge/cmd/herd-edge")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build herd-functions and herd-edge: %v\n%s", err, out)
	}
	return nil
}

// startHerd starts functions and edge over b, in a Redis prefix and an S3
// bucket of their own, with the boot artifacts of image "bench" uploaded.
func startHerd(ctx context.Context, dir string, b Backing, rack sim.Rack, pool string) (*herd, error) {
	h := &herd{dir: dir, backing: b, prefix: randomName("herd-bench-"), bucket: randomName("herd-bench-")}
	if err := h.uploadArtifacts(ctx); err != nil {
		return h, err
	}
	ports := map[string]int{}
	for _, k := range []string{"functions", "edge"} {
		p, err := freePort("tcp")
		if err != nil {
			return h, err
		}
		ports[k] = p
	}
	for _, k := range []string{"tftp", "dhcp"} {
		p, err := freePort("udp")
		if err != nil {
			return h, err
		}
		ports[k] = p
	}
	h.edgeBase = &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports["edge"])}
	h.edgeURL = h.edgeBase.String()
	h.dhcp = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports["dhcp"]))
	h.tftp = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports["tftp"]))
	secret := randomName("")
	fnIni := filepath.Join(dir, "functions.ini")
	fnConf := fmt.Sprintf("[functions]\nlisten = 127.0.0.1:%d\nredis_url = %s\nredis_prefix = %s\ns3_endpoint = %s\ns3_access_key = %s\ns3_bucket = %s\nboot_url = %s\n",
		ports["functions"], b.RedisURL, h.prefix, b.S3Endpoint, b.S3AccessKey, h.bucket, h.edgeURL)
	edgeIni := filepath.Join(dir, "edge.ini")
	edgeConf := fmt.Sprintf("[edge]\nlisten = 127.0.0.1:%d\nfunctions_url = http://127.0.0.1:%d\ntftp_listen = %s\ntftp_root = /usr/lib/ipxe\n"+
		"dhcp_listen = %s\ndhcp_subnet = %s\ndhcp_discovery_pool = %s\nboot_url = %s\n",
		ports["edge"], ports["functions"], h.tftp, h.dhcp, rack.Subnet, pool, h.edgeURL)
	for f, c := range map[string]string{fnIni: fnConf, edgeIni: edgeConf} {
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			return h, err
		}
	}
	adminFile := filepath.Join(dir, "initial-admin-password")
	var err error
	h.functions, err = start("herd-functions", filepath.Join(dir, "functions.log"),
		[]string{"HERD_FUNCTIONS_S3_SECRET_KEY=" + b.S3Secret, "HERD_FUNCTIONS_EDGE_SECRET=" + secret},
		filepath.Join(dir, "herd-functions"), "-config", fnIni, "-initial-admin-file", adminFile)
	if err != nil {
		return h, err
	}
	// Any answer from the API means it listens; 401 is the usual one.
	if err := waitHTTP(ctx, h.functions, fmt.Sprintf("http://127.0.0.1:%d/api/v1/whoami", ports["functions"]), http.StatusUnauthorized, time.Minute); err != nil {
		return h, err
	}
	h.edge, err = start("herd-edge", filepath.Join(dir, "edge.log"), []string{"HERD_EDGE_SECRET=" + secret},
		filepath.Join(dir, "herd-edge"), "-config", edgeIni)
	if err != nil {
		return h, err
	}
	if err := waitHTTP(ctx, h.edge, h.edgeURL+"/edge/health", http.StatusOK, time.Minute); err != nil {
		return h, err
	}
	line, err := os.ReadFile(adminFile)
	if err != nil {
		return h, fmt.Errorf("herd-functions wrote no first admin: %w", err)
	}
	f := strings.Fields(string(line))
	if len(f) != 2 {
		return h, fmt.Errorf("%s: want \"USER PASSWORD\"", adminFile)
	}
	h.adminUser, h.adminPass = f[0], f[1]
	return h, nil
}

// register makes the first rack.Nodes nodes of the rack known, booting
// image "bench".
func (h *herd) register(ctx context.Context, rack sim.Rack) (sim.Registered, error) {
	c := client.New(h.edgeURL, "", &http.Client{Timeout: 30 * time.Second})
	reply, err := c.Login(ctx, h.adminUser, h.adminPass)
	if err != nil {
		return sim.Registered{}, fmt.Errorf("log in as %s: %w", h.adminUser, err)
	}
	return sim.Register(ctx, c.WithToken(reply.Token), rack, sim.Registration{Image: benchImage}, 8)
}

const benchImage = "bench"

func (h *herd) s3() (*minio.Client, error) {
	return minio.New(h.backing.S3Endpoint, &minio.Options{Creds: credentials.NewStaticV4(h.backing.S3AccessKey, h.backing.S3Secret, "")})
}

// uploadArtifacts puts a kernel and initrd for image bench and bootenv's
// initramfs where functions/boot looks for them.
func (h *herd) uploadArtifacts(ctx context.Context) error {
	mc, err := h.s3()
	if err != nil {
		return err
	}
	if err := mc.MakeBucket(ctx, h.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("create bucket %s at %s: %w", h.bucket, h.backing.S3Endpoint, err)
	}
	if err := h.createImage(ctx); err != nil {
		return err
	}
	for key, size := range map[string]int{
		boot.ImageKey(benchImage, "main", "kernel"):         8 << 20,
		boot.ImageKey(benchImage, "main", boot.ModulesFile): 16 << 20,
		boot.BootenvKey: 12 << 20,
	} {
		body := bytes.Repeat([]byte("herd-sim"), size/8)
		if _, err := mc.PutObject(ctx, h.bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
	}
	return nil
}

// createImage makes image bench, live branch main, in the image store
// functions reads.
func (h *herd) createImage(ctx context.Context) error {
	st, err := store.Open(ctx, store.Config{RedisURL: h.backing.RedisURL, Prefix: h.prefix})
	if err != nil {
		return err
	}
	defer st.Close()
	obj, err := objstore.Open(ctx, objstore.Config{Endpoint: h.backing.S3Endpoint, AccessKey: h.backing.S3AccessKey,
		SecretKey: h.backing.S3Secret, Bucket: h.bucket})
	if err != nil {
		return err
	}
	rdb, prefix := st.Redis()
	if _, err := imgstore.New(obj, rdb, prefix).CreateEmpty(ctx, benchImage, "main"); err != nil {
		return fmt.Errorf("create image %s: %w", benchImage, err)
	}
	return nil
}

// close stops the servers and removes the bucket and the Redis keys.
func (h *herd) close(ctx context.Context) error {
	if h == nil || h.closed {
		return nil
	}
	h.closed = true
	h.edge.stop(10 * time.Second)
	h.functions.stop(10 * time.Second)
	var errs []error
	if mc, err := h.s3(); err == nil {
		objs := mc.ListObjects(ctx, h.bucket, minio.ListObjectsOptions{Recursive: true})
		for r := range mc.RemoveObjects(ctx, h.bucket, objs, minio.RemoveObjectsOptions{}) {
			if r.Err != nil {
				errs = append(errs, r.Err)
			}
		}
		if err := mc.RemoveBucket(ctx, h.bucket); err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			errs = append(errs, fmt.Errorf("remove bucket %s: %w", h.bucket, err))
		}
	}
	if opt, err := redis.ParseURL(h.backing.RedisURL); err == nil {
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, h.prefix+"*", 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				rdb.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			rdb.Unlink(ctx, batch...)
		}
		if err := iter.Err(); err != nil {
			errs = append(errs, fmt.Errorf("remove Redis keys %s*: %w", h.prefix, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up after herd: %v", errs)
	}
	return nil
}

// dnsmasq is Debian's dnsmasq serving the same rack: the same static
// reservations, DHCP for the relay's subnet and TFTP over Debian's iPXE.
type dnsmasq struct {
	p    *proc
	dhcp netip.AddrPort
	tftp netip.AddrPort
}

// startDnsmasq starts dnsmasq with an empty lease file: every node's first
// boot. It binds DHCP to the wildcard address on port 67 (where the relay
// shares the port) and TFTP to 127.0.0.1:69.
func startDnsmasq(ctx context.Context, dir string, rack sim.Rack, fresh bool) (*dnsmasq, error) {
	conf := filepath.Join(dir, "dnsmasq.conf")
	leases := filepath.Join(dir, "dnsmasq.leases")
	if fresh {
		if err := os.WriteFile(leases, nil, 0o644); err != nil {
			return nil, err
		}
	}
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	mask := netip.AddrFrom4([4]byte(maskBytes(rack.Subnet.Bits()))).String()
	fmt.Fprintf(w, "port=0\ninterface=lo\nbind-interfaces\nno-ping\ndhcp-range=%s,static,%s\n", rack.Subnet.Addr(), mask)
	fmt.Fprintf(w, "dhcp-lease-max=%d\ndhcp-leasefile=%s\ndhcp-boot=undionly.kpxe\nenable-tftp\ntftp-root=/usr/lib/ipxe\n", 4*rack.Nodes+1000, leases)
	fmt.Fprintf(w, "pid-file=%s\nuser=root\nlog-facility=%s\n", filepath.Join(dir, "dnsmasq.pid"), filepath.Join(dir, "dnsmasq.log"))
	for i := range rack.Nodes {
		n := rack.Node(i)
		fmt.Fprintf(w, "dhcp-host=%s,%s\n", n.MAC, n.Addr)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		return nil, fmt.Errorf("dnsmasq not found (Debian package dnsmasq-base; make bench-boot installs it): %w", err)
	}
	d := &dnsmasq{dhcp: netip.MustParseAddrPort("127.0.0.1:67"), tftp: netip.MustParseAddrPort("127.0.0.1:69")}
	d.p, err = start("dnsmasq", filepath.Join(dir, "dnsmasq.out"), nil, bin, "--keep-in-foreground", "--conf-file="+conf)
	if err != nil {
		return nil, err
	}
	// Ready when TFTP answers; DHCP opens before it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := d.p.exited(); err != nil {
			return d, fmt.Errorf("%w\n%s", err, tail(filepath.Join(dir, "dnsmasq.log"), 2000))
		}
		_, err := sim.FetchTFTP(ctx, d.tftp, "undionly.kpxe", sim.TFTPConfig{Timeout: 200 * time.Millisecond, Retries: 1}, discard{})
		if err == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("dnsmasq: TFTP not answering: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *dnsmasq) close() {
	if d != nil {
		d.p.stop(5 * time.Second)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func maskBytes(bits int) [4]byte {
	m := uint32(0xffffffff) << (32 - bits)
	return [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}
