package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/tftp"
)

func TestReadRequest(t *testing.T) {
	got := ReadRequest("undionly.kpxe", IPXEBlockSize)
	want := []byte("\x00\x01undionly.kpxe\x00octet\x00blksize\x001432\x00tsize\x000\x00")
	if !bytes.Equal(got, want) {
		t.Errorf("RRQ %q, want %q", got, want)
	}
	if got := ReadRequest("f", 512); !bytes.Equal(got, []byte("\x00\x01f\x00octet\x00")) {
		t.Errorf("RRQ without options %q", got)
	}
}

func TestParseOACK(t *testing.T) {
	got, err := ParseOACK([]byte("blksize\x001432\x00TSIZE\x0070000\x00"))
	if err != nil || !reflect.DeepEqual(got, map[string]string{"blksize": "1432", "tsize": "70000"}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"blksize\x001432", "blksize\x00"} {
		if _, err := ParseOACK([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseOACK: option lists come from the network.
func FuzzParseOACK(f *testing.F) {
	f.Add([]byte("blksize\x001432\x00tsize\x00123\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		opts, err := ParseOACK(p)
		if err == nil && len(p) > 0 && p[len(p)-1] != 0 {
			t.Fatalf("accepted %q without final NUL: %v", p, opts)
		}
	})
}

// edgeTFTP runs herd's own TFTP server on loopback over root.
func edgeTFTP(t *testing.T, root string) netip.AddrPort {
	t.Helper()
	srv, err := tftp.New(tftp.Config{Root: root}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := tftp.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// pin/tftp asks for each request's interface (and so its MTU) only
	// once Serve runs; a request queued before then is capped at 512-byte
	// blocks.
	time.Sleep(100 * time.Millisecond)
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestFetchTFTPFromEdge(t *testing.T) {
	root := t.TempDir()
	// A size that is an exact multiple of the block size ends with an
	// empty block; both endings are tried.
	for name, size := range map[string]int{"odd.bin": 70*1432 + 17, "even.bin": 3 * 1432, "empty.bin": 0} {
		content := make([]byte, size)
		rand.Read(content)
		if err := os.WriteFile(filepath.Join(root, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	server := edgeTFTP(t, root)
	ctx := context.Background()
	for _, name := range []string{"odd.bin", "even.bin", "empty.bin"} {
		want, _ := os.ReadFile(filepath.Join(root, name))
		var got bytes.Buffer
		st, err := FetchTFTP(ctx, server, name, TFTPConfig{}, &got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Bytes(), want) || st.Bytes != int64(len(want)) || st.TSize != int64(len(want)) {
			t.Errorf("%s: got %d bytes, stats %+v, want %d", name, got.Len(), st, len(want))
		}
		if st.BlockSize != IPXEBlockSize || st.Retransmits != 0 {
			t.Errorf("%s: stats %+v", name, st)
		}
	}
	// Debian's iPXE, when installed, as a node fetches it.
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err == nil {
		st, err := FetchTFTP(ctx, edgeTFTP(t, "/usr/lib/ipxe"), "undionly.kpxe", TFTPConfig{}, &bytes.Buffer{})
		if err != nil || st.Bytes < 50_000 {
			t.Errorf("undionly.kpxe: %+v, %v", st, err)
		}
	}

	_, err := FetchTFTP(ctx, server, "missing.bin", TFTPConfig{}, &bytes.Buffer{})
	if KindOf(err) != KindTFTP {
		t.Errorf("missing file: %v", err)
	}
	_, err = FetchTFTP(ctx, server, "../etc/passwd", TFTPConfig{}, &bytes.Buffer{})
	if KindOf(err) != KindTFTP {
		t.Errorf("path outside the root: %v", err)
	}
}

// TestFetchTFTPRetransmits plays a server that loses packets: it ignores
// the first read request and sends block 1 twice; the client must send the
// request again, acknowledge the duplicate again, and count both.
func TestFetchTFTPRetransmits(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 1500)
		// Lose the first RRQ; answer the second from a transfer port.
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			return
		}
		_, client, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		xfer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return
		}
		defer xfer.Close()
		data := func(block uint16, n int) []byte {
			p := make([]byte, 4+n)
			p[1] = 3
			binary.BigEndian.PutUint16(p[2:], block)
			return p
		}
		xfer.WriteToUDP([]byte("\x00\x06blksize\x00512\x00tsize\x00600\x00"), client)
		xfer.ReadFromUDP(buf) // ACK 0
		xfer.WriteToUDP(data(1, 512), client)
		xfer.WriteToUDP(data(1, 512), client) // duplicate
		xfer.ReadFromUDP(buf)                 // ACK 1
		xfer.ReadFromUDP(buf)                 // ACK 1 again
		xfer.WriteToUDP(data(2, 88), client)
		xfer.ReadFromUDP(buf) // ACK 2
	}()
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	st, err := FetchTFTP(context.Background(), server, "f", TFTPConfig{Timeout: 100 * time.Millisecond}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != 600 || st.BlockSize != 512 || st.Retransmits != 2 {
		t.Errorf("stats %+v, want 600 bytes in 512-byte blocks and 2 retransmits", st)
	}
}

func TestFetchTFTPTimeout(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	start := time.Now()
	st, err := FetchTFTP(context.Background(), server, "f", TFTPConfig{Timeout: 50 * time.Millisecond, Retries: 2}, &bytes.Buffer{})
	if KindOf(err) != KindTFTPTimeout || st.Retransmits != 2 {
		t.Errorf("silent server: %+v, %v", st, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %s, want about 3 × 50ms", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := FetchTFTP(ctx, server, "f", TFTPConfig{Timeout: time.Minute}, &bytes.Buffer{}); KindOf(err) != KindCanceled {
		t.Errorf("cancelled fetch: %v", err)
	}
}
