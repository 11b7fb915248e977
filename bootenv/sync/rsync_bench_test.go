package sync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// BenchmarkSyncVsRsync measures issue 5's figures: herd's image sync of a
// real Debian root (testenv.DebianRootBig: a kernel, compilers, perl and
// python, over 1 GB in about 18,000 files) side by side, in the same run,
// with `rsync -aHAX --delete` over SSH on loopback, with and without -c:
//
//   - full: into an empty directory;
//   - nochange: over a tree that already matches;
//   - 1pct, 10pct: over the tree as it was before an update that gave 1% or
//     10% of its regular files new content of similar size and a new mtime
//     (a package upgrade rewrites files whole) and added and removed a few;
//   - 20nodes (herd and rsync): 20 syncs of the 1% update at once against
//     one appliance.
//
// herd runs as a node does: Plan and Apply with the default policy, blobs
// fetched over loopback HTTP from the boot function
// (/boot/sessions/{id}/blobs/{digest}, with a real boot session and its
// token), which reads them from MinIO. The edge that proxies those requests
// in production is not in the path.
//
// Metrics besides ns/op (wall time of the sync alone; resetting the node
// is not timed):
//   - cpu-s/op: user+system CPU of every process involved. herd: this
//     process (the sync and the boot function), MinIO and Redis (the boot
//     token is checked on every blob). rsync: the rsync client with the ssh
//     it runs, and sshd with everything under it (its per-connection
//     children and the rsync --server --sender they run, which it reaps).
//   - fetched-B/op: what the node received. herd: the blob bytes the
//     Fetcher returned; rsync: --stats "Total bytes received".
//   - files/op: paths the update changes (for full: the tree's files).
//   - 20nodes: appliance-cpu-s/node is the CPU of the appliance's side per
//     node. herd: this process, which then only runs the boot function
//     while the nodes sync in child processes (this test binary run again
//     as TestHelperSyncNode), plus MinIO and Redis. rsync: sshd and all
//     under it. node-cpu-s/node is the nodes' side: the herd child
//     processes, or the rsync clients with their ssh.
//
// SSH runs with OpenSSH's default cipher (chacha20-poly1305@openssh.com on
// OpenSSH 9.2) and default MACs and key exchange.
//
// It needs root, sshd, ssh and rsync, the localdev MinIO and Redis, and
// about 25 GB of disk for the 20 node copies; it is skipped without root
// or the SSH and rsync programs. Use -benchtime 1x: one iteration of each
// case takes from a second to a minute.
func BenchmarkSyncVsRsync(b *testing.B) {
	needRoot(b)
	sshd := startSSHD(b)
	w := newVsWorld(b, sshd)
	for _, tool := range []string{"herd", "rsync", "rsync-c"} {
		b.Run(tool, func(b *testing.B) {
			for _, c := range w.cases {
				b.Run(c.name, func(b *testing.B) { w.single(b, tool, c) })
			}
		})
	}
	// Last: 20 node trees push the others out of the page cache.
	for _, tool := range []string{"herd", "rsync"} {
		b.Run(tool+"/20nodes", func(b *testing.B) { w.many(b, tool, w.cases[2]) })
	}
	// The table goes to the output itself: go test drops the log of a
	// benchmark that has sub-benchmarks.
	fmt.Printf("SyncVsRsync tree: %d files, %d entries, %.2f GB; load before: %s; after: %s\n",
		w.files, len(w.base.want.Entries), float64(w.bytes)/1e9, w.load, loadAverage())
	fmt.Printf("SyncVsRsync %-16s %9s %9s %14s %8s\n", "case", "wall-s", "cpu-s", "fetched-B", "files")
	for _, r := range w.rows {
		fmt.Printf("SyncVsRsync %-16s %9.3f %9.3f %14.0f %8d\n", r.name, r.wall, r.cpu, r.fetched, r.files)
	}
}

// vsCase is one update: the node starts at before ("" for an empty
// directory; image version from) and syncs to want, which rsync reads
// from dir.
type vsCase struct {
	name   string
	before string
	from   *manifest.Manifest
	dir    string
	want   *manifest.Manifest
	files  int
}

type vsRow struct {
	name               string
	wall, cpu, fetched float64
	files              int
}

type vsWorld struct {
	e            *env
	boot         *bootServer
	sshd         *sshd
	minio, redis int // pids of the localdev servers
	base         vsCase
	cases        []vsCase
	files        int
	bytes        uint64
	nodes        string // directory of the node trees
	load         string
	rows         []vsRow
}

