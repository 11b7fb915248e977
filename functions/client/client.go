// Package client is the typed Go client of herd's REST API. The herd CLI,
// the edge and bootenv all talk to herd through it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// Client calls one herd API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the herd at baseURL (e.g. http://herd:8080)
// authenticating with a session or API token (may be empty before login).
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 90 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/") + "/api/v1", token: token, http: hc}
}

// WithToken returns a copy of c using another token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Error is a problem answered by the API.
type Error = problem.Problem

// IsStatus reports whether err is an API problem with the given status.
func IsStatus(err error, status int) bool {
	var p *Error
	return errors.As(err, &p) && p.Status == status
}

// do sends one request and decodes a JSON answer into out (if not nil). A
// non-2xx answer becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, header http.Header, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.Header, answerError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// answerError reads a non-2xx answer as a problem.
func answerError(resp *http.Response) *Error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := &Error{}
	if json.Unmarshal(raw, p) != nil || p.Status == 0 {
		p = &Error{Status: resp.StatusCode, Title: resp.Status, Detail: strings.TrimSpace(string(raw))}
	}
	return p
}

func ifMatch(rev int64) http.Header {
	if rev == 0 {
		return nil
	}
	return http.Header{"If-Match": {`"` + strconv.FormatInt(rev, 10) + `"`}}
}

// Login exchanges a password for a session token.
func (c *Client) Login(ctx context.Context, user, password string) (model.LoginReply, error) {
	var out model.LoginReply
	_, err := c.do(ctx, http.MethodPost, "/login", nil, model.LoginRequest{User: user, Password: password}, &out)
	return out, err
}

// Logout ends the session the client's token belongs to.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/logout", nil, nil, nil)
	return err
}

// Whoami returns the user the token belongs to.
func (c *Client) Whoami(ctx context.Context) (model.User, error) {
	var u model.User
	_, err := c.do(ctx, http.MethodGet, "/whoami", nil, nil, &u)
	return u, err
}

// ListOptions selects a page of a list.
type ListOptions struct {
	Limit  int
	Cursor string
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		v.Set("cursor", o.Cursor)
	}
	return v
}

func withQuery(path string, v url.Values) string {
	for k, vals := range v {
		if len(vals) == 1 && vals[0] == "" {
			v.Del(k)
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// objects implements the verbs every named inventory kind shares.
type objects[T any] struct {
	c    *Client
	path string
}

func (o objects[T]) list(ctx context.Context, q url.Values) (model.Page[T], error) {
	var page model.Page[T]
	_, err := o.c.do(ctx, http.MethodGet, withQuery(o.path, q), nil, nil, &page)
	return page, err
}

// all follows the cursor through every page.
func (o objects[T]) all(ctx context.Context, q url.Values) ([]T, error) {
	var out []T
	q.Set("limit", "1000")
	for {
		page, err := o.list(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		q.Set("cursor", page.Next)
	}
}

func (o objects[T]) get(ctx context.Context, name string) (T, error) {
	var v T
	_, err := o.c.do(ctx, http.MethodGet, o.path+"/"+url.PathEscape(name), nil, nil, &v)
	return v, err
}

func (o objects[T]) create(ctx context.Context, v T) (T, error) {
	var out T
	_, err := o.c.do(ctx, http.MethodPost, o.path, nil, v, &out)
	return out, err
}

func (o objects[T]) replace(ctx context.Context, name string, v T, rev int64) (T, error) {
	var out T
	_, err := o.c.do(ctx, http.MethodPut, o.path+"/"+url.PathEscape(name), ifMatch(rev), v, &out)
	return out, err
}

func (o objects[T]) patch(ctx context.Context, name string, patch map[string]any, rev int64) (T, error) {
	var out T
	h := ifMatch(rev)
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/merge-patch+json")
	_, err := o.c.do(ctx, http.MethodPatch, o.path+"/"+url.PathEscape(name), h, patch, &out)
	return out, err
}

func (o objects[T]) delete(ctx context.Context, name string, rev int64) error {
	_, err := o.c.do(ctx, http.MethodDelete, o.path+"/"+url.PathEscape(name), ifMatch(rev), nil, nil)
	return err
}
