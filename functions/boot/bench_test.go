package boot_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
)

// memArtifacts has every image complete, so a benchmark measures the boot
// function and Redis without the object store.
type memArtifacts struct{}

func (memArtifacts) Image(_ context.Context, image, branch, _ string) (string, string, error) {
	return boot.ImageKey(image, branch, "kernel"), boot.ImageKey(image, branch, boot.ModulesFile), nil
}
func (memArtifacts) Bootenv(context.Context) (string, error) { return boot.BootenvKey, nil }
func (memArtifacts) Open(_ context.Context, key string) (*boot.Artifact, error) {
	return nil, &boot.MissingError{What: "file", Key: key}
}

// BenchmarkBootScript asks for the boot script of a known node over HTTP,
// as iPXE behind the edge does: node lookup by MAC, artifact checks, a new
// session with its token and first event, all on the real Redis (and, in
// "minio", the real MinIO). It reports scripts per second and the p99
// latency of one request.
func BenchmarkBootScript(b *testing.B) {
	for _, c := range []struct {
		name string
		art  boot.Artifacts
	}{{"minio", nil}, {"memory-artifacts", memArtifacts{}}} {
		for _, par := range []int{1, 8} {
			b.Run(c.name+"/clients="+strconv.Itoa(par), func(b *testing.B) {
				e := newEnvWith(b, boot.Config{}, c.art)
				e.group(model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9"}})
				e.image("rocky9", boot.LiveBranch)
				const nodes = 100
				for i := range nodes {
					e.node(model.Node{Name: fmt.Sprintf("node%03d", i), Group: "compute",
						Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(macN(i)), Boot: true}}})
				}
				tr := &http.Transport{MaxIdleConnsPerHost: par}
				defer tr.CloseIdleConnections()
				hc := &http.Client{Transport: tr}
				var (
					mu   sync.Mutex
					lat  []time.Duration
					next int
				)
				one := func(i int) time.Duration {
					req, _ := http.NewRequest("GET", e.srv.URL+"/boot/ipxe?mac="+macN(i%nodes)+"&arch=x86_64&platform=efi", nil)
					req.Header.Set("User-Agent", "iPXE/1.21.1")
					req.Header.Set(auth.HeaderEdgeSecret, edgeSecret)
					req.Header.Set("X-Forwarded-Host", edgeHost)
					start := time.Now()
					resp, err := hc.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if resp.StatusCode != 200 || !strings.Contains(string(body), "\nboot\n") {
						b.Fatalf("status %d:\n%s", resp.StatusCode, body)
					}
					return d
				}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range par {
					wg.Go(func() {
						for {
							mu.Lock()
							if next >= b.N {
								mu.Unlock()
								return
							}
							i := next
							next++
							mu.Unlock()
							d := one(i)
							mu.Lock()
							lat = append(lat, d)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "scripts/s")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// BenchmarkReservations is the edge's poll of the DHCP table of a 5,000
// node cluster: changed (the whole table) and unchanged (304).
func BenchmarkReservations(b *testing.B) {
	e := newEnvWith(b, boot.Config{}, memArtifacts{})
	const nodes = 5000
	for i := range nodes {
		e.node(model.Node{Name: fmt.Sprintf("n%05d", i), Interfaces: []model.Interface{
			{Name: "eth0", MAC: model.MAC(macN(i)), Address: fmt.Sprintf("10.1.%d.%d/16", i>>8, i&255), Boot: true}}})
	}
	_, h, _ := e.do("GET", "/boot/reservations", nil, auth.HeaderEdgeSecret, edgeSecret)
	etag := h.Get("ETag")
	for _, c := range []struct{ name, inm string }{{"full", ""}, {"not-modified", etag}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				status, _, _ := e.do("GET", "/boot/reservations", nil, auth.HeaderEdgeSecret, edgeSecret, "If-None-Match", c.inm)
				if status != 200 && status != 304 {
					b.Fatalf("status %d", status)
				}
			}
		})
	}
}
