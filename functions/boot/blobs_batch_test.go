package boot_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/image/manifest"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
)

// blobs stores n blobs of sizes up to max (one empty, one over the cache's
// 1 MiB) and returns them with their digests.
func (e *env) blobs(n int) ([][]byte, []manifest.Digest) {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	var data [][]byte
	var ds []manifest.Digest
	for i := range n {
		size := rng.IntN(20 << 10)
		switch i {
		case 1:
			size = 0
		case 2:
			size = 1<<20 + 5 // streamed, never cached
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		d := manifest.Sum(b)
		e.put(imgstore.BlobKey(d), b)
		data, ds = append(data, b), append(ds, d)
	}
	return data, ds
}

// readBatch reads a whole batch answer through the client.
func readBatch(ctx context.Context, bc *client.Boot, id string, ds []manifest.Digest) ([][]byte, error) {
	var got [][]byte
	err := bc.FetchBlobs(ctx, id, ds, func(d manifest.Digest, r io.Reader, size int64) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if int64(len(b)) != size {
			return fmt.Errorf("blob %s: %d bytes, frame said %d", d, len(b), size)
		}
		got = append(got, b)
		return nil
	})
	return got, err
}

func batchBody(ds ...string) io.Reader {
	b, _ := json.Marshal(map[string][]string{"digests": ds})
	return bytes.NewReader(b)
}

func TestBlobBatch(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	e.provisioned("nvme")
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	data, ds := e.blobs(40)
	bc := client.NewBoot(e.srv.URL, token, nil)

	// In the order asked, a blob asked twice sent twice.
	ask := append([]manifest.Digest{ds[5]}, ds...)
	ask = append(ask, ds[5])
	got, err := readBatch(ctx, bc, id, ask)
	if err != nil || len(got) != len(ask) {
		t.Fatalf("batch: %d blobs, %v", len(got), err)
	}
	for i, d := range ask {
		if manifest.Sum(got[i]) != d {
			t.Fatalf("blob %d of the answer is not %s", i, d)
		}
	}

	// The wire format: 8-byte big-endian length, then the bytes.
	status, hdr, raw := e.do("POST", "/boot/sessions/"+id+"/blobs", batchBody(ds[0].String(), ds[1].String(), ds[0].String()),
		"Authorization", "Bearer "+token, "Content-Type", "application/json")
	if status != 200 || hdr.Get("Content-Type") != boot.BlobsType {
		t.Fatalf("batch: %d %v", status, hdr)
	}
	var want []byte
	for _, b := range [][]byte{data[0], data[1], data[0]} {
		want = binary.BigEndian.AppendUint64(want, uint64(len(b)))
		want = append(want, b...)
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("answer of %d bytes is not the %d framed", len(raw), len(want))
	}

	// Bad bodies: 400 with a problem, nothing streamed.
	many := make([]string, boot.MaxBatchBlobs+1)
	for i := range many {
		many[i] = ds[0].String()
	}
	for name, body := range map[string]io.Reader{
		"empty body":    strings.NewReader(""),
		"not json":      strings.NewReader("digests"),
		"unknown field": strings.NewReader(`{"digests":["` + ds[0].String() + `"],"more":1}`),
		"no digests":    batchBody(),
		"bad digest":    batchBody(ds[0].String(), "sha256:12"),
		"md5":           batchBody("md5:d41d8cd98f00b204e9800998ecf8427e"),
		"too many":      batchBody(many...),
		"two values":    strings.NewReader(`{"digests":["` + ds[0].String() + `"]} {}`),
	} {
		status, hdr, raw := e.do("POST", "/boot/sessions/"+id+"/blobs", body, "Authorization", "Bearer "+token)
		if status != 400 || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s", name, status, hdr.Get("Content-Type"), raw)
		}
	}
	most := make([]manifest.Digest, boot.MaxBatchBlobs)
	for i := range most {
		most[i] = ds[i%len(ds)]
	}
	if _, err := readBatch(ctx, bc, id, most); err != nil {
		t.Errorf("a batch of %d: %v", boot.MaxBatchBlobs, err)
	}

	// A missing first blob is a 404 naming it; a missing later one cuts
	// the answer after the blobs before it.
	absent := manifest.Sum([]byte("absent"))
	_, err = bc.OpenBlobs(ctx, id, []manifest.Digest{absent, ds[0]})
	if !client.IsStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), absent.String()) {
		t.Errorf("missing first blob: %v", err)
	}
	got, err = readBatch(ctx, bc, id, []manifest.Digest{ds[0], ds[3], absent, ds[4]})
	if err == nil || len(got) != 2 || !strings.Contains(err.Error(), absent.String()) {
		t.Errorf("missing third blob: %d blobs, %v", len(got), err)
	}

	// Another session's token, no token, a token that expired: refused
	// as the GET of a blob is.
	otherID, otherToken := e.bootNode("node002", "52:54:00:00:00:02")
	if _, err := client.NewBoot(e.srv.URL, otherToken, nil).OpenBlobs(ctx, id, ds[:1]); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("with another session's token: %v", err)
	}
	if _, err := client.NewBoot(e.srv.URL, "", nil).OpenBlobs(ctx, id, ds[:1]); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("without a token: %v", err)
	}
	if _, err := readBatch(ctx, client.NewBoot(e.srv.URL, otherToken, nil), otherID, ds[:3]); err != nil {
		t.Errorf("node002 in its own session: %v", err)
	}
}

