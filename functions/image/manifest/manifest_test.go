package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	d := Sum([]byte("abc"))
	const abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if d.String() != abc {
		t.Fatalf("String() = %s, want %s", d, abc)
	}
	got, err := ParseDigest(abc)
	if err != nil || got != d {
		t.Fatalf("ParseDigest(%q) = %v, %v", abc, got, err)
	}
	for _, bad := range []string{
		"", "sha256:", abc[:len(abc)-1], abc + "0", strings.ToUpper(abc),
		"sha256:" + strings.ToUpper(abc[7:]), "SHA256:" + abc[7:], "sha512:" + abc[7:],
		" " + abc, "sha256:" + abc[7:len(abc)-1] + "g",
	} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", bad)
		}
	}
}

// sample is a small manifest with every type and field in use.
func sample() *Manifest {
	d1, d2 := Sum([]byte("hello")), Sum([]byte("big"))
	return &Manifest{Version: FormatVersion, Entries: []Entry{
		{Path: ".", Type: TypeDir, Mode: 0o755, MTime: 1},
		{Path: "bin", Type: TypeSymlink, Mode: 0o777, LinkTarget: "usr/bin", MTime: -5},
		{Path: "dev", Type: TypeDir, Mode: 0o755},
		{Path: "dev/null", Type: TypeChar, Mode: 0o666, DevMajor: 1, DevMinor: 3},
		{Path: "dev/sda", Type: TypeBlock, Mode: 0o660, GID: 6, DevMajor: 8},
		{Path: "etc/passwd", Type: TypeFile, Mode: 0o644, Size: 5, Digest: d1, MTime: 1700000000123456789},
		{Path: "etc/passwd-", Type: TypeHardlink, LinkTarget: "etc/passwd"},
		{Path: "run/initctl", Type: TypeFifo, Mode: 0o600},
		{Path: "run/sock", Type: TypeSocket, Mode: 0o777, UID: 100, GID: 101},
		{Path: "tmp", Type: TypeDir, Mode: 0o1777},
		{Path: "usr/bin/ping", Type: TypeFile, Mode: 0o4755, Size: 3 << 20, Digest: d2,
			Chunks: []Chunk{{Sum([]byte("a")), 1 << 20}, {Sum([]byte("b")), 2 << 20}},
			Xattrs: map[string][]byte{"security.capability": {1, 0, 0, 2, 0, 0x20}, "security.selinux": []byte("system_u:object_r:ping_exec_t:s0\x00")}},
		{Path: "weird name\nwith newline \xff ü", Type: TypeFile, Mode: 0o2755, UID: 4294967295, Size: 0, Digest: Sum(nil),
			Xattrs: map[string][]byte{"user.empty": {}}},
	}}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decode(encode(m)) differs:\n got %+v\nwant %+v", got, m)
	}
	b2, _ := Encode(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding changed the bytes")
	}
	d1, _ := DigestOf(m)
	d2, _ := DigestOf(got)
	if d1 != d2 {
		t.Fatal("digest of equal manifests differs")
	}
}

