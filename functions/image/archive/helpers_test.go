package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func newTestStore(t testing.TB) *store.Store {
	t.Helper()
	return store.New(testenv.Objects(t), testenv.Redis(t), testenv.Prefix(t))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ent is one tar entry to write: a header and, for regular files, a body.
type ent struct {
	h    tar.Header
	body []byte
}

var epoch = time.Unix(1700000000, 123456789)

func fileEnt(name string, mode int64, body []byte) ent {
	return ent{h: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body)), ModTime: epoch, Format: tar.FormatPAX}, body: body}
}

func dirEnt(name string, mode int64) ent {
	return ent{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}}
}

func linkEnt(name, target string) ent {
	return ent{h: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, ModTime: epoch, Format: tar.FormatPAX}}
}

func symlinkEnt(name, target string) ent {
	return ent{h: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}}
}

// tarOf writes ents as a tar archive.
func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.h
		must(t, tw.WriteHeader(&h))
		if len(e.body) > 0 {
			_, err := tw.Write(e.body)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

func zstdOf(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	must(t, err)
	_, err = zw.Write(b)
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

func xzOf(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	must(t, err)
	_, err = zw.Write(b)
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

// bzip2Of compresses with the bzip2 program; the standard library only
// decompresses.
func bzip2Of(t testing.TB, b []byte) []byte {
	t.Helper()
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("bzip2: %v", err)
	}
	return out
}

// discard is a Blobs that checks and drops contents: for tests of parsing,
// not storage.
type discard struct{}

func (discard) PutBlob(_ context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return false, err
	}
	if n != size {
		return false, io.ErrUnexpectedEOF
	}
	return true, nil
}

// entries maps a manifest's paths to their entries.
func entries(m *manifest.Manifest) map[string]manifest.Entry {
	es := make(map[string]manifest.Entry, len(m.Entries))
	for _, e := range m.Entries {
		es[e.Path] = e
	}
	return es
}
