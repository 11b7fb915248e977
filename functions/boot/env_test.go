package boot_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// TestMain registers -update, which rewrites the golden scripts from what
// the function answers now: go test ./functions/boot -update.
func TestMain(m *testing.M) {
	flag.Bool("update", false, "rewrite testdata/*.ipxe from the current output")
	flag.Parse()
	os.Exit(m.Run())
}

func updating() bool { return flag.Lookup("update").Value.String() == "true" }

// golden compares got with testdata/name.ipxe.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".ipxe")
	if updating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./functions/boot -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s; if the change is meant, run go test ./functions/boot -update\ngot:\n%s", name, path, got)
	}
}

const (
	edgeSecret = "edge-secret-for-tests"
	// edgeHost is where nodes reach the edge, as the edge tells functions.
	edgeHost = "10.0.0.1:8080"
	server   = "http://" + edgeHost
)

// env is the boot function over a fresh key prefix on the real Redis and
// its own bucket on the real MinIO from localdev.
type env struct {
	t   testing.TB
	st  *store.Store
	obj *objstore.Store
	au  *auth.Service
	h   *boot.Handler
	srv *httptest.Server
	log *slog.Logger
}

func newEnv(t testing.TB, cfg boot.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvWith uses art instead of the object store's artifacts when set.
func newEnvWith(t testing.TB, cfg boot.Config, art boot.Artifacts) *env {
	t.Helper()
	st := storetest.Open(t)
	obj := testenv.Objects(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	au := &auth.Service{Store: st, SessionTTL: time.Hour, EdgeSecret: edgeSecret, Log: log}
	if art == nil {
		art = boot.ObjectArtifacts{Objects: obj, Seen: store.BootArtifacts{S: st}}
	}
	h := boot.New(st, au, art, cfg, log)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, obj: obj, au: au, h: h, srv: srv, log: log}
}

// get sends GET path as iPXE behind the edge does, with extra headers as
// name, value pairs.
func (e *env) get(path string, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	return e.do("GET", path, nil, append([]string{
		"User-Agent", "iPXE/1.21.1+ (g988d2)",
		auth.HeaderEdgeSecret, edgeSecret,
		"X-Forwarded-Host", edgeHost,
		"X-Forwarded-Proto", "http",
		auth.HeaderClientAddr, "10.0.7.9",
	}, hdr...)...)
}

// do sends one request with the given headers (a "" value removes one).
func (e *env) do(method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

func (e *env) put(key string, data []byte) {
	e.t.Helper()
	if err := e.obj.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		e.t.Fatal(err)
	}
}

// image stores a kernel and an initrd for an image branch, and bootenv.
func (e *env) image(image, branch string) {
	e.t.Helper()
	e.put(boot.ImageKey(image, branch, "kernel"), []byte("kernel of "+image))
	e.put(boot.ImageKey(image, branch, boot.ModulesFile), []byte("initrd of "+image))
	e.put(boot.BootenvKey, []byte("bootenv initramfs"))
}

func admin() store.Actor { return store.Actor{User: "test", Host: "test"} }

func (e *env) group(g model.Group) {
	e.t.Helper()
	if _, err := e.st.CreateGroup(context.Background(), admin(), g); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) node(n model.Node) model.Node {
	e.t.Helper()
	out, err := e.st.CreateNode(context.Background(), admin(), n)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// bootParams returns the session id and token a boot script carries.
func bootParams(t testing.TB, script []byte) (id, token string) {
	t.Helper()
	m1 := regexp.MustCompile(`herd\.session=([0-9a-f]{32})`).FindSubmatch(script)
	m2 := regexp.MustCompile(`herd\.token=(\S+)`).FindSubmatch(script)
	if m1 == nil || m2 == nil {
		t.Fatalf("no session or token in the script:\n%s", script)
	}
	return string(m1[1]), string(m2[1])
}

// normalize replaces a session id and token with fixed words, for golden
// files.
func normalize(script []byte, id, token string) []byte {
	s := string(script)
	if id != "" {
		s = strings.ReplaceAll(s, id, "SESSION")
	}
	if token != "" {
		s = strings.ReplaceAll(s, token, "TOKEN")
	}
	return []byte(s)
}
