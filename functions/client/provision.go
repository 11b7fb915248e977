package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
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
