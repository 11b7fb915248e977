package sync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/scan"
	"github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for owners, devices and trusted xattrs")
	}
}

// env is a real image store on the test MinIO and Redis, and a Fetcher
// reading its blobs that counts what it fetched.
type env struct {
	obj   *objstore.Store
	store *store.Store
	f     *fetcher
	// prefetch, when set, makes sync feed Apply through Prefetch with
	// these options, batches read by batches over f's counts.
	prefetch *PrefetchOptions
}

func newEnv(t testing.TB) *env {
	t.Helper()
	obj := testenv.Objects(t)
	rdb := testenv.Redis(t)
	return &env{obj: obj, store: store.New(obj, rdb, testenv.Prefix(t)), f: &fetcher{obj: obj, got: map[manifest.Digest]int{}}}
}

// importTree imports dir and returns the stored manifest (with chunks).
func (e *env) importTree(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	r, err := e.store.ImportDir(ctx, "img", "main", dir)
	must(t, err)
	m, err := e.store.Manifest(ctx, r.Manifest)
	must(t, err)
	return m
}

// fetcher reads blobs from the object store and counts them; onOpen, if
// set, runs before each fetch (tests cancel a sync from it).
type fetcher struct {
	obj    *objstore.Store
	mu     gosync.Mutex
	got    map[manifest.Digest]int
	n      int
	bytes  uint64
	onOpen func(n int)
}

func (f *fetcher) Open(ctx context.Context, d manifest.Digest, size uint64) (io.ReadCloser, error) {
	f.mu.Lock()
	f.got[d]++
	f.n++
	f.bytes += size
	n, hook := f.n, f.onOpen
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	rc, _, err := f.obj.Get(ctx, store.BlobKey(d))
	return rc, err
}

// batches is a BatchSource over the same object store and counts as f;
// cut, if set, says after how many blobs of batch k (from 1) the stream
// is cut, or -1 for none.
type batches struct {
	f   *fetcher
	mu  gosync.Mutex
	k   int
	cut func(k int) int
}

