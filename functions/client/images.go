package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
)

// imagePath is the API path of an image; names may hold any character, so
// each is escaped as one path segment.
func imagePath(image string, more ...string) string {
	p := "/images/" + url.PathEscape(image)
	for i, m := range more {
		if i%2 == 1 {
			m = url.PathEscape(m) // odd parts are names: "branches", NAME, ...
		}
		p += "/" + m
	}
	return p
}

// Images lists every image.
func (c *Client) Images(ctx context.Context) ([]model.Image, error) {
	var out model.Page[model.Image]
	_, err := c.do(ctx, http.MethodGet, "/images", nil, nil, &out)
	return out.Items, err
}

// Image returns one image.
func (c *Client) Image(ctx context.Context, name string) (model.Image, error) {
	var out model.Image
	_, err := c.do(ctx, http.MethodGet, imagePath(name), nil, nil, &out)
	return out, err
}

// PatchImage renames an image or sets its live branch.
func (c *Client) PatchImage(ctx context.Context, name string, p model.ImagePatch) (model.Image, error) {
	var out model.Image
	_, err := c.do(ctx, http.MethodPatch, imagePath(name), nil, p, &out)
	return out, err
}

// DeleteImage deletes an image and its branches (not its content, which
// garbage collection frees when nothing else uses it).
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, imagePath(name), nil, nil, nil)
	return err
}

// CreateBranch makes branch req.Name of image a copy of req.From.
func (c *Client) CreateBranch(ctx context.Context, image string, req model.BranchRequest) (model.Image, error) {
	var out model.Image
	_, err := c.do(ctx, http.MethodPost, imagePath(image, "branches"), nil, req, &out)
	return out, err
}

// RenameBranch renames a branch.
func (c *Client) RenameBranch(ctx context.Context, image, branch, to string) (model.Image, error) {
	var out model.Image
	_, err := c.do(ctx, http.MethodPatch, imagePath(image, "branches", branch), nil, model.BranchPatch{Name: to}, &out)
	return out, err
}

// DeleteBranch deletes a branch that is not live.
func (c *Client) DeleteBranch(ctx context.Context, image, branch string) error {
	_, err := c.do(ctx, http.MethodDelete, imagePath(image, "branches", branch), nil, nil, nil)
	return err
}

// History returns up to limit records of a branch's history, newest first.
func (c *Client) History(ctx context.Context, image, branch string, limit int) ([]model.ImageVersion, error) {
	var out model.Page[model.ImageVersion]
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	_, err := c.do(ctx, http.MethodGet, withQuery(imagePath(image, "branches", branch, "history"), q), nil, nil, &out)
	return out.Items, err
}

// Commit moves a branch from base (zero: new branch or image) to the
// stored version next; a branch that moved meanwhile answers 409.
func (c *Client) Commit(ctx context.Context, image, branch string, base, next manifest.Digest, message string) (model.CommitReply, error) {
	req := model.CommitRequest{Version: next.String(), Message: message}
	if !base.IsZero() {
		req.Base = base.String()
	}
	var out model.CommitReply
	_, err := c.do(ctx, http.MethodPost, imagePath(image, "branches", branch, "commits"), nil, req, &out)
	return out, err
}

// Rollback moves a branch back to an earlier version of its own.
func (c *Client) Rollback(ctx context.Context, image, branch string, to manifest.Digest, message string) ([]model.ImageVersion, error) {
	var out []model.ImageVersion
	_, err := c.do(ctx, http.MethodPost, imagePath(image, "branches", branch, "rollback"), nil,
		model.RollbackRequest{To: to.String(), Message: message}, &out)
	return out, err
}

// Diff compares two versions of an image, each a branch name or a digest.
func (c *Client) Diff(ctx context.Context, image, from, to string) (model.ImageDiff, error) {
	var out model.ImageDiff
	q := url.Values{"from": {from}, "to": {to}}
	_, err := c.do(ctx, http.MethodGet, withQuery(imagePath(image, "diff"), q), nil, nil, &out)
	return out, err
}

// Missing returns which of ds the image store lacks.
func (c *Client) Missing(ctx context.Context, ds []manifest.Digest) ([]manifest.Digest, error) {
	return c.missing(ctx, ds, "")
}

func (c *Client) missing(ctx context.Context, ds []manifest.Digest, lease string) ([]manifest.Digest, error) {
	req := model.MissingRequest{Digests: make([]string, len(ds)), Lease: lease}
	for i, d := range ds {
		req.Digests[i] = d.String()
	}
	var out model.MissingReply
	if _, err := c.do(ctx, http.MethodPost, "/blobs/missing", nil, req, &out); err != nil {
		return nil, err
	}
	miss := make([]manifest.Digest, len(out.Missing))
	for i, v := range out.Missing {
		d, err := manifest.ParseDigest(v)
		if err != nil {
			return nil, fmt.Errorf("blobs/missing answered %q: %w", v, err)
		}
		miss[i] = d
	}
	return miss, nil
}

