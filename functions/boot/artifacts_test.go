package boot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
)

// artifactPath is the URL path of a boot file of a session, as scripts
// name it.
func artifactPath(key, id, token string) string {
	return boot.ArtifactURL("", key, id, token)
}

func TestArtifactsRangeAndToken(t *testing.T) {
	e := newEnv(t, boot.Config{})
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	_, otherToken := e.bootNode("node002", "52:54:00:00:00:02")
	kernel := make([]byte, 1000)
	for i := range kernel {
		kernel[i] = byte(i * 7)
	}
	key := boot.ImageKey("rocky9", boot.LiveBranch, "kernel")
	e.put(key, kernel)
	path := artifactPath(key, id, token)

	status, h, body := e.do("GET", path, nil, "Range", "bytes=100-199")
	if status != http.StatusPartialContent || !bytes.Equal(body, kernel[100:200]) ||
		h.Get("Content-Range") != "bytes 100-199/1000" || h.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("range: %d %v, %d bytes", status, h, len(body))
	}
	status, h, body = e.do("GET", path, nil)
	etag, modified := h.Get("ETag"), h.Get("Last-Modified")
	if status != 200 || !bytes.Equal(body, kernel) || etag == "" || modified == "" || h.Get("Content-Length") != "1000" {
		t.Fatalf("whole file: %d %v, %d bytes", status, h, len(body))
	}
	if status, _, _ := e.do("GET", path, nil, "If-None-Match", etag); status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", status)
	}
	status, _, body = e.do("GET", path, nil, "Range", "bytes=900-", "If-Range", etag)
	if status != http.StatusPartialContent || !bytes.Equal(body, kernel[900:]) {
		t.Errorf("If-Range with the current ETag: %d, %d bytes", status, len(body))
	}
	if status, h, _ := e.do("HEAD", path, nil); status != 200 || h.Get("Content-Length") != "1000" {
		t.Errorf("HEAD: %d %v", status, h)
	}
	// Fetching a whole file is on the session's timeline.
	events, _ := e.st.BootEvents(context.Background(), id)
	if last := events[len(events)-1]; last.State != model.EventInfo || last.Message != "fetching "+key+" (1000 bytes)" {
		t.Errorf("last event: %+v", last)
	}

	for _, c := range []struct {
		name, path string
		status     int
	}{
		{"no token", artifactPath(key, id, ""), 401},
		{"bad token", artifactPath(key, id, "hbt_forged"), 401},
		{"token of another session", artifactPath(key, id, otherToken), 403},
		{"file of no session", artifactPath("images/other/live/kernel", id, token), 403},
		{"no session", "/boot/artifacts/" + key + "?token=" + token, 400},
	} {
		if status, _, raw := e.do("GET", c.path, nil); status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, status, c.status, raw)
		}
	}
	// A token works in the Authorization header too.
	if status, _, _ := e.do("GET", artifactPath(key, id, ""), nil, "Authorization", "Bearer "+token, "Range", "bytes=0-0"); status != 206 {
		t.Errorf("bearer token: %d", status)
	}
}

// TestLargeArtifactStreams: a 50 MiB initrd goes out whole and right while
// the heap stays far below its size.
func TestLargeArtifactStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 50 MiB")
	}
	e := newEnv(t, boot.Config{})
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	const size = 50 << 20
	key := boot.ImageKey("rocky9", boot.LiveBranch, boot.ModulesFile)
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), want)
	if err := e.obj.Put(context.Background(), key, src, size, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	resp, err := http.Get(e.srv.URL + artifactPath(key, id, token))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	close(stop)
	wg.Wait()
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read %d bytes (%v), want %d with the same SHA-256", n, err, size)
	}
	grew := int64(peak) - int64(base)
	t.Logf("heap in use grew by at most %.1f MiB while streaming 50 MiB", float64(grew)/(1<<20))
	if grew > 16<<20 {
		t.Fatalf("heap grew by %d MiB while streaming a 50 MiB file", grew>>20)
	}
}