func newVsWorld(b *testing.B, sshd *sshd) *vsWorld {
	b.Helper()
	w := &vsWorld{e: newEnv(b), sshd: sshd, nodes: b.TempDir(), load: loadAverage()}
	w.minio = serverPID(b, "minio")
	w.redis = serverPID(b, "redis")
	w.boot = newBootServer(b, w.e.obj)

	base := testenv.CopyTree(b, testenv.DebianRootBig(b))
	b.Logf("importing the tree into MinIO (once per run)")
	w.base = vsCase{name: "nochange", before: base, dir: base, want: w.e.importTree(b, base)}
	w.base.from = w.base.want
	for _, e := range w.base.want.Entries {
		if e.Type == manifest.TypeFile {
			w.files++
			w.bytes += e.Size
		}
	}
	full := w.base
	full.name, full.before, full.from, full.files = "full", "", nil, w.files
	w.cases = []vsCase{full, w.base}
	for _, u := range []struct {
		name string
		frac float64
		seed uint64
	}{{"1pct", 0.01, 1}, {"10pct", 0.10, 10}} {
		dir := filepath.Join(b.TempDir(), "tree")
		cp(b, base, dir)
		n := upgrade(b, dir, u.frac, u.seed)
		w.cases = append(w.cases, vsCase{name: u.name, before: base, from: w.base.want, dir: dir, want: w.e.importTree(b, dir), files: n})
	}
	return w
}

// single syncs one node with tool, b.N times.
func (w *vsWorld) single(b *testing.B, tool string, c vsCase) {
	node := filepath.Join(w.nodes, "node00")
	meter := cpuMeter{pids: []int{w.sshd.pid()}}
	var f *bootFetcher
	if tool == "herd" {
		meter = cpuMeter{self: true, pids: []int{w.minio, w.redis}}
		id, token := w.boot.session(b, 0)
		f = newBootFetcher(w.boot.url, id, token)
	}
	names := []string{"sshd"}
	if tool == "herd" {
		names = []string{"self", "minio", "redis"}
	}
	ctx := context.Background()
	var cpu, fetched float64
	var parts string
	for b.Loop() {
		b.StopTimer()
		w.reset(b, tool, c, node, f)
		before := meter.parts(b)
		b.StartTimer()
		if tool == "herd" {
			f.n.Store(0)
			must(b, herdSync(ctx, c.want, node, f))
			b.StopTimer()
			fetched += float64(f.n.Load())
		} else {
			got, clientCPU, err := w.sshd.rsync(ctx, c.dir, node, tool == "rsync-c")
			b.StopTimer()
			must(b, err)
			cpu += clientCPU
			fetched += float64(got)
			w.sshd.waitIdle(b)
		}
		after := meter.parts(b)
		for i := range after {
			cpu += after[i] - before[i]
		}
		parts = split(names, before, after)
		b.StartTimer()
	}
	if tool != "herd" {
		checkSame(b, c.want, node)
	}
	w.report(b, tool+"/"+c.name, cpu, fetched, c.files, "(last run's CPU:"+parts+")")
}

