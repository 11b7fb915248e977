package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// TestBootChecksWhatItReads: content that does not match the digest asked
// for is an error, whoever sent it.
func TestBootChecksWhatItReads(t *testing.T) {
	var gotSeq, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/console"):
			gotSeq = r.URL.Query().Get("seq")
			w.WriteHeader(http.StatusNoContent)
		default:
			_, _ = io.WriteString(w, "not what was asked for")
		}
	}))
	defer srv.Close()
	b := NewBoot(srv.URL, "tok", nil)
	ctx := context.Background()
	want := manifest.Sum([]byte("the real content"))
	rc, _, err := b.OpenBlob(ctx, "s", want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a wrong blob read without error: %v", err)
	}
	rc.Close()
	if _, err := b.Manifest(ctx, "s", want); err == nil {
		t.Fatal("a wrong manifest was accepted")
	}
	good := []byte("not what was asked for")
	rc, n, err := b.OpenBlob(ctx, "s", manifest.Sum(good))
	if err != nil || n != int64(len(good)) {
		t.Fatal(n, err)
	}
	if got, err := io.ReadAll(rc); err != nil || string(got) != string(good) {
		t.Fatalf("the right blob: %q %v", got, err)
	}
	if err := b.AppendConsole(ctx, "s", 7, []byte("x")); err != nil || gotSeq != "7" || gotAuth != "Bearer tok" {
		t.Fatalf("console: seq %q auth %q %v", gotSeq, gotAuth, err)
	}
}
