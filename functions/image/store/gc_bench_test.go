package store

import (
	"fmt"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// BenchmarkGCMark measures the mark phase's work per version: decoding a
// manifest of 50,000 entries (every tenth file in four chunks) and marking
// its blobs.
func BenchmarkGCMark(b *testing.B) {
	const n = 50_000
	m := &manifest.Manifest{Version: manifest.FormatVersion, Entries: []manifest.Entry{{Path: ".", Type: manifest.TypeDir, Mode: 0o755}}}
	for i := range n {
		e := manifest.Entry{Path: fmt.Sprintf("usr/share/f%06d", i), Type: manifest.TypeFile, Mode: 0o644, Size: 4 << 20,
			Digest: manifest.Sum(fmt.Appendf(nil, "file %d", i))}
		if i%10 == 0 {
			for j := range 4 {
				e.Chunks = append(e.Chunks, manifest.Chunk{Digest: manifest.Sum(fmt.Appendf(nil, "chunk %d %d", i, j)), Size: 1 << 20})
			}
		}
		m.Entries = append(m.Entries, e)
	}
	m.Entries = append([]manifest.Entry{m.Entries[0], {Path: "usr", Type: manifest.TypeDir, Mode: 0o755}, {Path: "usr/share", Type: manifest.TypeDir, Mode: 0o755}}, m.Entries[1:]...)
	enc, err := manifest.Encode(m)
	must(b, err)
	b.SetBytes(int64(len(enc)))
	var blobs map[manifest.Digest]struct{}
	for b.Loop() {
		dm, err := manifest.Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		blobs = map[manifest.Digest]struct{}{}
		markBlobs(dm, blobs)
	}
	if want := n + n/10*4; len(blobs) != want {
		b.Fatalf("marked %d blobs, want %d", len(blobs), want)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}
