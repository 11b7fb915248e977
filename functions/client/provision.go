package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
)

func (c *Client) layouts() objects[model.Layout] { return objects[model.Layout]{c, "/layouts"} }

// AllLayouts returns every disk layout.
func (c *Client) AllLayouts(ctx context.Context) ([]model.Layout, error) {
	return c.layouts().all(ctx, url.Values{})
}

// GetLayout reads one disk layout.
func (c *Client) GetLayout(ctx context.Context, name string) (model.Layout, error) {
	return c.layouts().get(ctx, name)
}

// CreateLayout adds a disk layout.
func (c *Client) CreateLayout(ctx context.Context, l model.Layout) (model.Layout, error) {
	return c.layouts().create(ctx, l)
}

// ReplaceLayout stores l (rev 0: whatever the current version is).
func (c *Client) ReplaceLayout(ctx context.Context, l model.Layout, rev int64) (model.Layout, error) {
	return c.layouts().replace(ctx, l.Name, l, rev)
}

// DeleteLayout removes a disk layout no node or group names.
func (c *Client) DeleteLayout(ctx context.Context, name string, rev int64) error {
	return c.layouts().delete(ctx, name, rev)
}

// Plugins returns every config plugin's settings and the sync settings.
func (c *Client) Plugins(ctx context.Context) ([]model.PluginSettings, error) {
	var page model.Page[model.PluginSettings]
	_, err := c.do(ctx, http.MethodGet, "/plugins", nil, nil, &page)
	return page.Items, err
}

// Plugin reads one plugin's settings.
func (c *Client) Plugin(ctx context.Context, name string) (model.PluginSettings, error) {
	var p model.PluginSettings
	_, err := c.do(ctx, http.MethodGet, "/plugins/"+url.PathEscape(name), nil, nil, &p)
	return p, err
}

// PutPlugin sets a plugin's settings whole (rev 0: whatever they were).
func (c *Client) PutPlugin(ctx context.Context, p model.PluginSettings, rev int64) (model.PluginSettings, error) {
	var out model.PluginSettings
	_, err := c.do(ctx, http.MethodPut, "/plugins/"+url.PathEscape(p.Name), ifMatch(rev), p, &out)
	return out, err
}

// Console returns a boot session's console output after the cursor after
// ("" from the start), waiting up to wait for some.
func (c *Client) Console(ctx context.Context, session, after string, wait time.Duration) (model.ConsoleChunk, error) {
	q := url.Values{"after": {after}}
	if wait >= 0 {
		q.Set("wait", wait.String())
	}
	var out model.ConsoleChunk
	_, err := c.do(ctx, http.MethodGet, withQuery("/boot/sessions/"+url.PathEscape(session)+"/console", q), nil, nil, &out)
	return out, err
}

func sessionPath(session string, more ...string) string {
	p := "/sessions/" + url.PathEscape(session)
	for _, m := range more {
		p += "/" + m
	}
	return p
}

// Plan returns the session's node plan.
func (b *Boot) Plan(ctx context.Context, session string) (model.NodePlan, error) {
	var out model.NodePlan
	_, err := b.c.do(ctx, http.MethodGet, sessionPath(session, "plan"), b.header(), nil, &out)
	return out, err
}

// bootSend makes one request to the boot function with the token and the
// edge secret, returning the answer or the answered problem.
func (b *Boot) bootSend(ctx context.Context, method, path string, header http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range b.header() {
		req.Header[k] = v
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if b.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.c.token)
	}
	resp, err := b.c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, answerError(resp)
	}
	return resp, nil
}

// Manifest reads the version d the session's plan names and checks that
// its content has that digest.
func (b *Boot) Manifest(ctx context.Context, session string, d manifest.Digest) (*manifest.Manifest, error) {
	resp, err := b.bootSend(ctx, http.MethodGet, sessionPath(session, "manifests", d.String()), nil, nil)
	if err != nil {
		return nil, err
	}
	return readManifest(resp, d)
}

// OpenBlob opens blob d and returns its size. Reading it to the end
// checks the content against d: a mismatch is an error from Read (or
// Close, for a reader closed at its end unread).
func (b *Boot) OpenBlob(ctx context.Context, session string, d manifest.Digest) (io.ReadCloser, int64, error) {
	resp, err := b.bootSend(ctx, http.MethodGet, sessionPath(session, "blobs", d.String()), nil, nil)
	if err != nil {
		return nil, 0, err
	}
	return &checkedBlob{rc: resp.Body, d: d, h: sha256.New()}, resp.ContentLength, nil
}

// checkedBlob hashes a blob as it is read and fails the read that reaches
// its end when the content is not the blob asked for.
type checkedBlob struct {
	rc io.ReadCloser
	d  manifest.Digest
	h  hash.Hash
}

