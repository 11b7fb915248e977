package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchTree writes 3000 small files (512 B to 16 KiB, in 30 directories)
// and two 8 MiB files, all with content unique to seed, and returns their
// count and total size.
func benchTree(b *testing.B, dir string, seed uint64) (files int, size int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	for i := range 3000 {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%30))
		must(b, os.MkdirAll(d, 0o755))
		buf := make([]byte, 512+rng.IntN(16<<10-512))
		src.Read(buf)
		must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), buf, 0o644))
		size += int64(len(buf))
	}
	for i := range 2 {
		buf := make([]byte, 8<<20)
		src.Read(buf)
		must(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("big%d", i)), buf, 0o644))
		size += int64(len(buf))
	}
	return 3002, size
}

func BenchmarkImportDir(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		s := newTestStore(b)
		var files int
		var seed uint64
		for b.Loop() {
			b.StopTimer()
			seed++
			dir := b.TempDir()
			n, size := benchTree(b, dir, seed)
			files += n
			b.SetBytes(size)
			b.StartTimer()
			r, err := s.ImportDir(ctx, "bench", "main", dir)
			must(b, err)
			if r.BytesUploaded != r.BytesScanned {
				b.Fatalf("cold import uploaded %d of %d bytes", r.BytesUploaded, r.BytesScanned)
			}
		}
		b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("warm", func(b *testing.B) {
		s := newTestStore(b)
		dir := b.TempDir()
		n, size := benchTree(b, dir, 0)
		_, err := s.ImportDir(ctx, "bench", "main", dir)
		must(b, err)
		b.SetBytes(size)
		for b.Loop() {
			r, err := s.ImportDir(ctx, "bench", "main", dir)
			must(b, err)
			if r.BlobsUploaded != 0 {
				b.Fatalf("warm import uploaded %d blobs", r.BlobsUploaded)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
	})
}
