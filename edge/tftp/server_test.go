package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-hpc/herd/localdev/testenv"
	pintftp "github.com/pin/tftp/v3"
)

// syncBuffer collects log output from concurrent transfers.
type syncBuffer struct{ testenv.Logs }

// records returns the JSON log records with the given message.
func (s *syncBuffer) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// waitRecords waits up to two seconds for n records with msg: the server
// logs a transfer after its last acknowledgement, when the client may
// already be done.
func (s *syncBuffer) waitRecords(t testing.TB, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		recs := s.records(t, msg)
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fixture is a TFTP root with a few files, and a file outside it.
type fixture struct {
	root  string
	big   []byte // 5 MB
	small []byte
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	fx := fixture{root: root, big: make([]byte, 5_000_000), small: []byte("#!ipxe\nchain http://edge/boot/ipxe\n")}
	rand.Read(fx.big)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "efi", "x64"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "outside.txt"), []byte("secret outside the root"), 0o644))
	must(os.WriteFile(filepath.Join(root, "small.ipxe"), fx.small, 0o644))
	must(os.WriteFile(filepath.Join(root, "big.bin"), fx.big, 0o644))
	must(os.WriteFile(filepath.Join(root, "efi", "x64", "snponly.efi"), fx.small, 0o644))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o644))
	must(os.Symlink("small.ipxe", filepath.Join(root, "link-inside")))
	must(os.Symlink("../outside.txt", filepath.Join(root, "link-outside")))
	must(os.Symlink(filepath.Join(dir, "outside.txt"), filepath.Join(root, "link-absolute")))
	must(os.Symlink("..", filepath.Join(root, "up")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return fx
}

// serve starts a Server for root on a loopback port and returns its address.
func serve(t testing.TB, root string) (addr string, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	s, err := New(Config{Root: root}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return conn.LocalAddr().String(), logs
}

type getOpts struct {
	blksize int
	tsize   bool
}

func get(addr, name string, o getOpts) ([]byte, int64, error) {
	c, err := pintftp.NewClient(addr)
	if err != nil {
		return nil, 0, err
	}
	c.SetTimeout(2 * time.Second)
	if o.blksize != 0 {
		c.SetBlockSize(o.blksize)
	}
	c.RequestTSize(o.tsize)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if n, ok := wt.(pintftp.IncomingTransfer).Size(); ok {
		size = n
	}
	var buf bytes.Buffer
	_, err = wt.WriteTo(&buf)
	return buf.Bytes(), size, err
}

func TestGet(t *testing.T) {
	fx := newFixture(t)
	addr, logs := serve(t, fx.root)
	tests := []struct {
		file string
		want []byte
		opts getOpts
	}{
		{"small.ipxe", fx.small, getOpts{}},
		{"/small.ipxe", fx.small, getOpts{blksize: 1468}},
		{"efi/x64/snponly.efi", fx.small, getOpts{}},
		{"link-inside", fx.small, getOpts{}},
		{"empty", []byte{}, getOpts{tsize: true}},
		{"big.bin", fx.big, getOpts{}},
		{"big.bin", fx.big, getOpts{blksize: 1468, tsize: true}},
		{"big.bin", fx.big, getOpts{blksize: 8192}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%+v", tt.file, tt.opts), func(t *testing.T) {
			got, size, err := get(addr, tt.file, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d (content differs)", len(got), len(tt.want))
			}
			if tt.opts.tsize && size != int64(len(tt.want)) {
				t.Errorf("tsize = %d, want %d", size, len(tt.want))
			}
		})
	}
	if sent := logs.waitRecords(t, "tftp sent", len(tests)); len(sent) != len(tests) {
		t.Errorf("%d transfers logged, want %d", len(sent), len(tests))
	}
}

func TestRefused(t *testing.T) {
	fx := newFixture(t)
	addr, logs := serve(t, fx.root)
	tests := []struct {
		file   string
		reason Refusal
	}{
		{"../etc/passwd", RefuseDotDot},
		{"/../x", RefuseDotDot},
		{"../outside.txt", RefuseDotDot},
		{"efi/../small.ipxe", RefuseDotDot},
		{"//etc/passwd", RefuseAbsolute},
		{`..\outside.txt`, RefuseBackslash},
		{"link-outside", RefuseDenied},
		{"link-absolute", RefuseDenied},
		{"up/outside.txt", RefuseDenied},
		{"efi", RefuseDirectory},
		{"fifo", RefuseNotFile},
		{"missing.efi", RefuseNotFound},
		{strings.Repeat("x", 256), RefuseTooLong},
		{"a\x01b", RefuseControl},
	}
	for _, tt := range tests {
		got, _, err := get(addr, tt.file, getOpts{})
		if err == nil {
			t.Errorf("%q: served %d bytes (%q)", tt.file, len(got), got)
			continue
		}
		if !strings.Contains(err.Error(), string(tt.reason)) {
			t.Errorf("%q: client error %q, want it to say %q", tt.file, err, tt.reason)
		}
	}
	recs := logs.waitRecords(t, "tftp request refused", len(tests))
	if len(recs) != len(tests) {
		t.Fatalf("%d refusals logged, want one per request (%d)", len(recs), len(tests))
	}
	for i, rec := range recs {
		if rec["file"] != tests[i].file || rec["reason"] != string(tests[i].reason) ||
			!strings.HasPrefix(fmt.Sprint(rec["client"]), "127.0.0.1:") {
			t.Errorf("log %d = %v, want file %q reason %q and the client address", i, rec, tests[i].file, tests[i].reason)
		}
	}
	if n := len(logs.records(t, "tftp packet ignored")); n != 0 {
		t.Errorf("refusals also logged by the hook (%d lines)", n)
	}
}

func TestWriteRefused(t *testing.T) {
	fx := newFixture(t)
	addr, logs := serve(t, fx.root)
	c, err := pintftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	rf, err := c.Send("new.efi", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("payload"))
	}
	if err == nil || !strings.Contains(err.Error(), string(RefuseWrite)) {
		t.Fatalf("write: err = %v, want %q", err, RefuseWrite)
	}
	if _, err := os.Stat(filepath.Join(fx.root, "new.efi")); !os.IsNotExist(err) {
		t.Errorf("file was written: %v", err)
	}
	if recs := logs.waitRecords(t, "tftp request refused", 1); len(recs) != 1 || recs[0]["reason"] != string(RefuseWrite) {
		t.Errorf("refusal logs = %v", recs)
	}
}

