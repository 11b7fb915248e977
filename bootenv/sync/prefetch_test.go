package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// TestPrefetchServesFromBatches: once the batches are in, Apply's Opens
// are all served from them, each blob fetched once, none one by one.
func TestPrefetchServesFromBatches(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	manyFiles(t, src, 300, 5)
	want := e.importTree(t, src)
	ctx := context.Background()
	p, err := Plan(ctx, want, dst, Policy{})
	must(t, err)
	pf := Prefetch(ctx, &p, &batches{f: e.f}, e.f, PrefetchOptions{BatchBlobs: 64})
	defer pf.Close()
	for deadline := time.Now().Add(time.Minute); pf.Stats().Fetched < p.FetchBlobs; {
		if time.Now().After(deadline) {
			t.Fatalf("prefetched %+v of %d blobs in a minute", pf.Stats(), p.FetchBlobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := Apply(ctx, p, dst, pf, ApplyOptions{})
	must(t, err)
	checkSame(t, want, dst)
	ps := pf.Stats()
	n, got := e.f.reset()
	if ps.Batches != (p.FetchBlobs+63)/64 || ps.Served != p.FetchBlobs || ps.Fallbacks != 0 || st.FetchedBlobs != p.FetchBlobs || n != p.FetchBlobs || len(got) != n {
		t.Errorf("prefetch %+v, apply %+v, fetched %d (%d distinct); plan fetches %d", ps, st, n, len(got), p.FetchBlobs)
	}
}

// dupTree writes n files whose content is one of k, and returns a plan
// for it whose every piece is fetched: Plan copies a content it already
// fetched from the first file with it, which is undone here so that many
// files of the plan want the same blob, the case Prefetch counts.
func dupTree(t *testing.T, e *env, n, k int, dst string) (*manifest.Manifest, SyncPlan) {
	t.Helper()
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	contents := make([][]byte, k)
	for i := range contents {
		contents[i] = make([]byte, 1000+rng.IntN(12<<10))
		for j := range contents[i] {
			contents[i][j] = byte(rng.Uint32())
		}
	}
	for i := range n {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i%7))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), contents[rng.IntN(k)], 0o644))
	}
	want := e.importTree(t, src)
	p, err := Plan(context.Background(), want, dst, Policy{})
	must(t, err)
	copies := 0
	for i := range p.Create {
		for j := range p.Create[i].Pieces {
			pc := &p.Create[i].Pieces[j]
			if pc.From != "" {
				pc.From, pc.Offset, pc.After = "", 0, false
				copies++
			}
		}
	}
	if copies < n-k {
		t.Fatalf("plan copies %d pieces locally, want at least %d", copies, n-k)
	}
	return want, p
}

// TestPrefetchTinyBudgetManyWorkers: with room for less than one blob,
// batches of three and many workers wanting the same blobs, Apply still
// writes the tree, and no blob is fetched more often than blob by blob
// would.
func TestPrefetchTinyBudgetManyWorkers(t *testing.T) {
	needRoot(t)
	for _, opts := range []PrefetchOptions{
		{Budget: 1, BatchBlobs: 3},
		{Budget: 20 << 10, BatchBlobs: 3, InFlight: 1},
		{Budget: 64 << 10, BatchBytes: 16 << 10},
		{},
	} {
		t.Run(fmt.Sprintf("budget %d batch %d", opts.Budget, opts.BatchBlobs), func(t *testing.T) {
			e := newEnv(t)
			dst := t.TempDir()
			want, p := dupTree(t, e, 400, 25, dst)
			ctx := context.Background()
			pf := Prefetch(ctx, &p, &batches{f: e.f}, e.f, opts)
			st, err := Apply(ctx, p, dst, pf, ApplyOptions{Workers: 32})
			must(t, err)
			must(t, pf.Close())
			checkSame(t, want, dst)
			ps := pf.Stats()
			n, got := e.f.reset()
			if ps.Served+ps.Fallbacks != st.FetchedBlobs || st.FetchedBlobs != 400 || n > 400 || len(got) != 25 || ps.Failed != 0 {
				t.Errorf("prefetch %+v, apply %+v, fetched %d (%d distinct)", ps, st, n, len(got))
			}
		})
	}
}

// TestPrefetchBatchCut: a batch cut short stops prefetching; what it did
// not bring comes from the fallback, and the tree is the same.
func TestPrefetchBatchCut(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	manyFiles(t, src, 120, 6)
	want := e.importTree(t, src)
	ctx := context.Background()
	p, err := Plan(ctx, want, dst, Policy{})
	must(t, err)
	b := &batches{f: e.f, cut: func(k int) int {
		if k == 2 {
			return 3
		}
		return -1
	}}
	pf := Prefetch(ctx, &p, b, e.f, PrefetchOptions{BatchBlobs: 10})
	st, err := Apply(ctx, p, dst, pf, ApplyOptions{})
	must(t, err)
	must(t, pf.Close())
	checkSame(t, want, dst)
	ps := pf.Stats()
	if ps.Failed != 1 || ps.Batches > 3 || ps.Fallbacks < 100 || ps.Served+ps.Fallbacks != st.FetchedBlobs {
		t.Errorf("prefetch %+v, apply %+v", ps, st)
	}
}

// stuck is a BatchSource whose batches never arrive: they end only with
// their context.
type stuck struct{ started, ended chan struct{} }

func (s stuck) FetchBlobs(ctx context.Context, ds []manifest.Digest, each func(manifest.Digest, io.Reader, int64) error) error {
	s.started <- struct{}{}
	<-ctx.Done()
	s.ended <- struct{}{}
	return ctx.Err()
}

// TestPrefetchStopsWithContext: Apply waiting on batches that never come
// ends when its context does, and the prefetcher's goroutines end with
// Close (or the context) without anything left running.
func TestPrefetchStopsWithContext(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	src, dst := t.TempDir(), t.TempDir()
	manyFiles(t, src, 50, 8)
	want := e.importTree(t, src)
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := Plan(ctx, want, dst, Policy{})
			must(t, err)
			s := stuck{started: make(chan struct{}, 10), ended: make(chan struct{}, 10)}
			pf := Prefetch(ctx, &p, s, e.f, PrefetchOptions{BatchBlobs: 10})
			<-s.started
			<-s.started
			applied := make(chan error, 1)
			go func() {
				_, err := Apply(ctx, p, dst, pf, ApplyOptions{Workers: 4})
				applied <- err
			}()
			if how == "cancel" {
				cancel()
			} else {
				// Apply waits on the stuck batches; Close ends them and
				// its Opens go to the fallback.
				closed := make(chan error, 1)
				go func() { closed <- pf.Close() }()
				select {
				case err := <-closed:
					must(t, err)
				case <-time.After(time.Minute):
					t.Fatal("Close did not return")
				}
			}
			select {
			case err := <-applied:
				if how == "cancel" && !errors.Is(err, context.Canceled) {
					t.Errorf("apply after cancel: %v", err)
				}
				if how == "close" && err != nil {
					t.Errorf("apply after close: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Apply did not end")
			}
			must(t, pf.Close())
			for range 2 {
				<-s.ended
			}
			if len(s.started) != 0 {
				t.Errorf("%d more batches started", len(s.started))
			}
		})
	}
}
