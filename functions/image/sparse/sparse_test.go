package sparse

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriterKeepsContentAndMakesHoles(t *testing.T) {
	data := make([]byte, 8<<20+123)
	rand.NewChaCha8([32]byte{7}).Read(data[:5000])            // data at the start, ending mid-block
	copy(data[6<<20:], bytes.Repeat([]byte{0xaa}, 10000))     // an island in the middle
	data[len(data)-1] = 0                                     // trailing zeros: a hole at the end
	for _, step := range []int{1, 100, 4096, 5000, 1 << 20} { // write sizes must not matter
		p := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(f)
		for off := 0; off < len(data); off += step {
			if _, err := w.Write(data[off:min(off+step, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("step %d: content differs (len %d, want %d)", step, len(got), len(data))
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if used := st.Blocks * 512; used > 64<<10 {
			t.Errorf("step %d: %d bytes of data take %d bytes on disk", step, 15000, used)
		}
	}
}