// TestBlockSizeOnTheWire speaks TFTP by hand to see the option
// acknowledgement and the size of the data packets.
func TestBlockSizeOnTheWire(t *testing.T) {
	fx := newFixture(t)
	addr, _ := serve(t, fx.root)
	for _, tt := range []struct {
		opts      []string
		wantOACK  map[string]string
		wantBlock int
	}{
		{nil, nil, 512},
		{[]string{"blksize", "1468"}, map[string]string{"blksize": "1468"}, 1468},
		{[]string{"blksize", "1468", "tsize", "0"}, map[string]string{"blksize": "1468", "tsize": "5000000"}, 1468},
		{[]string{"blksize", "100"}, nil, 512}, // too small: ignored
	} {
		t.Run(strings.Join(tt.opts, "="), func(t *testing.T) {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			srv, _ := net.ResolveUDPAddr("udp4", addr)
			rrq := append([]byte{0, 1}, "big.bin\x00octet\x00"...)
			for _, o := range tt.opts {
				rrq = append(append(rrq, o...), 0)
			}
			conn.WriteToUDP(rrq, srv)
			buf := make([]byte, 65536)
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatal(err)
			}
			op := binary.BigEndian.Uint16(buf)
			if tt.wantOACK != nil {
				if op != 6 {
					t.Fatalf("opcode %d, want OACK", op)
				}
				got := map[string]string{}
				f := strings.Split(strings.TrimSuffix(string(buf[2:n]), "\x00"), "\x00")
				for i := 0; i+1 < len(f); i += 2 {
					got[f[i]] = f[i+1]
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.wantOACK) {
					t.Fatalf("OACK %v, want %v", got, tt.wantOACK)
				}
				conn.WriteToUDP([]byte{0, 4, 0, 0}, from)
				n, _, err = conn.ReadFromUDP(buf)
				if err != nil {
					t.Fatal(err)
				}
				op = binary.BigEndian.Uint16(buf)
			}
			if op != 3 || binary.BigEndian.Uint16(buf[2:]) != 1 {
				t.Fatalf("got opcode %d block %d, want DATA 1", op, binary.BigEndian.Uint16(buf[2:]))
			}
			if n-4 != tt.wantBlock {
				t.Errorf("block of %d bytes, want %d", n-4, tt.wantBlock)
			}
			if !bytes.Equal(buf[4:n], fx.big[:n-4]) {
				t.Error("block content differs")
			}
			// Abort, as PXE ROMs do after learning the size.
			conn.WriteToUDP(append([]byte{0, 5, 0, 8}, "done\x00"...), from)
		})
	}
}