func (c *checkedBlob) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		var got manifest.Digest
		copy(got[:], c.h.Sum(nil))
		if got != c.d {
			return n, fmt.Errorf("blob %s: the server sent content with digest %s", c.d, got)
		}
	}
	return n, err
}

func (c *checkedBlob) Close() error { return c.rc.Close() }

// BlobsType is the media type of a batch of blobs (functions/boot).
const BlobsType = "application/vnd.herd.blobs"

// OpenBlobs asks for the blobs ds (1 to 1000) in one request and returns
// them as a stream, in the order asked; Next reads them one by one. A
// first blob the server lacks is a 404 error from OpenBlobs itself.
func (b *Boot) OpenBlobs(ctx context.Context, session string, ds []manifest.Digest) (*BlobStream, error) {
	body, err := json.Marshal(struct {
		Digests []manifest.Digest `json:"digests"`
	}{ds})
	if err != nil {
		return nil, err
	}
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {BlobsType + ", application/problem+json"}}
	resp, err := b.bootSend(ctx, http.MethodPost, sessionPath(session, "blobs"), h, body)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != BlobsType {
		resp.Body.Close()
		return nil, fmt.Errorf("POST %s: answered %q, not %s", sessionPath(session, "blobs"), ct, BlobsType)
	}
	return &BlobStream{body: resp.Body, br: bufio.NewReaderSize(resp.Body, 64<<10), ds: ds}, nil
}

// FetchBlobs reads the blobs ds through OpenBlobs, calling each with every
// blob in turn; each must read r to its end, where a blob that does not
// match its digest fails the read. It returns the first error, which
// names the blob it concerns.
func (b *Boot) FetchBlobs(ctx context.Context, session string, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error {
	s, err := b.OpenBlobs(ctx, session, ds)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		d, r, n, err := s.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := each(d, r, n); err != nil {
			return err
		}
	}
}

// BlobStream is a batch of blobs as the boot function answers it.
type BlobStream struct {
	body io.ReadCloser
	br   *bufio.Reader
	ds   []manifest.Digest
	next int
	cur  *checkedBlob
}

// Next returns the next blob, its digest and its size, or io.EOF after
// the last. Reading r to its end checks the content against the digest;
// whatever of the previous blob was left unread is read (and checked)
// first. A stream that ends early is an error naming the blob it cut.
func (s *BlobStream) Next() (manifest.Digest, io.Reader, int64, error) {
	if s.cur != nil {
		if _, err := io.Copy(io.Discard, s.cur); err != nil {
			return manifest.Digest{}, nil, 0, err
		}
		s.cur = nil
	}
	if s.next == len(s.ds) {
		if n, _ := s.br.Read(make([]byte, 1)); n != 0 {
			return manifest.Digest{}, nil, 0, fmt.Errorf("batch of %d blobs: more after the last", len(s.ds))
		}
		return manifest.Digest{}, nil, 0, io.EOF
	}
	d := s.ds[s.next]
	s.next++
	var hdr [8]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return d, nil, 0, fmt.Errorf("blob %s (%d of %d in the batch): read its length: %w", d, s.next, len(s.ds), noEOF(err))
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n > math.MaxInt64 {
		return d, nil, 0, fmt.Errorf("blob %s: length %d", d, n)
	}
	s.cur = &checkedBlob{rc: io.NopCloser(&frame{r: s.br, left: int64(n), d: d}), d: d, h: sha256.New()}
	return d, s.cur, int64(n), nil
}

// Close ends the stream; blobs not read are dropped.
func (s *BlobStream) Close() error { return s.body.Close() }

// frame reads one blob of a batch: EOF at its end, and an error when the
// stream ends before it.
type frame struct {
	r    io.Reader
	left int64
	d    manifest.Digest
}

func (f *frame) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	if err == io.EOF && f.left > 0 {
		err = fmt.Errorf("blob %s: the batch ended %d bytes before its end: %w", f.d, f.left, io.ErrUnexpectedEOF)
	} else if err == io.EOF {
		err = nil
	} else if err != nil {
		err = fmt.Errorf("blob %s: %w", f.d, err)
	}
	return n, err
}

// noEOF turns the end of a stream where more was due into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendConsole posts chunk seq (from 1 up) of the node's console output,
// at most 64 KiB. Posting the same seq again (a retry) appends nothing.
func (b *Boot) AppendConsole(ctx context.Context, session string, seq uint64, p []byte) error {
	// The number rides in the query: the edge drops X-Herd-* headers a
	// client sends.
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err := b.bootSend(ctx, http.MethodPost, sessionPath(session, "console")+"?seq="+strconv.FormatUint(seq, 10), h, p)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
