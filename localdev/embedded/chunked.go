package embedded

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// decodeChunkedUploads decodes request bodies sent in AWS's chunked upload
// encoding (X-Amz-Content-Sha256: STREAMING-…), which minio-go uses for every
// upload over plain HTTP. gofakes3 v1.2.0 decodes it for PutObject but not
// for UploadPart, where it would store the chunk framing as object data; with
// the body decoded here both see plain bytes. Signatures are not checked, as
// gofakes3 checks none.
func decodeChunkedUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
			if err != nil || n < 0 {
				http.Error(w, "chunked upload without a valid X-Amz-Decoded-Content-Length", http.StatusBadRequest)
				return
			}
			r.Body = &chunkedBody{r: bufio.NewReader(r.Body), body: r.Body}
			r.ContentLength = n
			r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
			r.Header.Del("X-Amz-Content-Sha256")
			r.Header.Del("X-Amz-Decoded-Content-Length")
			r.Header.Del("X-Amz-Trailer")
			var enc []string
			for _, e := range strings.Split(r.Header.Get("Content-Encoding"), ",") {
				if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
					enc = append(enc, e)
				}
			}
			if len(enc) > 0 {
				r.Header.Set("Content-Encoding", strings.Join(enc, ","))
			} else {
				r.Header.Del("Content-Encoding")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// chunkedBody reads the data out of an aws-chunked body:
//
//	SIZE-IN-HEX[;chunk-signature=…]\r\n DATA \r\n … 0[;…]\r\n [TRAILERS\r\n] \r\n
type chunkedBody struct {
	r       *bufio.Reader
	body    io.Closer
	left    int64 // bytes of the current chunk not yet read
	started bool  // a chunk was read, so a CRLF precedes the next header
	done    bool  // the last (empty) chunk was read
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	for b.left == 0 {
		if b.done {
			return 0, io.EOF
		}
		if err := b.nextChunk(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *chunkedBody) Close() error { return b.body.Close() }

func (b *chunkedBody) nextChunk() error {
	if b.started {
		var crlf [2]byte
		if _, err := io.ReadFull(b.r, crlf[:]); err != nil || string(crlf[:]) != "\r\n" {
			return fmt.Errorf("aws-chunked body: no CRLF after chunk data")
		}
	}
	b.started = true
	line, err := b.r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("aws-chunked body: read chunk header: %w", err)
	}
	size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
	n, err := strconv.ParseInt(string(size), 16, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("aws-chunked body: bad chunk size %q", size)
	}
	if n > 0 {
		b.left = n
		return nil
	}
	// The last chunk: skip the trailers (checksums, trailer signature) up
	// to the empty line that ends the body.
	b.done = true
	for {
		line, err := b.r.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("aws-chunked body: read trailer: %w", err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