func TestRootAppearsLater(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not-yet")
	addr, logs := serve(t, root)
	if w := logs.waitRecords(t, "TFTP root unavailable; requests are refused until it exists", 1); len(w) != 1 {
		t.Errorf("missing root warned %d times, want once", len(w))
	}
	if _, _, err := get(addr, "a.efi", getOpts{}); err == nil || !strings.Contains(err.Error(), string(RefuseNotFound)) {
		t.Fatalf("err = %v, want not found", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "a.efi"), []byte("x"), 0o644)
	if got, _, err := get(addr, "a.efi", getOpts{}); err != nil || string(got) != "x" {
		t.Fatalf("after creating root: %q, %v", got, err)
	}
}

// TestDebianIPXE serves Debian's ipxe package as installed. Its ipxe.efi
// and ipxe.lkrn are symlinks into /boot, outside the root, so they are
// refused: a TFTP root must hold real files.
func TestDebianIPXE(t *testing.T) {
	const dir = "/usr/lib/ipxe"
	want, err := os.ReadFile(filepath.Join(dir, "undionly.kpxe"))
	if err != nil {
		t.Skipf("Debian package ipxe not installed: %v", err)
	}
	addr, _ := serve(t, dir)
	got, _, err := get(addr, "/undionly.kpxe", getOpts{blksize: 1468})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("undionly.kpxe: %d bytes, %v", len(got), err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "ipxe.efi")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if _, _, err := get(addr, "ipxe.efi", getOpts{}); err == nil {
			t.Error("ipxe.efi, a symlink out of the root, was served")
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := New(Config{}, log); err == nil {
		t.Error("empty root accepted")
	}
	if _, err := New(Config{Root: "/x", MaxBlockSize: 100}, log); err == nil {
		t.Error("block size 100 accepted")
	}
}

// External clients: Debian's tftp-hpa (tftp), atftp and curl. Each test is
// skipped only when its binary is absent; the Makefile's deps target
// installs them.

func lookPath(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s not installed", bin)
	}
	return p
}

func runClient(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func TestTFTPHPAClient(t *testing.T) {
	bin := lookPath(t, "tftp")
	fx := newFixture(t)
	addr, _ := serve(t, fx.root)
	host, port, _ := net.SplitHostPort(addr)
	out := t.TempDir()
	for _, file := range []string{"small.ipxe", "big.bin", "/efi/x64/snponly.efi"} {
		local := filepath.Join(out, filepath.Base(file))
		msg, err := runClient(t, bin, "-m", "binary", host, port, "-c", "get", file, local)
		got, rerr := os.ReadFile(local)
		want, _ := os.ReadFile(filepath.Join(fx.root, file))
		if err != nil || rerr != nil || !bytes.Equal(got, want) {
			t.Errorf("tftp get %s: %v %v: %s", file, err, rerr, msg)
		}
	}
	local := filepath.Join(out, "passwd")
	msg, _ := runClient(t, bin, "-m", "binary", host, port, "-c", "get", "../etc/passwd", local)
	if got, _ := os.ReadFile(local); len(got) != 0 || !strings.Contains(msg, string(RefuseDotDot)) {
		t.Errorf("traversal: got %d bytes, client said %q", len(got), msg)
	}
	src := filepath.Join(out, "upload")
	os.WriteFile(src, []byte("x"), 0o644)
	msg, _ = runClient(t, bin, "-m", "binary", host, port, "-c", "put", src, "upload")
	if !strings.Contains(msg, string(RefuseWrite)) {
		t.Errorf("put: client said %q", msg)
	}
}

func TestATFTPClient(t *testing.T) {
	bin := lookPath(t, "atftp")
	fx := newFixture(t)
	addr, _ := serve(t, fx.root)
	host, port, _ := net.SplitHostPort(addr)
	out := t.TempDir()
	for _, opts := range [][]string{nil, {"--option", "blksize 1468"}, {"--option", "blksize 1468", "--option", "tsize 0"}} {
		local := filepath.Join(out, "big-"+strconv.Itoa(len(opts)))
		args := append(append([]string{}, opts...), "-g", "-r", "big.bin", "-l", local, host, port)
		msg, err := runClient(t, bin, args...)
		got, _ := os.ReadFile(local)
		if err != nil || !bytes.Equal(got, fx.big) {
			t.Errorf("atftp %v: %d bytes, %v: %s", opts, len(got), err, msg)
		}
	}
	for _, file := range []string{"../etc/passwd", "/../x", "link-outside"} {
		local := filepath.Join(out, "refused")
		msg, err := runClient(t, bin, "-g", "-r", file, "-l", local, host, port)
		if got, _ := os.ReadFile(local); err == nil || len(got) != 0 {
			t.Errorf("atftp get %q: err %v, %d bytes: %s", file, err, len(got), msg)
		}
		os.Remove(local)
	}
	src := filepath.Join(out, "upload")
	os.WriteFile(src, []byte("x"), 0o644)
	if msg, err := runClient(t, bin, "-p", "-l", src, "-r", "upload", host, port); err == nil {
		t.Errorf("atftp put succeeded: %s", msg)
	}
}

func TestCurlClient(t *testing.T) {
	bin := lookPath(t, "curl")
	if out, _ := runClient(t, bin, "-V"); !strings.Contains(out, "tftp") {
		t.Skip("curl without tftp")
	}
	fx := newFixture(t)
	addr, _ := serve(t, fx.root)
	out := t.TempDir()
	for _, blk := range []string{"512", "1468"} {
		local := filepath.Join(out, "big"+blk)
		msg, err := runClient(t, bin, "-sS", "--tftp-blksize", blk, "-o", local, "tftp://"+addr+"/big.bin")
		got, _ := os.ReadFile(local)
		if err != nil || !bytes.Equal(got, fx.big) {
			t.Errorf("curl blksize %s: %d bytes, %v: %s", blk, len(got), err, msg)
		}
	}
	if msg, err := runClient(t, bin, "-sS", "-o", filepath.Join(out, "x"), "tftp://"+addr+"/link-outside"); err == nil {
		t.Errorf("curl fetched a symlink out of the root: %s", msg)
	}
}

func BenchmarkTFTPGet(b *testing.B) {
	root := b.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "bench.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	addr, _ := serve(b, root)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		got, _, err := get(addr, "bench.bin", getOpts{blksize: 1468})
		if err != nil || len(got) != len(data) {
			b.Fatalf("%d bytes, %v", len(got), err)
		}
	}
}

