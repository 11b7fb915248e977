package chunk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// chunkAll runs a Chunker over data, checks every chunk against the bytes at
// its offset, and returns the chunks.
func chunkAll(t testing.TB, r io.Reader, p Params) ([]Chunk, []byte) {
	t.Helper()
	c, err := NewChunker(r, p)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []Chunk
	var out []byte
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := manifest.Sum(c.Bytes()); got != ch.Digest || len(c.Bytes()) != ch.Length {
			t.Fatalf("chunk at %d: Bytes do not match the chunk", ch.Offset)
		}
		if ch.Offset != int64(len(out)) {
			t.Fatalf("chunk offset %d, want %d", ch.Offset, len(out))
		}
		out = append(out, c.Bytes()...)
		chunks = append(chunks, ch)
	}
	return chunks, out
}

func TestChunkerReassemblesAndRespectsSizes(t *testing.T) {
	p := ParamsForAvg(16 << 10)
	data := randomBytes(1, 8<<20)
	// A reader returning one byte at a time must give the same chunks.
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one-byte": iotest.OneByteReader(bytes.NewReader(data)),
	} {
		t.Run(name, func(t *testing.T) {
			chunks, out := chunkAll(t, r, p)
			if !bytes.Equal(out, data) {
				t.Fatal("reassembled chunks differ from the input")
			}
			for i, ch := range chunks {
				last := i == len(chunks)-1
				if ch.Length > p.MaxSize || (!last && ch.Length < p.MinSize) || ch.Length == 0 {
					t.Errorf("chunk %d has %d bytes, want %d..%d", i, ch.Length, p.MinSize, p.MaxSize)
				}
			}
			mean := len(data) / len(chunks)
			if mean < p.AvgSize/2 || mean > 2*p.AvgSize {
				t.Errorf("mean chunk %d bytes, want near %d", mean, p.AvgSize)
			}
		})
	}
}

// TestChunkerBoundariesAreStable pins the cut points: stored chunk digests
// depend on them, so a change to the gear table or masks must fail here.
func TestChunkerBoundariesAreStable(t *testing.T) {
	chunks, _ := chunkAll(t, bytes.NewReader(randomBytes(2, 4<<20)), ParamsForAvg(64<<10))
	h := sha256.New()
	for _, ch := range chunks {
		fmt.Fprintf(h, "%d %d %x\n", ch.Offset, ch.Length, ch.Digest)
	}
	again, _ := chunkAll(t, bytes.NewReader(randomBytes(2, 4<<20)), ParamsForAvg(64<<10))
	if !slices.Equal(chunks, again) {
		t.Fatal("two runs over the same input cut differently")
	}
	const want = "58 chunks dcb05d317617b87f"
	if got := fmt.Sprintf("%d chunks %x", len(chunks), h.Sum(nil)[:8]); got != want {
		t.Errorf("boundaries = %s, want %s", got, want)
	}
}

func TestChunkerSmallInputs(t *testing.T) {
	p := ParamsForAvg(64 << 10)
	for _, n := range []int{0, 1, 63, p.MinSize, p.MinSize + 1, p.MaxSize, p.MaxSize + 1} {
		data := randomBytes(3, n)
		chunks, out := chunkAll(t, bytes.NewReader(data), p)
		if !bytes.Equal(out, data) {
			t.Errorf("%d bytes: reassembly differs", n)
		}
		switch {
		case n == 0 && len(chunks) != 0:
			t.Errorf("empty input gave %d chunks, want none", len(chunks))
		case n > 0 && n <= p.MinSize && len(chunks) != 1:
			t.Errorf("%d bytes gave %d chunks, want one", n, len(chunks))
		}
	}
}

func TestChunkerReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(randomBytes(4, 100)), iotest.ErrReader(boom))
	c, err := NewChunker(r, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next = %v, want %v", err, boom)
	}
	if _, err := c.Next(); !errors.Is(err, boom) {
		t.Fatalf("second Next = %v, want the error again", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{
		{},
		{MinSize: 1 << 10, AvgSize: 3 << 10, MaxSize: 16 << 10}, // avg not a power of two
		{MinSize: 16, AvgSize: 1 << 10, MaxSize: 4 << 10},       // min too small
		{MinSize: 8 << 10, AvgSize: 4 << 10, MaxSize: 16 << 10}, // min > avg
		{MinSize: 1 << 10, AvgSize: 4 << 10, MaxSize: 4 << 10},  // max == avg
		ParamsForAvg(32 << 20),                                  // max 128 MiB
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("DefaultParams: %v", err)
	}
}

func TestChunked(t *testing.T) {
	if Chunked(Threshold-1) || !Chunked(Threshold) {
		t.Errorf("Chunked is wrong around Threshold %d", Threshold)
	}
}

// edit is a change to a file at offset at, as a package upgrade might make.
type edit struct {
	name  string
	apply func(b []byte, at int) []byte
	added int // bytes the edit itself introduces, which must be sent anyway
}

func edits() []edit {
	return []edit{
		{"insert 1 byte", func(b []byte, at int) []byte { return slices.Insert(slices.Clone(b), at, 'x') }, 1},
		{"overwrite 4 KiB", func(b []byte, at int) []byte {
			b = slices.Clone(b)
			copy(b[at:], randomBytes(9, 4<<10))
			return b
		}, 4 << 10},
		{"insert 1 MiB", func(b []byte, at int) []byte {
			return slices.Insert(slices.Clone(b), at, randomBytes(10, 1<<20)...)
		}, 1 << 20},
	}
}

// digests returns the set of chunk digests of data.
func digests(t testing.TB, data []byte, p Params) map[manifest.Digest]bool {
	have := map[manifest.Digest]bool{}
	chunks, _ := chunkAll(t, bytes.NewReader(data), p)
	for _, ch := range chunks {
		have[ch.Digest] = true
	}
	return have
}

// resent returns how many bytes of data's chunks are not in have, and how
// many chunks data has.
func resent(t testing.TB, have map[manifest.Digest]bool, data []byte, p Params) (sent, chunks int) {
	all, _ := chunkAll(t, bytes.NewReader(data), p)
	for _, ch := range all {
		if !have[ch.Digest] {
			sent += ch.Length
		}
	}
	return sent, len(all)
}

// editSize is the file the edit tests change, and editSpots how many places
// in it each edit is tried at, so one lucky cut point does not decide.
const (
	editSize  = 64 << 20
	editSpots = 4
)

// meanResent returns the mean bytes re-sent for e over editSpots places.
func meanResent(t testing.TB, data []byte, have map[manifest.Digest]bool, e edit, p Params) int {
	sum := 0
	for k := 1; k <= editSpots; k++ {
		n, _ := resent(t, have, e.apply(data, k*len(data)/(editSpots+1)+k*7919), p)
		sum += n
	}
	return sum / editSpots
}

// TestEditsResendFewBytes is the point of the package: a small edit in a
// 64 MiB file re-sends only the chunks around it.
func TestEditsResendFewBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("chunks 64 MiB many times")
	}
	data := randomBytes(5, editSize)
	p := DefaultParams()
	have := digests(t, data, p)
	for _, e := range edits() {
		extra := meanResent(t, data, have, e, p) - e.added
		frac := float64(extra) / editSize
		t.Logf("%-16s re-sent %8d bytes beyond the edit (%.2f%% of the file)", e.name, extra, 100*frac)
		// A small edit changes the chunk it lands in and sometimes a
		// neighbour: 2% of 64 MiB is about five 256 KiB chunks. A large
		// insertion also re-cuts its edges, and normalized chunking takes a
		// few chunks to fall back onto the old cut points.
		limit := 0.02
		if e.added > 1<<16 {
			limit = 0.04
		}
		if frac > limit {
			t.Errorf("%s re-sent %.2f%% of the file beyond the edit, want < %.0f%%", e.name, 100*frac, 100*limit)
		}
	}
}

// TestResendByAverage prints the table used to choose DefaultParams; run it
// with -v.
func TestResendByAverage(t *testing.T) {
	if testing.Short() {
		t.Skip("chunks 64 MiB many times")
	}
	data := randomBytes(5, editSize)
	for _, avg := range []int{64 << 10, 256 << 10, 1 << 20} {
		p := ParamsForAvg(avg)
		have := digests(t, data, p)
		row := fmt.Sprintf("avg %4d KiB, %4d chunks:", avg>>10, len(have))
		for _, e := range edits() {
			n := meanResent(t, data, have, e, p)
			row += fmt.Sprintf(" | %s: %d KiB (%.2f%%)", e.name, n>>10, 100*float64(n)/editSize)
		}
		t.Log(row)
	}
}

func benchmarkChunker(b *testing.B, p Params, digest bool) {
	data := randomBytes(6, 64<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if digest {
			c, err := NewChunker(bytes.NewReader(data), p)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := c.Next(); err != nil {
					break
				}
			}
			continue
		}
		ct := newCutter(p)
		for rest := data; len(rest) > 0; {
			rest = rest[ct.cut(rest[:min(len(rest), p.MaxSize)]):]
		}
	}
}

// BenchmarkCut measures the gear hash and cut-point search alone.
func BenchmarkCut(b *testing.B) {
	for _, avg := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("avg=%dKiB", avg>>10), func(b *testing.B) { benchmarkChunker(b, ParamsForAvg(avg), false) })
	}
}

// BenchmarkChunker measures a Chunker with its buffering and SHA-256 per chunk.
func BenchmarkChunker(b *testing.B) {
	for _, avg := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("avg=%dKiB", avg>>10), func(b *testing.B) { benchmarkChunker(b, ParamsForAvg(avg), true) })
	}
}

// BenchmarkSHA256 is the physical limit the Chunker is compared with.
func BenchmarkSHA256(b *testing.B) {
	data := randomBytes(6, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		manifest.Sum(data)
	}
}
