package tarcheck

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

// archive writes headers as a tar, each regular file filled with its size
// of 'x'.
func archive(t testing.TB, headers ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range headers {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestVerify(t *testing.T) {
	good := archive(t, dir("./"), dir("./etc/"), file("./etc/hosts", 2000), symlink("./etc/mtab", "/proc/self/mounts"), file("./etc/z", 10))
	// Cut inside etc/hosts's contents (header 512 bytes each, hosts data
	// starts at 3*512).
	cutData := good[:3*512+1000]
	gz := gzipped(t, good)
	for _, tc := range []struct {
		name      string
		data      []byte
		want      error
		wantEntry string
	}{
		{"plain", good, nil, ""},
		{"gzip", gz, nil, ""},
		{"truncated contents", cutData, ErrTruncated, "./etc/hosts"},
		{"truncated gzip contents", gzipped(t, cutData), ErrTruncated, "./etc/hosts"},
		{"truncated gzip stream", gz[:len(gz)-4], ErrTruncated, ""},
		{"bad entry", archive(t, file("a", 1), file("../b", 1)), ErrEscape, "../b"},
		{"empty", nil, ErrNoEntries, ""},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, ErrCompression, ""},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}, ErrCompression, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(bytes.NewReader(tc.data), DefaultLimits())
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.wantEntry != "" && !strings.Contains(err.Error(), tc.wantEntry) {
				t.Errorf("Verify = %v, want it to name %q", err, tc.wantEntry)
			}
		})
	}
}

// FuzzVerify feeds raw bytes to Verify: it must never panic, and the small
// limits keep each run's memory and time bounded.
func FuzzVerify(f *testing.F) {
	seed := archive(f, dir("./"), dir("usr"), file("usr/a", 700), hardlink("usr/b", "usr/a"), symlink("usr/c", "../usr/a"),
		&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3},
		&tar.Header{Name: strings.Repeat("long/", 40) + "name", Typeflag: tar.TypeReg, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "x"}})
	f.Add(seed)
	f.Add(gzipped(f, seed))
	f.Add(seed[:1000])
	f.Add(archive(f, file("../x", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Verify(bytes.NewReader(data), Limits{MaxEntries: 64, MaxEntrySize: 1 << 16})
		var ee *EntryError
		if errors.As(err, &ee) && ee.Index < 0 {
			t.Fatalf("negative entry index: %v", err)
		}
	})
}
