package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Boot calls the boot function (/boot/...) the way nodes and the edge do:
// bootenv with the boot token from its kernel command line, the edge with
// its shared secret.
type Boot struct {
	c          *Client
	edgeSecret string
}

// NewBoot returns a client of the boot function at serverURL (herd.server
// of the kernel command line, or functions_url on the edge), sending token
// (herd.token) as bearer token; hc nil means a default client.
func NewBoot(serverURL, token string, hc *http.Client) *Boot {
	c := New(serverURL, token, hc)
	c.base = strings.TrimRight(serverURL, "/") + "/boot"
	return &Boot{c: c}
}

// WithEdgeSecret returns a copy of b that proves itself as the edge.
func (b *Boot) WithEdgeSecret(secret string) *Boot {
	cp := *b
	cp.edgeSecret = secret
	return &cp
}

func (b *Boot) header() http.Header {
	h := http.Header{}
	if b.edgeSecret != "" {
		h.Set("X-Herd-Edge-Secret", b.edgeSecret)
	}
	return h
}

// PostEvent appends a step event to the session the token belongs to and
// returns it as stored (with its id and herd's time).
func (b *Boot) PostEvent(ctx context.Context, session string, ev model.BootEvent) (model.BootEvent, error) {
	var out model.BootEvent
	_, err := b.c.do(ctx, http.MethodPost, "/sessions/"+url.PathEscape(session)+"/events", b.header(), ev, &out)
	return out, err
}

// Session returns the token's session with its timeline.
func (b *Boot) Session(ctx context.Context, session string) (model.BootSessionDetail, error) {
	var out model.BootSessionDetail
	_, err := b.c.do(ctx, http.MethodGet, "/sessions/"+url.PathEscape(session), b.header(), nil, &out)
	return out, err
}

// Reservations returns the edge's DHCP table unless it is still the one
// tagged etag: changed is false then, and res nil. The returned tag is for
// the next call.
func (b *Boot) Reservations(ctx context.Context, etag string) (res []model.Reservation, tag string, changed bool, err error) {
	h := b.header()
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	var out model.Reservations
	got, err := b.c.do(ctx, http.MethodGet, "/reservations", h, nil, &out)
	if IsStatus(err, http.StatusNotModified) {
		return nil, etag, false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	return out.Reservations, got.Get("ETag"), true, nil
}
