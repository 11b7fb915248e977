package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
)

func TestPrefixKeysRemoved(t *testing.T) {
	ctx := t.Context()
	rdb := client(t, RedisURL(t))
	defer rdb.Close()

	outside := "test-outside:" + random(t)
	if err := rdb.Set(ctx, outside, "kept", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(context.Background(), outside)

	var prefix string
	t.Run("user", func(t *testing.T) {
		prefix = Prefix(t)
		if !strings.HasPrefix(prefix, "test:") {
			t.Errorf("Prefix = %q", prefix)
		}
		if other := Prefix(t); other == prefix {
			t.Errorf("two calls gave the same prefix %q", prefix)
		}
		for i := range 2500 { // more than one SCAN page and one UNLINK batch
			if err := rdb.Set(ctx, prefix+":k"+string(rune('a'+i%26))+random(t), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := rdb.HSet(ctx, prefix+":hash", "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
	})
	if keys, err := rdb.Keys(ctx, prefix+"*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("after the test: %d keys under %s (err %v)", len(keys), prefix, err)
	}
	if v, err := rdb.Get(ctx, outside).Result(); err != nil || v != "kept" {
		t.Errorf("key outside the prefix: %q, %v", v, err)
	}
}

func TestS3BucketRemoved(t *testing.T) {
	ctx := t.Context()
	var cfg S3Config
	t.Run("user", func(t *testing.T) {
		cfg = S3(t)
		mc := minioClient(t, cfg)
		for _, key := range []string{"a", "dir/b", "dir/sub/c"} {
			if _, err := mc.PutObject(ctx, cfg.Bucket, key, strings.NewReader(key), int64(len(key)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// An upload never completed must not keep the bucket alive.
		core := minio.Core{Client: mc}
		if _, err := core.NewMultipartUpload(ctx, cfg.Bucket, "unfinished", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.HasPrefix(cfg.Bucket, "test-") {
		t.Errorf("bucket %q", cfg.Bucket)
	}
	exists, err := minioClient(t, cfg).BucketExists(ctx, cfg.Bucket)
	if err != nil || exists {
		t.Errorf("bucket %s still exists after the test (err %v)", cfg.Bucket, err)
	}
}

func minioClient(t *testing.T, cfg S3Config) *minio.Client {
	t.Helper()
	mc, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// TestRedisServer runs a Redis of its own with the binary, as tests that
// restart Redis do.
func TestRedisServer(t *testing.T) {
	bin := RedisServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(t.Context()).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on port %d: %v", bin, port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEnvFileFallback reads the settings from localdev/.state/env when the
// environment does not have them.
func TestEnvFileFallback(t *testing.T) {
	path, err := envFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s: %v (the servers run elsewhere)", path, err)
	}
	t.Setenv("HERD_REDIS_URL", "")
	if url := RedisURL(t); !strings.HasPrefix(url, "redis://") {
		t.Errorf("RedisURL from %s = %q", path, url)
	}
}

func TestReadEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	os.WriteFile(path, []byte("# comment\n\nHERD_A=1\nHERD_B = x=y \n"), 0o600)
	vars, err := readEnvFile(path)
	if err != nil || vars["HERD_A"] != "1" || vars["HERD_B"] != "x=y" || len(vars) != 2 {
		t.Errorf("readEnvFile = %v, %v", vars, err)
	}
	os.WriteFile(path, []byte("no equals sign\n"), 0o600)
	if _, err := readEnvFile(path); err == nil {
		t.Error("a line without = was accepted")
	}
	if _, err := readEnvFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}
