package ui_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/ui"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// BenchmarkImagePage renders an image's page in a cluster of 2000 nodes:
// the page lists who boots the image, so every view reads every node and
// group, and the kernels of the live version, so it reads its manifest.
func BenchmarkImagePage(b *testing.B) {
	const nodes = 2000
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{RedisURL: testenv.RedisURL(b), Prefix: testenv.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	rdb, prefix := st.Redis()
	images := imgstore.New(testenv.Objects(b), rdb, prefix)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, Log: log}
	h := ui.New(st, images, au, log)

	dir := b.TempDir()
	for p, content := range bootable(nil) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := images.ImportDir(ctx, "rocky", "main", dir); err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateGroup(ctx, system(), model.Group{Name: "compute", Settings: model.Settings{Image: "rocky"}}); err != nil {
		b.Fatal(err)
	}
	for i := range nodes {
		n := model.Node{Name: fmt.Sprintf("node%04d", i), Group: "compute",
			Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(fmt.Sprintf("52:54:00:01:%02x:%02x", i>>8, i&0xff)), Boot: true}}}
		if _, err := st.CreateNode(ctx, system(), n); err != nil {
			b.Fatal(err)
		}
	}
	hash, err := auth.HashPassword("benchmark-password")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, system(), "admin", model.RoleAdmin, hash); err != nil {
		b.Fatal(err)
	}
	secret, _, _, err := au.Login(ctx, "admin", "benchmark-password", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}

	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/images/rocky", nil)
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: secret})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.ReportMetric(float64(nodes)*float64(b.N)/b.Elapsed().Seconds(), "nodes/s")
}
