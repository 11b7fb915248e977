package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// lineWriter collects output and says when the URL has been printed.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	url chan string
}

var urlRe = regexp.MustCompile(`herd is running: (http://[^/ ]+)/`)

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := urlRe.FindSubmatch(w.buf.Bytes()); m != nil {
		select {
		case w.url <- string(m[1]):
		default:
		}
	}
	return len(p), nil
}

// start runs the all-in-one on dir until the returned stop is called.
func start(t *testing.T, dir string) (base string, out *lineWriter, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &lineWriter{url: make(chan string, 1)}
	done := make(chan error, 1)
	o := options{dir: dir, listen: "127.0.0.1:0", tftpListen: "127.0.0.1:0", tftpRoot: t.TempDir(), s3Bucket: "herd"}
	go func() { done <- run(ctx, o, out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	select {
	case base = <-out.url:
	case err := <-done:
		t.Fatalf("all-in-one stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("all-in-one did not print its URL")
	}
	return base, out, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("all-in-one: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("all-in-one did not stop")
		}
	}
}

// TestAllInOneKeepsStateAcrossRestart is `make run` twice on one state
// folder: the first run prints the admin's password, the node added then is
// there after the restart.
func TestAllInOneKeepsStateAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".herd")
	base, out, stop := start(t, dir)
	if !strings.Contains(out.buf.String(), "created the first admin: user admin, password ") {
		t.Fatalf("first run did not print the credentials:\n%s", out.buf.String())
	}
	cred, err := os.ReadFile(filepath.Join(dir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	user, pw, _ := strings.Cut(strings.TrimSpace(string(cred)), " ")

	resp, err := http.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	ctx := context.Background()
	c := client.New(base, "", nil)
	lr, err := c.Login(ctx, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithToken(lr.Token)
	if _, err := c.CreateNode(ctx, model.Node{Name: "keepme", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:42"}}}); err != nil {
		t.Fatal(err)
	}
	stop()

	base, out, stop = start(t, dir)
	defer stop()
	if strings.Contains(out.buf.String(), "created the first admin") {
		t.Error("second run made another admin")
	}
	c = client.New(base, "", nil)
	lr, err = c.Login(ctx, user, pw)
	if err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	n, err := c.WithToken(lr.Token).GetNode(ctx, "keepme")
	if err != nil || n.Interfaces[0].MAC != "52:54:00:00:00:42" {
		t.Fatalf("node after restart: %+v %v", n, err)
	}
	page, err := c.WithToken(lr.Token).Audit(ctx, client.AuditQuery{Ref: "keepme"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("audit after restart: %+v %v", page.Items, err)
	}
}
