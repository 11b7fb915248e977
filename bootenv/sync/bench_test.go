package sync

import (
	"context"
	"testing"
)

// BenchmarkSync syncs a tree of 10,000 small files (100 B to 8 KiB) from
// MinIO: "full" into an empty directory each time, "nochange" plans over a
// synced tree (the fast path every boot takes).
func BenchmarkSync(b *testing.B) {
	needRoot(b)
	e := newEnv(b)
	src := b.TempDir()
	const n = 10000
	manyFiles(b, src, n, 7)
	want := e.importTree(b, src)
	var size int64
	for _, en := range want.Entries {
		size += int64(en.Size)
	}
	ctx := context.Background()
	b.Run("full", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			dst := b.TempDir()
			b.StartTimer()
			p, err := Plan(ctx, want, dst, Policy{})
			must(b, err)
			if _, err := Apply(ctx, p, dst, e.f, ApplyOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("nochange", func(b *testing.B) {
		dst := b.TempDir()
		p, err := Plan(ctx, want, dst, Policy{})
		must(b, err)
		_, err = Apply(ctx, p, dst, e.f, ApplyOptions{})
		must(b, err)
		for b.Loop() {
			p, err := Plan(ctx, want, dst, Policy{})
			must(b, err)
			if !p.Empty() {
				b.Fatalf("plan over a synced tree: %s", p.Summary())
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
	})
}
