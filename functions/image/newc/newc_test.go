package newc

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Dir("usr", 0o755)
	w.File("usr/init", 0o755, []byte("#!/bin/sh\n"))
	w.Symlink("bin", "usr/bin")
	w.CharDevice("dev/console", 0o600, 5, 1)
	w.File("empty", 0o644, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	got, err := Read(bytes.NewReader(buf.Bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "usr", Mode: TypeDir | 0o755},
		{Name: "usr/init", Mode: TypeFile | 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "bin", Mode: TypeSymlink | 0o777, Data: []byte("usr/bin")},
		{Name: "dev/console", Mode: TypeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "empty", Mode: TypeFile | 0o644},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Mode != w.Mode || !bytes.Equal(g.Data, w.Data) || g.RdevMajor != w.RdevMajor ||
			g.RdevMinor != w.RdevMinor || g.UID != 0 || g.GID != 0 || g.Mtime != 0 {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestReadRefusesGarbage(t *testing.T) {
	if _, err := Read(bytes.NewReader([]byte("070707 not newc")), 1<<20); !errors.Is(err, ErrFormat) {
		t.Errorf("odc magic: %v", err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.File("big", 0o644, make([]byte, 100))
	w.Close()
	if _, err := Read(bytes.NewReader(buf.Bytes()), 10); !errors.Is(err, ErrFormat) {
		t.Errorf("entry over the limit: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.File("a", 0o644, []byte("x"))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Read(bytes.NewReader(b), 1<<16)
	})
}