// many syncs 20 nodes at once with tool, b.N times.
func (w *vsWorld) many(b *testing.B, tool string, c vsCase) {
	const n = 20
	// Twenty copies of the tree, and room to spare: skipped with the
	// reason rather than failing half-way on a full disk.
	var fs unix.Statfs_t
	if err := unix.Statfs(w.nodes, &fs); err == nil {
		if free, need := fs.Bavail*uint64(fs.Bsize), uint64(n+2)*w.bytes; free < need {
			b.Skipf("20 node copies need about %.0f GB free under %s; %.0f GB are", float64(need)/1e9, w.nodes, float64(free)/1e9)
		}
	}
	ctx := context.Background()
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = filepath.Join(w.nodes, fmt.Sprintf("node%02d", i+1))
	}
	appliance := cpuMeter{pids: []int{w.sshd.pid()}}
	var sessions [][2]string
	var mfile string
	var srv *bootServer
	if tool == "herd" {
		appliance = cpuMeter{self: true, pids: []int{w.minio, w.redis}}
		enc, err := manifest.Encode(c.want)
		must(b, err)
		mfile = filepath.Join(b.TempDir(), "manifest")
		must(b, os.WriteFile(mfile, enc, 0o600))
	}
	names := []string{"sshd"}
	if tool == "herd" {
		names = []string{"self", "minio", "redis"}
	}
	var appCPU, nodeCPU, fetched float64
	var parts string
	for b.Loop() {
		b.StopTimer()
		if tool == "herd" {
			// A boot function of its own, so that its blob cache holds
			// none of the update's blobs (the single-node runs fetched
			// them): the first node's reads of the object store count.
			srv, sessions = newBootServer(b, w.e.obj), nil
			for i := range n {
				id, token := srv.session(b, i+1)
				sessions = append(sessions, [2]string{id, token})
			}
		}
		for i, node := range nodes {
			var f *bootFetcher
			if tool == "herd" {
				f = newBootFetcher(srv.url, sessions[i][0], sessions[i][1])
			}
			w.reset(b, tool, c, node, f)
		}
		before := appliance.parts(b)
		b.StartTimer()
		type result struct {
			fetched uint64
			cpu     float64
			err     error
		}
		results := make([]result, n)
		var wg gosync.WaitGroup
		for i, node := range nodes {
			wg.Go(func() {
				r := &results[i]
				if tool == "herd" {
					r.fetched, r.cpu, r.err = herdChild(ctx, mfile, node, srv.url, sessions[i][0], sessions[i][1])
				} else {
					r.fetched, r.cpu, r.err = w.sshd.rsync(ctx, c.dir, node, false)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		if tool != "herd" {
			w.sshd.waitIdle(b)
		}
		after := appliance.parts(b)
		for i := range after {
			appCPU += after[i] - before[i]
		}
		parts = split(names, before, after)
		for i, r := range results {
			if r.err != nil {
				b.Fatalf("node %d: %v", i+1, r.err)
			}
			nodeCPU += r.cpu
			fetched += float64(r.fetched)
		}
		b.StartTimer()
	}
	checkSame(b, c.want, nodes[n-1])
	per := float64(b.N * n)
	b.ReportMetric(appCPU/per, "appliance-cpu-s/node")
	b.ReportMetric(nodeCPU/per, "node-cpu-s/node")
	w.report(b, tool+"/20nodes", appCPU, fetched/n, c.files,
		fmt.Sprintf("appliance %.3f cpu-s/node, nodes %.3f cpu-s/node (last run's appliance CPU:%s)", appCPU/per, nodeCPU/per, parts))
}

func (w *vsWorld) report(b *testing.B, name string, cpu, fetched float64, files int, note string) {
	b.Helper()
	N := float64(b.N)
	wall := b.Elapsed().Seconds() / N
	b.ReportMetric(wall, "s/op")
	b.ReportMetric(cpu/N, "cpu-s/op")
	b.ReportMetric(fetched/N, "fetched-B/op")
	b.ReportMetric(float64(files), "files/op")
	b.Logf("%s: wall %.3f s, cpu %.3f s, fetched %.0f B, %d files changed; load %s %s", name, wall, cpu/N, fetched/N, files, loadAverage(), note)
	w.rows = append(w.rows, vsRow{name: name, wall: wall, cpu: cpu / N, fetched: fetched / N, files: files})
}

// herdSync does what bootenv's image step does: plan with the default
// policy, apply with small blobs prefetched in batches, and check the
// completion marker.
func herdSync(ctx context.Context, want *manifest.Manifest, root string, f *bootFetcher) error {
	p, err := Plan(ctx, want, root, Policy{})
	if err != nil {
		return err
	}
	pf := Prefetch(ctx, &p, f, f, PrefetchOptions{})
	defer pf.Close()
	if _, err := Apply(ctx, p, root, pf, ApplyOptions{}); err != nil {
		return err
	}
	if !Complete(root, p.Target) {
		return fmt.Errorf("%s is not complete after the sync", root)
	}
	return nil
}

// Environment variables of TestHelperSyncNode.
const (
	helperNode     = "HERD_BENCH_SYNC_NODE"
	helperManifest = "HERD_BENCH_SYNC_MANIFEST"
	helperURL      = "HERD_BENCH_SYNC_URL"
	helperSession  = "HERD_BENCH_SYNC_SESSION"
	helperToken    = "HERD_BENCH_SYNC_TOKEN"
)

// herdChild syncs one node in a child process (this test binary, running
// TestHelperSyncNode), so its CPU is apart from the boot function's, and
// returns the bytes it fetched and its CPU seconds.
func herdChild(ctx context.Context, mfile, node, url, session, token string) (uint64, float64, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSyncNode$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperNode+"="+node, helperManifest+"="+mfile,
		helperURL+"="+url, helperSession+"="+session, helperToken+"="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("sync %s in a child: %w\n%s", node, err, out)
	}
	m := regexp.MustCompile(`(?m)^fetched=(\d+)$`).FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("sync %s in a child: no fetched= line in\n%s", node, out)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n, rusageSeconds(cmd.ProcessState.SysUsage().(*syscall.Rusage)), nil
}

// TestHelperSyncNode is one node's sync for BenchmarkSyncVsRsync/herd/
// 20nodes, run in a child process; run directly, it is skipped.
func TestHelperSyncNode(t *testing.T) {
	node := os.Getenv(helperNode)
	if node == "" {
		t.Skip("one node's sync for BenchmarkSyncVsRsync/herd/20nodes; runs only as its child")
	}
	raw, err := os.ReadFile(os.Getenv(helperManifest))
	must(t, err)
	want, err := manifest.Decode(raw)
	must(t, err)
	f := newBootFetcher(os.Getenv(helperURL), os.Getenv(helperSession), os.Getenv(helperToken))
	must(t, herdSync(context.Background(), want, node, f))
	fmt.Printf("fetched=%d\n", f.n.Load())
}

// bootFetcher fetches blobs from the boot function as bootenv does, one
// by one and in batches, with bootenv's HTTP transport, and counts the
// bytes it returned.
type bootFetcher struct {
	bc      *client.Boot
	session string
	n       atomic.Uint64
}

func newBootFetcher(url, session, token string) *bootFetcher {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	return &bootFetcher{bc: client.NewBoot(url, token, &http.Client{Transport: tr}), session: session}
}

func (f *bootFetcher) Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error) {
	rc, err := OpenSized(d, size, func() (io.ReadCloser, int64, error) { return f.bc.OpenBlob(ctx, f.session, d) })
	if err != nil {
		return nil, err
	}
	return countingReader{rc, &f.n}, nil
}

// FetchBlobs fetches a batch as bootenv does, counting the bytes.
func (f *bootFetcher) FetchBlobs(ctx context.Context, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error {
	return f.bc.FetchBlobs(ctx, f.session, ds, func(d manifest.Digest, r io.Reader, size int64) error {
		return each(d, countingReader{io.NopCloser(r), &f.n}, size)
	})
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

// bootServer is the boot function on loopback HTTP over the test Redis,
// serving blobs from obj, with a group whose nodes boot image img.
type bootServer struct {
	st  *store.Store
	url string
}

const benchEdgeSecret = "edge-secret-of-the-benchmark"

func newBootServer(b *testing.B, obj *objstore.Store) *bootServer {
	b.Helper()
	ctx := context.Background()
	st := storetest.Open(b)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: benchEdgeSecret, Log: log}
	h := boot.New(st, au, boot.ObjectArtifacts{Objects: obj, Seen: store.BootArtifacts{S: st}}, boot.Config{}, log)
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	// A node is sent to bootenv only when its image has boot files.
	for _, f := range []string{"kernel", boot.ModulesFile} {
		data := "the " + f + " of img"
		must(b, obj.Put(ctx, boot.ImageKey("img", boot.LiveBranch, f), strings.NewReader(data), int64(len(data)), "application/octet-stream"))
	}
	must(b, obj.Put(ctx, boot.BootenvKey, strings.NewReader("bootenv"), 7, "application/octet-stream"))
	_, err := st.CreateGroup(ctx, benchActor(), model.Group{Name: "compute", Settings: model.Settings{Image: "img"}})
	must(b, err)
	return &bootServer{st: st, url: srv.URL}
}

func benchActor() store.Actor { return store.Actor{User: "bench", Host: "bench"} }

// session boots node i once, as iPXE behind the edge, and returns its boot
// session and token.
func (s *bootServer) session(b *testing.B, i int) (id, token string) {
	b.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("node%03d", i)
	mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
	if _, err := s.st.GetNode(ctx, name); err != nil {
		_, err := s.st.CreateNode(ctx, benchActor(), model.Node{Name: name, Group: "compute",
			Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(mac), Boot: true}}})
		must(b, err)
	}
	req, err := http.NewRequest(http.MethodGet, s.url+"/boot/ipxe?mac="+mac+"&arch=x86_64&platform=efi", nil)
	must(b, err)
	req.Header.Set("User-Agent", "iPXE/1.21.1+")
	req.Header.Set(auth.HeaderEdgeSecret, benchEdgeSecret)
	req.Header.Set("X-Forwarded-Host", strings.TrimPrefix(s.url, "http://"))
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set(auth.HeaderClientAddr, "10.0.7.9")
	resp, err := http.DefaultClient.Do(req)
	must(b, err)
	script, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(b, err)
	m1 := regexp.MustCompile(`herd\.session=([0-9a-f]{32})`).FindSubmatch(script)
	m2 := regexp.MustCompile(`herd\.token=(\S+)`).FindSubmatch(script)
	if resp.StatusCode != http.StatusOK || m1 == nil || m2 == nil {
		b.Fatalf("boot %s: %d, no session or token in\n%s", name, resp.StatusCode, script)
	}
	return string(m1[1]), string(m2[1])
}