// TestDecodeRefuses feeds encodings Encode would refuse to write, each with
// the error that must name the entry.
func TestDecodeRefuses(t *testing.T) {
	enc := func(t *testing.T, es ...Entry) []byte {
		t.Helper()
		var buf []byte
		buf = append(buf, magic...)
		buf = binary.AppendUvarint(buf, FormatVersion)
		buf = binary.AppendUvarint(buf, uint64(len(es)))
		prev := ""
		for _, e := range es {
			one, err := encodeEntryUnchecked(e, prev)
			if err != nil {
				t.Fatal(err)
			}
			buf = append(buf, one...)
			prev = e.Path
		}
		return buf
	}
	file := func(p string) Entry { return Entry{Path: p, Type: TypeFile, Mode: 0o644, Digest: Sum(nil)} }
	dir := func(p string) Entry { return Entry{Path: p, Type: TypeDir, Mode: 0o755} }
	good := enc(t, file("a"))
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"unsorted", enc(t, file("b"), file("a")), `entry 1 "a": not sorted`},
		{"duplicate", enc(t, file("a"), file("a")), `entry 1 "a": duplicate`},
		{"root not first", enc(t, dir("a"), dir(".")), `entry 1 ".": not sorted`},
		{"root not dir", enc(t, file(".")), `root is a file`},
		{"dotdot", enc(t, file("a/../b")), `entry 0 "a/../b": path has a ".." element`},
		{"absolute", enc(t, file("/etc")), `path is absolute`},
		{"trailing slash", enc(t, file("a/")), `empty element`},
		{"nul", enc(t, file("a\x00b")), `NUL`},
		{"hardlink missing", enc(t, Entry{Path: "a", Type: TypeHardlink, LinkTarget: "b"}, file("b")), `entry 0 "a": hardlink target "b" missing`},
		{"hardlink to dir", enc(t, dir("a"), Entry{Path: "b", Type: TypeHardlink, LinkTarget: "a"}), `entry 1 "b": hardlink target "a" is a dir`},
		{"unknown type", enc(t, Entry{Path: "a", Type: 99}), `entry 0 "a": unknown type 99`},
		{"type zero", enc(t, Entry{Path: "a"}), `unknown type 0`},
		{"symlink without target", enc(t, Entry{Path: "a", Type: TypeSymlink}), `symlink has no target`},
		{"file without digest", enc(t, Entry{Path: "a", Type: TypeFile}), `file has no digest`},
		{"chunks mismatch", enc(t, Entry{Path: "a", Type: TypeFile, Size: 3, Digest: Sum(nil), Chunks: []Chunk{{Sum(nil), 2}}}), `chunks add up to 2`},
		{"oversize path", enc(t, file(strings.Repeat("x", MaxPathLen+1))), `exceeds limit`},
		{"oversize xattr", enc(t, Entry{Path: "a", Type: TypeDir, Xattrs: map[string][]byte{"user.x": make([]byte, MaxXattrValueLen+1)}}), `xattr "user.x" value: value 65537 exceeds limit`},
		{"mode bits", enc(t, Entry{Path: "a", Type: TypeDir, Mode: 0o10000}), `mode: value 4096 exceeds limit`},
		{"trailing garbage", append(bytes.Clone(good), 0), `1 bytes of trailing data`},
		{"truncated", good[:len(good)-1], `entry 0 "a": xattr count: unexpected end of data`},
		{"bad magic", []byte("HERDXX\x01\x00"), `missing "HERDMF" header`},
		{"bad version", []byte("HERDMF\x02\x00"), `version 2`},
		{"non-minimal varint", []byte("HERDMF\x81\x00\x00"), `non-minimal`},
		{"huge count", []byte("HERDMF\x01\xff\xff\xff\x0f"), `exceeds limit`},
		{"count larger than data", []byte("HERDMF\x01\x05"), `entry 0: path prefix: unexpected end of data`},
		{"non-maximal prefix", func() []byte {
			b := enc(t, file("ab"))
			one, _ := encodeEntryUnchecked(file("ac"), "")
			b = append(b, one...)
			b[len(magic)+1] = 2
			return b
		}(), `entry 1 "ac": path prefix 0 is not the whole prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("EntryError", func(t *testing.T) {
		_, err := Decode(enc(t, file("b"), file("a")))
		var ee *EntryError
		if !errors.As(err, &ee) || ee.Index != 1 || ee.Path != "a" {
			t.Fatalf("error %v is not an EntryError for entry 1 \"a\"", err)
		}
	})
	t.Run("xattrs unsorted", func(t *testing.T) {
		b := enc(t, Entry{Path: "a", Type: TypeDir, Xattrs: map[string][]byte{"user.a": nil, "user.b": nil}})
		b = bytes.Replace(b, []byte("user.a"), []byte("user.c"), 1)
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "not sorted or duplicate") {
			t.Fatalf("Decode error = %v", err)
		}
	})
}

// encodeEntryUnchecked encodes one entry as Encode would, without
// validation, so tests can build invalid input.
func encodeEntryUnchecked(e Entry, prev string) ([]byte, error) {
	return appendEntry(nil, &e, prev), nil
}

func TestEncodeValidates(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"unsorted", func(m *Manifest) { m.Entries[1], m.Entries[2] = m.Entries[2], m.Entries[1] }, `entry 2 "bin": not sorted`},
		{"dir with size", func(m *Manifest) { m.Entries[2].Size = 1 }, `entry 2 "dev": dir has size`},
		{"fifo with device", func(m *Manifest) { m.Entries[7].DevMajor = 1 }, `"run/initctl": fifo has device numbers`},
		{"dir with link", func(m *Manifest) { m.Entries[2].LinkTarget = "x" }, `"dev": dir has a link target`},
		{"hardlink with mode", func(m *Manifest) { m.Entries[6].Mode = 0o644 }, `"etc/passwd-": hardlink has fields`},
		{"version", func(m *Manifest) { m.Version = 2 }, `version 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sample()
			tt.edit(m)
			if _, err := Encode(m); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := sample()
	b := sample()
	if c := Diff(a, b); !c.Empty() || c.Summary() != "+0 ~0 -0" {
		t.Fatalf("Diff of equal = %+v", c)
	}
	b.Entries = append(b.Entries[:3], b.Entries[4:]...) // remove dev/null
	b.Entries[4].Mode = 0o640                           // etc/passwd
	b.Entries[4].Digest = Sum([]byte("x"))
	b.Entries[4].UID = 1
	b.Entries[0].Xattrs = map[string][]byte{"user.a": {1}}
	b.Entries[1].LinkTarget = "/usr/bin" // bin
	b.Entries = append(b.Entries, Entry{Path: "zzz", Type: TypeDir})
	c := Diff(a, b)
	want := Changes{
		Added: []string{"zzz"},
		Changed: []Change{
			{".", ChangedXattrs},
			{"bin", ChangedLink},
			{"etc/passwd", ChangedContent | ChangedMode | ChangedOwner},
		},
		Removed: []string{"dev/null"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Diff = %+v, want %+v", c, want)
	}
	if c.Summary() != "+1 ~3 -1" {
		t.Fatalf("Summary = %q", c.Summary())
	}
	wantText := "+ \"zzz\"\n~ \".\" (xattrs)\n~ \"bin\" (link)\n~ \"etc/passwd\" (content,mode,owner)\n- \"dev/null\"\n"
	if c.String() != wantText {
		t.Fatalf("String = %q, want %q", c.String(), wantText)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(sample())
	f.Add(b)
	s, _ := Encode(synthetic(50))
	f.Add(s)
	f.Add([]byte("HERDMF\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("encode(decode(x)) != x: the encoding is not canonical")
		}
		m2, err := Decode(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(m)) != m: %v", err)
		}
	})
}

