package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// TestOpenBlobsChecksEachBlob: a batch whose blob has a wrong byte, that
// ends early or that carries more than asked fails, naming the blob.
func TestOpenBlobsChecksEachBlob(t *testing.T) {
	blobs := [][]byte{[]byte("first blob"), {}, []byte("third blob, the last")}
	var ds []manifest.Digest
	for _, b := range blobs {
		ds = append(ds, manifest.Sum(b))
	}
	var mangle func([]byte) []byte
	var asked []manifest.Digest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Digests []manifest.Digest }
		if r.Method != http.MethodPost || r.URL.Path != "/boot/sessions/s/blobs" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		asked = req.Digests
		var out []byte
		for _, b := range blobs {
			out = binary.BigEndian.AppendUint64(out, uint64(len(b)))
			out = append(out, b...)
		}
		w.Header().Set("Content-Type", BlobsType)
		w.Write(mangle(out))
	}))
	defer srv.Close()
	b := NewBoot(srv.URL, "tok", nil)
	ctx := context.Background()
	read := func() ([]string, error) {
		var got []string
		err := b.FetchBlobs(ctx, "s", ds, func(d manifest.Digest, r io.Reader, size int64) error {
			c, err := io.ReadAll(r)
			if err == nil {
				got = append(got, string(c))
			}
			return err
		})
		return got, err
	}
	for _, tc := range []struct {
		name   string
		mangle func([]byte) []byte
		got    int    // blobs read whole
		names  string // in the error
	}{
		{"whole", func(b []byte) []byte { return b }, 3, ""},
		{"wrong byte in the third", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, 2, ds[2].String()},
		{"wrong byte in the first", func(b []byte) []byte { b[9] ^= 1; return b }, 0, ds[0].String()},
		{"cut in the third", func(b []byte) []byte { return b[:len(b)-3] }, 2, ds[2].String()},
		{"cut before the third's length", func(b []byte) []byte { return b[:8+10+8+4] }, 2, ds[2].String()},
		{"more after the last", func(b []byte) []byte { return append(b, 0) }, 3, "more after the last"},
	} {
		mangle = tc.mangle
		got, err := read()
		if len(got) != tc.got || tc.names == "" && err != nil || tc.names != "" && (err == nil || !strings.Contains(err.Error(), tc.names)) {
			t.Errorf("%s: read %q, %v", tc.name, got, err)
		}
		if len(asked) != len(ds) || asked[2] != ds[2] {
			t.Errorf("%s: server was asked for %v", tc.name, asked)
		}
	}

	// Next skips what was left unread of a blob, checking it all the same.
	mangle = func(b []byte) []byte { b[9] ^= 1; return b }
	s, err := b.OpenBlobs(ctx, "s", ds)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, _, n, err := s.Next(); err != nil || d != ds[0] || n != 10 {
		t.Fatalf("first: %s %d %v", d, n, err)
	}
	if _, _, _, err := s.Next(); err == nil || !strings.Contains(err.Error(), ds[0].String()) {
		t.Errorf("skipping a corrupt blob: %v", err)
	}
}