func (b *batches) FetchBlobs(ctx context.Context, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error {
	b.mu.Lock()
	b.k++
	k, cut := b.k, b.cut
	b.mu.Unlock()
	for i, d := range ds {
		if cut != nil && cut(k) == i {
			return fmt.Errorf("batch %d cut after %d blobs: %w", k, i, io.ErrUnexpectedEOF)
		}
		rc, n, err := b.f.obj.Get(ctx, store.BlobKey(d))
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if manifest.Sum(data) != d {
			return fmt.Errorf("blob %s: content has digest %s", d, manifest.Sum(data))
		}
		b.f.mu.Lock()
		b.f.got[d]++
		b.f.n++
		b.f.bytes += uint64(n)
		b.f.mu.Unlock()
		if err := each(d, bytes.NewReader(data), n); err != nil {
			return err
		}
	}
	return nil
}

func (f *fetcher) reset() (n int, got map[manifest.Digest]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, got = f.n, f.got
	f.n, f.bytes, f.got = 0, 0, map[manifest.Digest]int{}
	return n, got
}

// bothWays runs test with Apply fetching blob by blob, and again through
// Prefetch with small batches and budget, so that it waits, drops and
// falls back; test makes its envs with the newEnv it is given.
func bothWays(t *testing.T, test func(t *testing.T, newEnv func(testing.TB) *env)) {
	t.Run("blob by blob", func(t *testing.T) { test(t, newEnv) })
	t.Run("prefetched", func(t *testing.T) {
		test(t, func(tb testing.TB) *env {
			e := newEnv(tb)
			e.prefetch = &PrefetchOptions{BatchBlobs: 5, BatchBytes: 64 << 10, Budget: 96 << 10}
			return e
		})
	})
}

// sync plans and applies want into dst and fails the test on any error.
func (e *env) sync(t testing.TB, want *manifest.Manifest, dst string, pol Policy) (SyncPlan, Stats) {
	t.Helper()
	ctx := context.Background()
	p, err := Plan(ctx, want, dst, pol)
	must(t, err)
	var f Fetcher = e.f
	var pf *Prefetcher
	if e.prefetch != nil {
		pf = Prefetch(ctx, &p, &batches{f: e.f}, e.f, *e.prefetch)
		f = pf
	}
	st, err := Apply(ctx, p, dst, f, ApplyOptions{})
	if err != nil {
		t.Fatalf("apply: %v\nplan:\n%s", err, p.String())
	}
	if pf != nil {
		must(t, pf.Close())
		if ps := pf.Stats(); ps.Failed != 0 || ps.Served+ps.Fallbacks != st.FetchedBlobs {
			t.Fatalf("prefetch %+v for %d blobs fetched", ps, st.FetchedBlobs)
		}
	}
	if !Complete(dst, p.Target) {
		t.Fatalf("not complete after a successful apply")
	}
	return p, st
}

// checkSame scans dst (without the journal) and compares it with want,
// every attribute; chunk lists are not part of a scan and not compared.
func checkSame(t testing.TB, want *manifest.Manifest, dst string) {
	t.Helper()
	got, err := scan.Tree(context.Background(), dst, scan.Options{Skip: func(p string) bool { return p == JournalDir }})
	must(t, err)
	if c := manifest.Diff(want, got); !c.Empty() {
		t.Fatalf("synced tree differs from the manifest:\n%s", c)
	}
}

// buildTree makes a tree with every entry type and the awkward cases: setuid
// and setgid, owners, user, trusted and security.capability xattrs, a
// hardlink set of three, symlinks, devices, a fifo, a socket, a sparse file,
// a read-only file and a chunked file.
func buildTree(t testing.TB, dir string) {
	t.Helper()
	w := func(name string, data []byte, mode uint32) {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o600))
		must(t, unix.Chmod(p, mode))
	}
	w("usr/bin/su", []byte("setuid binary"), 0o4755)
	w("usr/bin/wall", []byte("setgid binary"), 0o2755)
	must(t, os.Chown(filepath.Join(dir, "usr/bin/wall"), 0, 5))
	w("usr/bin/ping", []byte("capable binary"), 0o755)
	// VFS v2 capability: cap_net_raw (bit 13) permitted and effective.
	capv := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	must(t, unix.Setxattr(filepath.Join(dir, "usr/bin/ping"), "security.capability", capv, 0))
	w("etc/shadow", []byte("root:*:1::::::\n"), 0o400)
	w("etc/conf", []byte("a=1\n"), 0o644)
	w("etc/ssh/sshd_config", []byte("PermitRootLogin no\n"), 0o644)
	w("owned", []byte("owned by someone"), 0o640)
	must(t, os.Chown(filepath.Join(dir, "owned"), 1234, 5678))
	must(t, unix.Setxattr(filepath.Join(dir, "owned"), "user.herd", []byte("label"), 0))
	must(t, unix.Setxattr(filepath.Join(dir, "owned"), "trusted.herd", []byte{0, 1, 2}, 0))
	w("empty", nil, 0o600)
	w("same-a", []byte("same content"), 0o644)
	w("same-b", []byte("same content"), 0o644)
	w("lib/one", []byte("linked three times"), 0o644)
	must(t, os.Link(filepath.Join(dir, "lib/one"), filepath.Join(dir, "lib/two")))
	must(t, os.Link(filepath.Join(dir, "lib/one"), filepath.Join(dir, "usr/three")))
	big := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	w("big", big, 0o644)
	// 6 MiB with data only in the first and last 64 KiB.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(t, err)
	_, err = sp.WriteAt(big[:64<<10], 0)
	must(t, err)
	_, err = sp.WriteAt(big[64<<10:128<<10], 6<<20-64<<10)
	must(t, err)
	must(t, sp.Close())
	must(t, os.Symlink("../owned", filepath.Join(dir, "usr/sym")))
	must(t, os.Lchown(filepath.Join(dir, "usr/sym"), 7, 8))
	must(t, os.Symlink("/etc/conf", filepath.Join(dir, "abs-sym")))
	must(t, os.Mkdir(filepath.Join(dir, "dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(dir, "dev/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(dir, "sock"), unix.S_IFSOCK|0o755, 0))
	must(t, os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o755|os.ModeSticky))
	must(t, os.MkdirAll(filepath.Join(dir, "ro"), 0o755))
	w("ro/file", []byte("in a read-only directory"), 0o444)
	must(t, os.Chmod(filepath.Join(dir, "ro"), 0o555))
}

// manyFiles writes n small files of unique content in 20 directories.
func manyFiles(t testing.TB, dir string, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%20))
		must(t, os.MkdirAll(d, 0o755))
		buf := make([]byte, 100+rng.IntN(8<<10))
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), buf, 0o644))
	}
}
