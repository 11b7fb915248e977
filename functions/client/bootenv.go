package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/herd-hpc/herd/functions/model"
)

// PublishBootenv uploads bootenv's initramfs (size bytes of r, whose
// SHA-256 in hex is sum); nodes boot it from their next boot on. The
// server refuses content that does not have that digest.
func (c *Client) PublishBootenv(ctx context.Context, r io.Reader, size int64, sum string) (model.BootenvInfo, error) {
	resp, err := c.sendWith(ctx, http.MethodPut, "/bootenv", io.NopCloser(r), size, "application/octet-stream",
		http.Header{"X-Herd-Sha256": {sum}})
	if err != nil {
		return model.BootenvInfo{}, err
	}
	defer resp.Body.Close()
	var out model.BootenvInfo
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("PUT /bootenv: decode answer: %w", err)
	}
	return out, nil
}

// Bootenv describes the published bootenv.
func (c *Client) Bootenv(ctx context.Context) (model.BootenvInfo, error) {
	var out model.BootenvInfo
	_, err := c.do(ctx, http.MethodGet, "/bootenv", nil, nil, &out)
	return out, err
}