func TestBlobBatchExpiredTokenAndCertificate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, boot.Config{TokenTTL: time.Second})
	e.provisioned("nvme")
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	_, ds := e.blobs(3)
	bc := client.NewBoot(e.srv.URL, token, nil)
	if _, err := readBatch(ctx, bc, id, ds); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := bc.OpenBlobs(ctx, id, ds); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("batch with an expired token: %v", err)
	}
	if _, _, err := bc.OpenBlob(ctx, id, ds[0]); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("blob with an expired token: %v", err)
	}

	c := newEnv(t, boot.Config{RequireNodeCert: true})
	c.provisioned("nvme")
	id, token = c.bootNode("node001", "52:54:00:00:00:01")
	data, ds := c.blobs(3)
	status, _, raw := c.do("POST", "/boot/sessions/"+id+"/blobs", batchBody(ds[0].String()), "Authorization", "Bearer "+token)
	if status != http.StatusForbidden {
		t.Errorf("batch without the cluster certificate: %d %s", status, raw)
	}
	status, _, raw = c.do("POST", "/boot/sessions/"+id+"/blobs", batchBody(ds[0].String()), "Authorization", "Bearer "+token,
		auth.HeaderEdgeSecret, edgeSecret, auth.HeaderNodeCert, "verified")
	if status != http.StatusOK || len(raw) != 8+len(data[0]) {
		t.Errorf("batch with the certificate: %d, %d bytes", status, len(raw))
	}
}

// TestBlobCache: a blob served once is served again without the object
// store (deleted here, so a read would find nothing); a large one, a
// corrupt one, and any with the cache off, are not kept.
func TestBlobCache(t *testing.T) {
	ctx := context.Background()
	for _, cacheOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache %v", cacheOn), func(t *testing.T) {
			cfg := boot.Config{}
			if !cacheOn {
				cfg.BlobCacheBytes = -1
			}
			e := newEnv(t, cfg)
			e.provisioned("nvme")
			id, token := e.bootNode("node001", "52:54:00:00:00:01")
			bc := client.NewBoot(e.srv.URL, token, nil)
			data, ds := e.blobs(6)
			// Fetched once: two by batch, one by GET, the large one both.
			if _, err := readBatch(ctx, bc, id, ds[:3]); err != nil {
				t.Fatal(err)
			}
			rc, _, err := bc.OpenBlob(ctx, id, ds[3])
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
			corrupt := manifest.Sum([]byte("what the store should hold"))
			e.put(imgstore.BlobKey(corrupt), []byte("what it holds instead"))
			if _, err := readBatch(ctx, bc, id, []manifest.Digest{corrupt}); err == nil || !strings.Contains(err.Error(), corrupt.String()) {
				t.Fatalf("corrupt blob: %v", err)
			}
			for _, d := range append(ds, corrupt) {
				if err := e.obj.Delete(ctx, imgstore.BlobKey(d)); err != nil {
					t.Fatal(err)
				}
			}
			// Served again from memory, by GET and by batch, in any mix.
			for _, i := range []int{0, 1, 3} {
				rc, _, err := bc.OpenBlob(ctx, id, ds[i])
				if !cacheOn {
					if !client.IsStatus(err, http.StatusNotFound) {
						t.Errorf("with the cache off, GET of a deleted blob: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("GET of cached blob %d: %v", i, err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(b, data[i]) {
					t.Errorf("GET of cached blob %d: %d bytes, %v", i, len(b), err)
				}
			}
			got, err := readBatch(ctx, bc, id, []manifest.Digest{ds[3], ds[0], ds[1]})
			if cacheOn && (err != nil || !bytes.Equal(got[0], data[3]) || !bytes.Equal(got[1], data[0]) || len(got[2]) != 0) {
				t.Errorf("cached blobs: %d %v", len(got), err)
			}
			if !cacheOn && !client.IsStatus(err, http.StatusNotFound) {
				t.Errorf("with the cache off, a deleted blob: %v", err)
			}
			for _, d := range []manifest.Digest{ds[2], corrupt, ds[4]} {
				if _, err := bc.OpenBlobs(ctx, id, []manifest.Digest{d}); !client.IsStatus(err, http.StatusNotFound) {
					t.Errorf("blob %s (large, corrupt or never fetched) after deleting it: %v", d, err)
				}
			}
		})
	}
}

// TestBlobBatchConcurrent: nodes asking for the same blobs at once (one
// read fills the cache for the others) all get them whole.
func TestBlobBatchConcurrent(t *testing.T) {
	e := newEnv(t, boot.Config{BlobCacheBytes: 64 << 10})
	ctx := context.Background()
	e.provisioned("nvme")
	id, token := e.bootNode("node001", "52:54:00:00:00:01")
	_, ds := e.blobs(30)
	bc := client.NewBoot(e.srv.URL, token, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			got, err := readBatch(ctx, bc, id, ds)
			if err == nil && len(got) != len(ds) {
				err = fmt.Errorf("%d blobs of %d", len(got), len(ds))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