// send makes one request with a raw body and returns the answer, or the
// answered problem.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, size int64, contentType string) (*http.Response, error) {
	return c.sendWith(ctx, method, path, body, size, contentType, nil)
}

// sendWith is send with more request headers.
func (c *Client) sendWith(ctx context.Context, method, path string, body io.Reader, size int64, contentType string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, answerError(resp)
	}
	return resp, nil
}

// PutBlob uploads size bytes from r as the blob d and reports whether the
// store did not have it. The server checks the content against d.
func (c *Client) PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	return c.putBlob(ctx, d, r, size, "")
}

func (c *Client) putBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64, lease string) (bool, error) {
	resp, err := c.send(ctx, http.MethodPut, withLease("/blobs/"+d.String(), lease), io.NopCloser(r), size, "application/octet-stream")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusCreated, nil
}

// OpenBlob opens the content of blob d.
func (c *Client) OpenBlob(ctx context.Context, d manifest.Digest) (io.ReadCloser, int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/blobs/"+d.String(), nil, 0, "")
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// PutManifest stores m and returns its digest.
func (c *Client) PutManifest(ctx context.Context, m *manifest.Manifest) (manifest.Digest, error) {
	return c.putManifest(ctx, m, "")
}

// withLease adds an import lease to a path's query.
func withLease(path, lease string) string {
	if lease == "" {
		return path
	}
	return path + "?lease=" + url.QueryEscape(lease)
}

func (c *Client) putManifest(ctx context.Context, m *manifest.Manifest, lease string) (manifest.Digest, error) {
	b, err := manifest.Encode(m)
	if err != nil {
		return manifest.Digest{}, err
	}
	d := manifest.Sum(b)
	resp, err := c.send(ctx, http.MethodPut, withLease("/manifests/"+d.String(), lease), bytes.NewReader(b), int64(len(b)), "application/vnd.herd.manifest")
	if err != nil {
		return manifest.Digest{}, err
	}
	resp.Body.Close()
	return d, nil
}

// Manifest reads the version d and checks it has that digest.
func (c *Client) Manifest(ctx context.Context, d manifest.Digest) (*manifest.Manifest, error) {
	resp, err := c.send(ctx, http.MethodGet, "/manifests/"+d.String(), nil, 0, "")
	if err != nil {
		return nil, err
	}
	return readManifest(resp, d)
}

// readManifest reads a manifest answer and checks it has digest d.
func readManifest(resp *http.Response, d manifest.Digest) (*manifest.Manifest, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", d, err)
	}
	if got := manifest.Sum(b); got != d {
		return nil, fmt.Errorf("manifest %s: the server sent content with digest %s", d, got)
	}
	return manifest.Decode(b)
}

// GC collects image content nothing refers to.
func (c *Client) GC(ctx context.Context, req model.GCRequest) (model.GCReport, error) {
	var out model.GCReport
	_, err := c.do(ctx, http.MethodPost, "/images/gc", nil, req, &out)
	return out, err
}

// Import is an import that spans requests under one lease: what it checks
// or stores is kept from GC until Commit (or End). It is the sink
// functions/image/push and functions/image/archive write to.
type Import struct {
	c     *Client
	Lease string
}

// BeginImport starts an import.
func (c *Client) BeginImport(ctx context.Context) (*Import, error) {
	var out model.ImportLease
	if _, err := c.do(ctx, http.MethodPost, "/imports", nil, nil, &out); err != nil {
		return nil, err
	}
	return &Import{c: c, Lease: out.Lease}, nil
}

// Missing pins ds for the import and returns those herd lacks.
func (im *Import) Missing(ctx context.Context, ds []manifest.Digest) ([]manifest.Digest, error) {
	return im.c.missing(ctx, ds, im.Lease)
}

// PutBlob pins and uploads one blob for the import.
func (im *Import) PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	return im.c.putBlob(ctx, d, r, size, im.Lease)
}

// PutManifest pins and stores the import's version.
func (im *Import) PutManifest(ctx context.Context, m *manifest.Manifest) (manifest.Digest, error) {
	return im.c.putManifest(ctx, m, im.Lease)
}

// Commit moves the branch to the imported version and ends the import.
func (im *Import) Commit(ctx context.Context, image, branch string, base, next manifest.Digest, message string) (model.CommitReply, error) {
	req := model.CommitRequest{Version: next.String(), Message: message, Lease: im.Lease}
	if !base.IsZero() {
		req.Base = base.String()
	}
	var out model.CommitReply
	_, err := im.c.do(ctx, http.MethodPost, imagePath(image, "branches", branch, "commits"), nil, req, &out)
	return out, err
}

// End gives the lease up without committing.
func (im *Import) End(ctx context.Context) error {
	_, err := im.c.do(ctx, http.MethodDelete, "/imports/"+url.PathEscape(im.Lease), nil, nil, nil)
	return err
}