// sshd is an OpenSSH server of the benchmark's own on loopback, letting
// root in with a key made for it.
type sshd struct {
	cmd  *exec.Cmd
	port int
	key  string
}

func startSSHD(b *testing.B) *sshd {
	b.Helper()
	for _, tool := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen", "rsync"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("comparing with rsync over SSH needs %s (apt-get install openssh-server openssh-client rsync): %v", tool, err)
		}
	}
	dir := b.TempDir()
	for _, k := range []string{"host", "client"} {
		runCmd(b, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k))
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	must(b, err)
	must(b, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile none
MaxStartups 100
LogLevel ERROR
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"))
	must(b, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	// sshd refuses to start without its privilege separation directory,
	// which the package's service would make.
	must(b, os.MkdirAll("/run/sshd", 0o755))
	s := &sshd{port: port, key: filepath.Join(dir, "client")}
	var logs testenv.Logs
	s.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	s.cmd.Stdout, s.cmd.Stderr = &logs, &logs
	must(b, s.cmd.Start())
	b.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ssh", append(s.sshArgs(), "root@127.0.0.1", "true")...).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("ssh to the benchmark's sshd on port %d: %v\n%s\nsshd: %s", port, err, out, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func (s *sshd) pid() int { return s.cmd.Process.Pid }

func (s *sshd) sshArgs() []string {
	return []string{"-i", s.key, "-p", strconv.Itoa(s.port), "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
}

// rsync pulls src into dst over SSH as a node would from the appliance, and
// returns the bytes the client received and the CPU seconds of the client
// (with the ssh it ran).
func (s *sshd) rsync(ctx context.Context, src, dst string, checksum bool) (uint64, float64, error) {
	args := []string{"-aHAX", "--delete", "--stats", "-e", "ssh " + strings.Join(s.sshArgs(), " ")}
	if checksum {
		args = append(args, "-c")
	}
	args = append(args, "root@127.0.0.1:"+src+"/", dst+"/")
	cmd := exec.CommandContext(ctx, "rsync", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("rsync %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	m := regexp.MustCompile(`Total bytes received: ([\d,.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("rsync printed no Total bytes received:\n%s", out)
	}
	n, err := strconv.ParseUint(strings.NewReplacer(",", "", ".", "").Replace(string(m[1])), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("rsync's Total bytes received %q: %w", m[1], err)
	}
	return n, rusageSeconds(cmd.ProcessState.SysUsage().(*syscall.Rusage)), nil
}

// waitIdle waits until sshd has reaped every connection's process, so its
// CPU figure holds all of their time.
func (s *sshd) waitIdle(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(childrenOf(s.pid())) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("sshd still has connections %v 10 s after the last rsync ended", childrenOf(s.pid()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(p); err == nil && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// cpuMeter reads the CPU seconds used so far by this process (self) and by
// the processes pids with the children they reaped.
type cpuMeter struct {
	self bool
	pids []int
}

// parts returns the CPU seconds of each process: this one first (if
// self), then pids in order.
func (m cpuMeter) parts(b *testing.B) []float64 {
	b.Helper()
	var out []float64
	if m.self {
		var ru unix.Rusage
		must(b, unix.Getrusage(unix.RUSAGE_SELF, &ru))
		out = append(out, float64(ru.Utime.Nano()+ru.Stime.Nano())/1e9)
	}
	for _, pid := range m.pids {
		f, err := procStat(pid)
		if err != nil {
			b.Fatalf("CPU time of process %d: %v", pid, err)
		}
		// utime, stime, cutime, cstime: fields 14 to 17 of stat(5), in
		// clock ticks of 100 Hz (USER_HZ, the same on every Linux).
		var s float64
		for _, v := range f[11:15] {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("/proc/%d/stat: %v", pid, err)
			}
			s += float64(t) / 100
		}
		out = append(out, s)
	}
	return out
}

// split says how the CPU seconds between two parts readings divide.
func split(names []string, before, after []float64) string {
	var b strings.Builder
	for i, n := range names {
		fmt.Fprintf(&b, " %s %.2f", n, after[i]-before[i])
	}
	return b.String()
}

// procStat returns the fields of /proc/pid/stat after the command name:
// state, ppid, ….
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

func rusageSeconds(ru *syscall.Rusage) float64 {
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// serverPID returns the pid of the localdev server name (minio, redis)
// from its pid file in localdev/.state, checking that it is that server.
func serverPID(b *testing.B, name string) int {
	b.Helper()
	dir, err := os.Getwd()
	must(b, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			b.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "localdev", ".state", name+".pid"))
	if err != nil {
		b.Fatalf("pid of %s (the localdev server whose CPU counts): %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	must(b, err)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), name) {
		b.Fatalf("process %d of localdev/.state/%s.pid is not %s (%v)", pid, name, name, err)
	}
	return pid
}

// reset makes node what c.before is (empty when it is ""), keeping every
// attribute, untimed; rsync copies only what differs. A herd node keeps
// its sync journal and is synced to c.from, as a node that herd synced
// to the old version is; an rsync node has none. The flush keeps the
// copy's dirty pages out of the sync that follows.
func (w *vsWorld) reset(b *testing.B, tool string, c vsCase, node string, f *bootFetcher) {
	b.Helper()
	switch _, err := os.Stat(node); {
	case c.before == "":
		must(b, os.RemoveAll(node))
		must(b, os.Mkdir(node, 0o755))
	case errors.Is(err, os.ErrNotExist):
		cp(b, c.before, node)
	case tool == "herd":
		runCmd(b, "rsync", "-aHAX", "--delete", "--exclude=/"+JournalDir, c.before+"/", node+"/")
	default:
		runCmd(b, "rsync", "-aHAX", "--delete", c.before+"/", node+"/")
	}
	if tool == "herd" && c.from != nil {
		must(b, herdSync(context.Background(), c.from, node, f))
	}
	unix.Sync()
}

func cp(b *testing.B, src, dst string) {
	b.Helper()
	runCmd(b, "cp", "-a", src, dst)
}

func runCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// upgrade changes the tree at dir as a package upgrade does: frac of its
// regular files (single links, not empty; chosen with seed) get new content
// of a size within 10% of the old and a new mtime, and a few files are
// added and as many removed. It returns how many paths changed.
func upgrade(b *testing.B, dir string, frac float64, seed uint64) int {
	b.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink == 1 && st.Size > 0 {
			files = append(files, p)
		}
		return nil
	})
	must(b, err)
	rng := rand.New(rand.NewPCG(seed, 5))
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	n := int(math.Round(frac * float64(len(files))))
	extra := max(5, n/20)
	content := rand.NewChaCha8([32]byte{byte(seed)})
	similar := func(p string) []byte {
		fi, err := os.Stat(p)
		must(b, err)
		size := max(1, fi.Size()+int64(float64(fi.Size())*(rng.Float64()*0.2-0.1)))
		buf := make([]byte, size)
		content.Read(buf)
		return buf
	}
	for _, p := range files[:n] {
		// In place: owner, mode and xattrs stay, as dpkg keeps them.
		must(b, os.WriteFile(p, similar(p), 0))
	}
	for i, p := range files[n : n+extra] {
		must(b, os.WriteFile(filepath.Join(filepath.Dir(files[rng.IntN(n)]), fmt.Sprintf("herd-bench-%d-%d.new", seed, i)), similar(p), 0o644))
	}
	for _, p := range files[n : n+extra] {
		must(b, os.Remove(p))
	}
	return n + 2*extra
}

func loadAverage() string {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return "?"
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fs := strings.Fields(line)
	if len(fs) < 3 {
		return "?"
	}
	return strings.Join(fs[:3], " ")
}
