package embedded

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// encodeChunked frames data as aws-chunked with chunks of size n, with
// signatures or with a checksum trailer.
func encodeChunked(data []byte, n int, trailer bool) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		c := data[:min(n, len(data))]
		data = data[len(c):]
		if trailer {
			fmt.Fprintf(&b, "%x\r\n", len(c))
		} else {
			fmt.Fprintf(&b, "%x;chunk-signature=%064x\r\n", len(c), 0)
		}
		b.Write(c)
		b.WriteString("\r\n")
	}
	if trailer {
		b.WriteString("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "0;chunk-signature=%064x\r\n\r\n", 0)
	}
	return b.Bytes()
}

func TestChunkedBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000)
	for _, tc := range []struct {
		name    string
		data    []byte
		n       int
		trailer bool
	}{
		{"signed", data, 4096, false},
		{"trailer", data, 1000, true},
		{"one chunk", data, len(data), false},
		{"empty", nil, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &chunkedBody{r: newReader(encodeChunked(tc.data, tc.n, tc.trailer)), body: io.NopCloser(nil)}
			got, err := io.ReadAll(body)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Errorf("decoded %d bytes, err %v; want %d bytes", len(got), err, len(tc.data))
			}
		})
	}
	for _, bad := range []string{"zz\r\nabc", "5\r\nab", "3\r\nabcXX0\r\n\r\n", "-1\r\n"} {
		body := &chunkedBody{r: newReader([]byte(bad)), body: io.NopCloser(nil)}
		if _, err := io.ReadAll(body); err == nil {
			t.Errorf("decoding %q: no error", bad)
		}
	}
}

func FuzzChunkedBody(f *testing.F) {
	f.Add(encodeChunked([]byte("hello world"), 4, false))
	f.Add(encodeChunked([]byte("hello world"), 100, true))
	f.Fuzz(func(t *testing.T, in []byte) {
		body := &chunkedBody{r: newReader(in), body: io.NopCloser(nil)}
		got, err := io.ReadAll(body)
		if err == nil && len(got) > len(in) {
			t.Errorf("decoded %d bytes out of %d", len(got), len(in))
		}
	})
}

func newReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
