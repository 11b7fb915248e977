package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchTar writes a tar of about 200 MB to dir: 12000 small files (512 B to
// 16 KiB, in 100 directories) and 12 files of 8 MiB, contents random. It
// returns the path, the file count and the content bytes.
func benchTar(b *testing.B, dir string) (string, int, int64) {
	b.Helper()
	p := filepath.Join(dir, "bench.tar")
	f, err := os.Create(p)
	must(b, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	src := rand.NewChaCha8([32]byte{9})
	var size int64
	files := 0
	add := func(name string, n int) {
		buf := make([]byte, n)
		src.Read(buf)
		must(b, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n), ModTime: epoch}))
		_, err := tw.Write(buf)
		must(b, err)
		size += int64(n)
		files++
	}
	for i := range 12000 {
		add(fmt.Sprintf("usr/share/d%03d/f%05d", i%100, i), 512+rng.IntN(16<<10-512))
	}
	for i := range 12 {
		add(fmt.Sprintf("usr/lib/big%02d", i), 8<<20)
	}
	must(b, tw.Close())
	return p, files, size
}

// BenchmarkFromTar imports a ~200 MB tar into real MinIO: cold (every blob
// new, a fresh bucket per run) and warm (every blob already present).
func BenchmarkFromTar(b *testing.B) {
	ctx := context.Background()
	path, files, size := benchTar(b, b.TempDir())
	importOnce := func(b *testing.B, s Blobs) Stats {
		f, err := os.Open(path)
		must(b, err)
		defer f.Close()
		_, st, err := FromTar(ctx, s, f, Options{})
		must(b, err)
		return st
	}
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(size)
		n := 0
		for b.Loop() {
			b.StopTimer()
			s := newTestStore(b)
			b.StartTimer()
			if st := importOnce(b, s); st.BytesUploaded != st.BytesRead {
				b.Fatalf("cold import uploaded %d of %d bytes", st.BytesUploaded, st.BytesRead)
			}
			n++
		}
		b.ReportMetric(float64(files*n)/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("warm", func(b *testing.B) {
		s := newTestStore(b)
		importOnce(b, s)
		b.SetBytes(size)
		n := 0
		for b.Loop() {
			if st := importOnce(b, s); st.BlobsUploaded != 0 {
				b.Fatalf("warm import uploaded %d blobs", st.BlobsUploaded)
			}
			n++
		}
		b.ReportMetric(float64(files*n)/b.Elapsed().Seconds(), "files/s")
	})
}
