package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"

	"github.com/herd-hpc/herd/functions/image/tarcheck"
)

// FuzzFromTar feeds arbitrary bytes to FromTar, and to FromDockerSave, which
// reads the same bytes as an archive of layers: neither may panic, and each
// returns either an error or a manifest that validates. Blobs are discarded:
// this tests parsing, not storage.
func FuzzFromTar(f *testing.F) {
	small := tarOf(f, imageEnts([]byte("not big"))...)
	for _, seed := range [][]byte{
		small,
		gzipOf(f, small),
		zstdOf(f, small),
		xzOf(f, small),
		tarOf(f, fileEnt("a/../../x", 0o644, []byte("x"))),
		tarOf(f, symlinkEnt("lib", "/etc"), fileEnt("lib/x", 0o644, nil)),
		tarOf(f, fileEnt("a", 0o644, nil), linkEnt("b", "a"), linkEnt("c", "b")),
		tarOf(f, fileEnt("etc/.wh.a", 0o644, nil), dirEnt("d", 0o755), fileEnt("d/.wh..wh..opq", 0o644, nil)),
		tarOf(f, ent{h: tar.Header{Name: "s", Typeflag: tar.TypeReg, Size: 3, PAXRecords: map[string]string{
			"SCHILY.xattr.user.x": "1", "LIBARCHIVE.xattr.user.y": "eQ"}}, body: []byte("abc")}),
		small[:len(small)/2],
	} {
		f.Add(seed)
	}
	opts := Options{Limits: tarcheck.Limits{MaxEntries: 1000, MaxEntrySize: 1 << 20}, Workers: 1}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		m, _, err := FromTar(ctx, discard{}, bytes.NewReader(data), opts)
		if err == nil {
			if m == nil {
				t.Fatal("FromTar: no manifest and no error")
			}
			if verr := m.Validate(); verr != nil {
				t.Fatalf("FromTar: invalid manifest: %v", verr)
			}
		}
		m, _, err = FromDockerSave(ctx, discard{}, bytes.NewReader(data), opts)
		if err == nil {
			if m == nil {
				t.Fatal("FromDockerSave: no manifest and no error")
			}
			if verr := m.Validate(); verr != nil {
				t.Fatalf("FromDockerSave: invalid manifest: %v", verr)
			}
		}
	})
}