// synthetic builds a manifest shaped like a distribution root: deep shared
// directory prefixes, mostly files, some symlinks, hardlinks and xattrs.
func synthetic(n int) *Manifest {
	m := &Manifest{Version: FormatVersion, Entries: make([]Entry, 0, n)}
	m.Entries = append(m.Entries, Entry{Path: ".", Type: TypeDir, Mode: 0o755})
	dirs := []string{"usr/lib/x86_64-linux-gnu", "usr/share/doc", "usr/share/locale/de/LC_MESSAGES", "usr/lib/python3/dist-packages", "usr/include/linux"}
	for i := 0; len(m.Entries) < n; i++ {
		dir := fmt.Sprintf("%s/pkg%04d", dirs[i%len(dirs)], i/len(dirs))
		m.Entries = append(m.Entries, Entry{Path: dir, Type: TypeDir, Mode: 0o755, MTime: 1700000000000000000 + int64(i)})
		first := ""
		for j := 0; j < 20 && len(m.Entries) < n; j++ {
			p := fmt.Sprintf("%s/module_%d_file%03d.so", dir, i, j)
			e := Entry{Path: p, Type: TypeFile, Mode: 0o644, Size: uint64(1000 + i*j), MTime: 1700000000123456789 + int64(i*j),
				Digest: Sum([]byte(p))}
			switch {
			case j == 0:
				first = p
			case j%10 == 3:
				e = Entry{Path: p, Type: TypeSymlink, Mode: 0o777, LinkTarget: "module_0_file000.so", MTime: e.MTime}
			case j%17 == 5:
				e = Entry{Path: p, Type: TypeHardlink, LinkTarget: first}
			case j%13 == 7:
				e.Mode = 0o4755
				e.Xattrs = map[string][]byte{"security.capability": {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
			}
			m.Entries = append(m.Entries, e)
		}
	}
	m.Sort()
	return m
}

const benchEntries = 100_000

func BenchmarkEncode(b *testing.B) {
	m := synthetic(benchEntries)
	out, err := Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out))/1e6, "MB/manifest")
	b.ReportMetric(float64(len(out))/benchEntries, "B/entry")
}

func BenchmarkDecode(b *testing.B) {
	out, err := Encode(synthetic(benchEntries))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := Decode(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONLines is the alternative not chosen, measured for comparison.
func BenchmarkJSONLines(b *testing.B) {
	m := synthetic(benchEntries)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		for i := range m.Entries {
			if err := enc.Encode(&m.Entries[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(buf.Len())/1e6, "MB/manifest")
	b.ReportMetric(float64(buf.Len())/benchEntries, "B/entry")
}
