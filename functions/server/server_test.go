package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/herd-hpc/herd/functions/lambda"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

func openFunctions(t testing.TB) (*server.Functions, string) {
	t.Helper()
	ctx := context.Background()
	cfg := server.Defaults()
	cfg.RedisURL = testenv.RedisURL(t)
	cfg.RedisPrefix = testenv.Prefix(t)
	s3 := testenv.S3(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket
	fns, err := server.Open(ctx, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fns.Close() })
	user, pw, created, err := fns.Auth.EnsureFirstAdmin(ctx, "test")
	if err != nil || !created {
		t.Fatalf("first admin: created=%v err=%v", created, err)
	}
	secret, _, _, err := fns.Auth.Login(ctx, user, pw, "test")
	if err != nil {
		t.Fatal(err)
	}
	return fns, secret
}

// TestLambdaPath invokes the API function the way the Lambda runtime does:
// raw event JSON in, raw response JSON out.
func TestLambdaPath(t *testing.T) {
	fns, token := openFunctions(t)
	h := awslambda.NewHandler(lambda.Handler(fns.Handler()))

	raw, err := os.ReadFile(filepath.Join("testdata", "apigw-v2-create-node.json"))
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Replace(string(raw), "Bearer TOKEN", "Bearer "+token, 1)
	out, err := h.Invoke(context.Background(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response is not an API Gateway v2 response: %s", out)
	}
	if resp.StatusCode != 201 || resp.Headers["Etag"] != `"1"` || resp.Headers["Content-Type"] != "application/json" {
		t.Fatalf("create through lambda: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	var n model.Node
	if err := json.Unmarshal([]byte(resp.Body), &n); err != nil || n.Name != "lambda01" || n.Interfaces[0].MAC != "52:54:00:12:34:56" {
		t.Fatalf("created node: %s", resp.Body)
	}
	// The audit event records the client address API Gateway saw.
	page, err := fns.Store.Audit(context.Background(), storeQuery("lambda01"))
	if err != nil || len(page.Items) != 1 || page.Items[0].Host != "198.51.100.7" {
		t.Fatalf("audit: %+v %v", page.Items, err)
	}

	// Without credentials the same path answers 401 problem+json.
	noAuth := strings.Replace(string(raw), "Bearer TOKEN", "Bearer nope", 1)
	out, err = h.Invoke(context.Background(), []byte(noAuth))
	if err != nil {
		t.Fatal(err)
	}
	resp = events.APIGatewayV2HTTPResponse{}
	_ = json.Unmarshal(out, &resp)
	if resp.StatusCode != 401 || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Fatalf("unauthenticated: %d %v", resp.StatusCode, resp.Headers)
	}
}

// BenchmarkLambdaAdapter measures what the Lambda adapter adds per request
// over plain net/http serving the same handler.
func BenchmarkLambdaAdapter(b *testing.B) {
	fns, token := openFunctions(b)
	ev := events.APIGatewayV2HTTPRequest{RawPath: "/api/v1/whoami", Headers: map[string]string{"authorization": "Bearer " + token}}
	ev.RequestContext.HTTP.Method = "GET"
	ev.RequestContext.HTTP.SourceIP = "127.0.0.1"
	payload, _ := json.Marshal(ev)
	b.Run("lambda-invoke", func(b *testing.B) {
		h := awslambda.NewHandler(lambda.Handler(fns.Handler()))
		for b.Loop() {
			if _, err := h.Invoke(context.Background(), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http-recorder", func(b *testing.B) {
		hh := fns.Handler()
		for b.Loop() {
			req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "edge.secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	ini := filepath.Join(dir, "herd.ini")
	os.WriteFile(ini, []byte("[functions]\nlisten = 127.0.0.1:9999\nredis_url = redis://10.0.0.1:6379/2\nedge_secret_file = "+secret+"\nsession_ttl = 2h\n"), 0o600)
	env := map[string]string{"HERD_FUNCTIONS_REDIS_PREFIX": "site1", "HERD_FUNCTIONS_BOOT_BLOB_CACHE_MB": "-1", "HERD_FUNCTIONS_CONSOLE_RETENTION_DAYS": "0"}
	cfg, err := server.LoadConfig(ini, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.RedisURL != "redis://10.0.0.1:6379/2" || cfg.EdgeSecret != "s3cret" ||
		cfg.SessionTTL != 2*time.Hour || cfg.RedisPrefix != "site1" || cfg.S3Bucket != "herd" || cfg.BlobCacheMB != -1 || cfg.ConsoleDays != 0 {
		t.Errorf("config: %+v", cfg)
	}
	for _, bad := range []string{"redis_url = localhost", "session_ttl = soon", "colour = red", "boot_blob_cache_mb = lots", "console_retention_days = -3"} {
		os.WriteFile(ini, []byte("[functions]\n"+bad+"\n"), 0o600)
		if _, err := server.LoadConfig(ini, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), ini) {
			t.Errorf("%q: error %v should name the file", bad, err)
		}
	}
	// The appliance's shipped config is accepted (its secret files aside).
	if _, err := server.LoadConfig("../../infra/herd.ini", func(k string) string {
		return map[string]string{"HERD_FUNCTIONS_S3_SECRET_KEY": "x", "HERD_FUNCTIONS_EDGE_SECRET": "y"}[k]
	}); err != nil {
		t.Errorf("infra/herd.ini: %v", err)
	}
}

func storeQuery(ref string) store.AuditQuery { return store.AuditQuery{Ref: ref} }

// TestConsoleRetention: opening the functions sets the object store's
// rule that deletes archived consoles after console_retention_days.
func TestConsoleRetention(t *testing.T) {
	fns, _ := openFunctions(t)
	days, err := fns.Objects.Expiry(context.Background(), store.ConsoleArchivePrefix)
	if err != nil || days != server.Defaults().ConsoleDays || days == 0 {
		t.Fatalf("archived consoles expire after %d days (%v), want the default %d", days, err, server.Defaults().ConsoleDays)
	}
}
