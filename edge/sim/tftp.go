package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// IPXEBlockSize is the block size iPXE asks for: TFTP_MAX_BLKSIZE in its
// include/ipxe/tftp.h, the largest that fits an Ethernet frame with room
// for headers. Its read request carries "blksize 1432" and "tsize 0".
const IPXEBlockSize = 1432

// TFTPConfig says how the simulated client fetches: what it asks for and
// how patiently.
type TFTPConfig struct {
	// BlockSize is asked for in the read request; 0 means IPXEBlockSize,
	// 512 asks for no options at all.
	BlockSize int
	// Timeout is how long to wait for a packet before sending the last
	// one again; 0 means one second.
	Timeout time.Duration
	// Retries is how often the last packet is sent again before giving
	// up; 0 means 5.
	Retries int
}

func (c TFTPConfig) withDefaults() TFTPConfig {
	if c.BlockSize == 0 {
		c.BlockSize = IPXEBlockSize
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	return c
}

// TFTPStats describes one transfer.
type TFTPStats struct {
	Bytes     int64
	BlockSize int // as negotiated; 512 when the server took no options
	TSize     int64
	// Retransmits counts packets the client sent again after a timeout
	// plus blocks the server sent twice.
	Retransmits int
}

// TFTP opcodes.
const (
	tftpRRQ   = 1
	tftpDATA  = 3
	tftpACK   = 4
	tftpERROR = 5
	tftpOACK  = 6
)

// ReadRequest builds the RRQ a client sends for file.
func ReadRequest(file string, blockSize int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, tftpRRQ})
	b.WriteString(file)
	b.WriteByte(0)
	b.WriteString("octet")
	b.WriteByte(0)
	if blockSize != 512 {
		for _, kv := range [][2]string{{"blksize", strconv.Itoa(blockSize)}, {"tsize", "0"}} {
			b.WriteString(kv[0])
			b.WriteByte(0)
			b.WriteString(kv[1])
			b.WriteByte(0)
		}
	}
	return b.Bytes()
}

// ParseOACK reads the options of an OACK packet (after the opcode).
func ParseOACK(p []byte) (map[string]string, error) {
	opts := map[string]string{}
	if len(p) == 0 {
		return opts, nil
	}
	if p[len(p)-1] != 0 {
		return nil, errors.New("OACK does not end with NUL")
	}
	fields := strings.Split(string(p[:len(p)-1]), "\x00")
	if len(fields)%2 != 0 {
		return nil, fmt.Errorf("OACK option %q has no value", fields[len(fields)-1])
	}
	for i := 0; i < len(fields); i += 2 {
		opts[strings.ToLower(fields[i])] = fields[i+1]
	}
	return opts, nil
}

// FetchTFTP reads file from server into w the way iPXE does: one block in
// flight, options blksize and tsize, the server's transfer port locked on
// its first answer. Giving up on a silent server is a KindTFTPTimeout
// error; an error packet or a protocol fault is KindTFTP.
func FetchTFTP(ctx context.Context, server netip.AddrPort, file string, cfg TFTPConfig, w io.Writer) (TFTPStats, error) {
	cfg = cfg.withDefaults()
	st := TFTPStats{BlockSize: 512}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return st, stepErr(KindTFTP, "open socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	var (
		last     = ReadRequest(file, cfg.BlockSize)
		lastTo   = server
		peer     netip.AddrPort // the server's transfer port, once known
		expected = uint16(1)
		started  bool // OACK or first DATA seen
		tries    int
		buf      = make([]byte, 65536+4)
	)
	send := func(p []byte, to netip.AddrPort) error {
		last, lastTo = p, to
		if _, err := conn.WriteToUDPAddrPort(p, to); err != nil {
			return stepErr(KindTFTP, "send to %s: %w", to, err)
		}
		return nil
	}
	ack := func(block uint16) []byte {
		p := []byte{0, tftpACK, 0, 0}
		binary.BigEndian.PutUint16(p[2:], block)
		return p
	}
	if err := send(last, lastTo); err != nil {
		return st, err
	}
	for {
		conn.SetReadDeadline(time.Now().Add(cfg.Timeout))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return st, &StepError{Kind: KindCanceled, Err: ctx.Err()}
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return st, stepErr(KindTFTP, "read from %s: %w", server, err)
			}
			if tries >= cfg.Retries {
				return st, stepErr(KindTFTPTimeout, "%s from %s: no block %d after %d tries of %s",
					file, server, expected, tries+1, cfg.Timeout)
			}
			tries++
			st.Retransmits++
			if err := send(last, lastTo); err != nil {
				return st, err
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from.Addr() != server.Addr() {
			continue
		}
		if peer.IsValid() && from != peer {
			// Another transfer's packet, or a stale one (RFC 1350 says
			// answer with error 5; iPXE ignores it, and so do we).
			continue
		}
		if n < 4 {
			return st, stepErr(KindTFTP, "%s from %s: packet of %d bytes", file, server, n)
		}
		op, p := binary.BigEndian.Uint16(buf[:2]), buf[2:n]
		switch op {
		case tftpERROR:
			code := binary.BigEndian.Uint16(p[:2])
			msg := strings.TrimRight(string(p[2:]), "\x00")
			return st, stepErr(KindTFTP, "%s from %s: error %d: %s", file, server, code, msg)
		case tftpOACK:
			if started {
				continue
			}
			opts, err := ParseOACK(p)
			if err != nil {
				return st, stepErr(KindTFTP, "%s from %s: %w", file, server, err)
			}
			if v, ok := opts["blksize"]; ok {
				b, err := strconv.Atoi(v)
				if err != nil || b < 8 || b > cfg.BlockSize {
					return st, stepErr(KindTFTP, "%s from %s: server chose blksize %q, asked for %d", file, server, v, cfg.BlockSize)
				}
				st.BlockSize = b
			}
			if v, ok := opts["tsize"]; ok {
				st.TSize, _ = strconv.ParseInt(v, 10, 64)
			}
			peer, started, tries = from, true, 0
			if err := send(ack(0), peer); err != nil {
				return st, err
			}
		case tftpDATA:
			block := binary.BigEndian.Uint16(p[:2])
			data := p[2:]
			if !started {
				// The server took no options: 512-byte blocks.
				peer, started = from, true
			}
			if block != expected {
				if block == expected-1 {
					st.Retransmits++
					if err := send(ack(block), peer); err != nil {
						return st, err
					}
				}
				continue
			}
			if len(data) > st.BlockSize {
				return st, stepErr(KindTFTP, "%s from %s: block %d has %d bytes, block size is %d", file, server, block, len(data), st.BlockSize)
			}
			if _, err := w.Write(data); err != nil {
				return st, stepErr(KindTFTP, "%s: write: %w", file, err)
			}
			st.Bytes += int64(len(data))
			tries = 0
			if err := send(ack(block), peer); err != nil {
				return st, err
			}
			if len(data) < st.BlockSize {
				if st.TSize > 0 && st.TSize != st.Bytes {
					return st, stepErr(KindTFTP, "%s from %s: got %d bytes, tsize said %d", file, server, st.Bytes, st.TSize)
				}
				return st, nil
			}
			expected++
		default:
			return st, stepErr(KindTFTP, "%s from %s: unexpected opcode %d", file, server, op)
		}
	}
}
