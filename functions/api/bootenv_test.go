package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/store"
)

// TestPublishBootenv: an upload whose content is not the digest it claims
// is refused and leaves the published bootenv as it was.
func TestPublishBootenv(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.api.Objects = withImages(t, e)
	c := client.New(e.srv.URL, e.admin, nil)
	if _, err := c.Bootenv(ctx); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("before any publish: %v", err)
	}
	good := "an initramfs"
	sum := sha256.Sum256([]byte(good))
	info, err := c.PublishBootenv(ctx, strings.NewReader(good), int64(len(good)), hex.EncodeToString(sum[:]))
	if err != nil || info.Size != int64(len(good)) {
		t.Fatalf("publish: %+v %v", info, err)
	}
	bad := "a damaged one"
	_, err = c.PublishBootenv(ctx, strings.NewReader(bad), int64(len(bad)), hex.EncodeToString(sum[:]))
	wantStatus(t, err, http.StatusUnprocessableEntity, "unchanged")
	if info, err := c.Bootenv(ctx); err != nil || info.Size != int64(len(good)) {
		t.Errorf("after a refused upload: %+v %v", info, err)
	}
	events, err := e.st.Audit(ctx, store.AuditQuery{Kind: "bootenv"})
	if err != nil || len(events.Items) != 1 || events.Items[0].Extras["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("audit: %+v %v", events.Items, err)
	}
	ro := client.New(e.srv.URL, e.readonly, nil)
	_, err = ro.PublishBootenv(ctx, strings.NewReader(good), int64(len(good)), hex.EncodeToString(sum[:]))
	wantStatus(t, err, http.StatusForbidden, "cannot change anything")
}