func TestWarnsAboutEscapingLinks(t *testing.T) {
	fx := newFixture(t)
	_, logs := serve(t, fx.root)
	recs := logs.waitRecords(t, "symlink leads out of the TFTP root and will be refused; copy the file into the root instead", 3)
	var files []string
	for _, r := range recs {
		files = append(files, fmt.Sprint(r["file"]))
	}
	if strings.Join(files, ",") != "link-absolute,link-outside,up" {
		t.Errorf("warned about %v", files)
	}
}

// TestMalformedPackets throws broken requests at the server: each gets a
// TFTP error or silence, none stops it, and a proper request afterwards
// is served.
func TestMalformedPackets(t *testing.T) {
	fx := newFixture(t)
	addr, _ := serve(t, fx.root)
	srv, _ := net.ResolveUDPAddr("udp4", addr)
	long := strings.Repeat("a", 4000)
	for name, pkt := range map[string][]byte{
		"empty":            {},
		"one byte":         {0},
		"unknown opcode":   {0, 9, 'x', 0},
		"rrq without nuls": append([]byte{0, 1}, "small.ipxe"...),
		"rrq without mode": append([]byte{0, 1}, "small.ipxe\x00"...),
		"rrq bad mode":     append([]byte{0, 1}, "small.ipxe\x00mail\x00"...),
		"rrq long name":    append(append([]byte{0, 1}, long...), "\x00octet\x00"...),
		"rrq odd options":  append([]byte{0, 1}, "small.ipxe\x00octet\x00blksize\x00"...),
		"rrq bad blksize":  append([]byte{0, 1}, "small.ipxe\x00octet\x00blksize\x00-7\x00"...),
		"stray ack":        {0, 4, 0, 1},
		"stray data":       {0, 3, 0, 1, 'x'},
		"error packet":     {0, 5, 0, 1, 'n', 'o', 0},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.WriteToUDP(pkt, srv); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _, err := conn.ReadFromUDP(buf); err == nil {
				// Whatever answers a broken request is an error packet or, for
				// requests pin/tftp reads leniently, the start of the file.
				if op := binary.BigEndian.Uint16(buf[:2]); n < 4 || (op != 5 && op != 3 && op != 6) {
					t.Errorf("answer %x to %q", buf[:n], pkt)
				}
			}
			got, _, err := get(addr, "small.ipxe", getOpts{})
			if err != nil || !bytes.Equal(got, fx.small) {
				t.Fatalf("after %s the server no longer serves: %v", name, err)
			}
		})
	}
}
