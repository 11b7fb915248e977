// Package server wires herd's functions together from configuration: the
// store, the auth service and one handler per function. herd-functions
// serves them all on one port; each Lambda entry point serves one.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bigkevmcd/go-configparser"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/lambda"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/store"
)

// Config is the [functions] section of herd.ini.
type Config struct {
	Listen      string
	RedisURL    string
	RedisPrefix string
	S3Endpoint  string
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	S3Secure    bool
	EdgeSecret  string
	SessionTTL  time.Duration
	// RequireNodeCert makes bootenv's requests need the cluster client
	// certificate at the edge (boot_require_node_cert).
	RequireNodeCert bool
	// BootURL is how nodes reach herd (the edge) for boot files and the
	// kernel command line; empty means the host each boot request came to.
	BootURL string
	// BlobCacheMB bounds the boot function's cache of image blobs nodes
	// fetch (boot_blob_cache_mb; 0 is the default, 256; -1 turns it off).
	BlobCacheMB int
	// ConsoleDays is how long the object store keeps each boot session's
	// archived console (console_retention_days; 0 keeps them for ever).
	ConsoleDays int
}

// Defaults are used for keys the file and environment leave out.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:8081", RedisURL: "redis://127.0.0.1:6379/0", RedisPrefix: "herd",
		S3Endpoint: "127.0.0.1:9000", S3Bucket: "herd", SessionTTL: 12 * time.Hour, ConsoleDays: 30,
	}
}

// LoadConfig reads the [functions] section of an INI file (path may be
// empty: defaults only) and then HERD_FUNCTIONS_<KEY> environment variables.
// Secrets named by *_file keys are read from those files.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := Defaults()
	vals := map[string]string{}
	if path != "" {
		p, err := configparser.NewConfigParserFromFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config %s: %w", path, err)
		}
		if !p.HasSection("functions") {
			return cfg, fmt.Errorf("config %s: no [functions] section", path)
		}
		items, err := p.Items("functions")
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		for k, v := range items {
			vals[k] = v
		}
	}
	for _, k := range []string{"listen", "redis_url", "redis_prefix", "s3_endpoint", "s3_access_key", "s3_secret_key",
		"s3_secret_key_file", "s3_bucket", "s3_secure", "edge_secret", "edge_secret_file", "session_ttl", "boot_url", "boot_require_node_cert", "boot_blob_cache_mb", "console_retention_days"} {
		if v := getenv("HERD_FUNCTIONS_" + strings.ToUpper(k)); v != "" {
			vals[k] = v
		}
	}
	bad := func(k, v, want string) error {
		return fmt.Errorf("config %s: [functions] %s = %q: %s", path, k, v, want)
	}
	for k, v := range vals {
		switch k {
		case "listen":
			cfg.Listen = v
		case "redis_url":
			if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
				return cfg, bad(k, v, "want redis://host:port/db")
			}
			cfg.RedisURL = v
		case "redis_prefix":
			cfg.RedisPrefix = v
		case "s3_endpoint":
			cfg.S3Endpoint = v
		case "s3_access_key":
			cfg.S3AccessKey = v
		case "s3_secret_key":
			cfg.S3SecretKey = v
		case "s3_bucket":
			cfg.S3Bucket = v
		case "s3_secure":
			cfg.S3Secure = v == "true" || v == "yes" || v == "1"
		case "edge_secret":
			cfg.EdgeSecret = v
		case "session_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Minute {
				return cfg, bad(k, v, "want a duration of at least 1m, such as 12h")
			}
			cfg.SessionTTL = d
		case "boot_url":
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return cfg, bad(k, v, "want the URL nodes reach the edge at, such as http://10.0.0.1:8080")
			}
			cfg.BootURL = v
		case "boot_require_node_cert":
			switch v {
			case "true", "yes", "1":
				cfg.RequireNodeCert = true
			case "false", "no", "0", "":
			default:
				return cfg, bad(k, v, "want yes or no")
			}
		case "boot_blob_cache_mb":
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 || n > 1<<20 {
				return cfg, bad(k, v, "want megabytes (256), or -1 for no cache")
			}
			cfg.BlobCacheMB = n
		case "console_retention_days":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 36500 {
				return cfg, bad(k, v, "want a number of days (30), or 0 to keep consoles for ever")
			}
			cfg.ConsoleDays = n
		case "s3_secret_key_file", "edge_secret_file":
		default:
			return cfg, fmt.Errorf("config %s: [functions] has unknown key %q", path, k)
		}
	}
	for key, dst := range map[string]*string{"s3_secret_key_file": &cfg.S3SecretKey, "edge_secret_file": &cfg.EdgeSecret} {
		if f := vals[key]; f != "" && *dst == "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return cfg, fmt.Errorf("config %s: [functions] %s: %w", path, key, err)
			}
			*dst = strings.TrimSpace(string(b))
		}
	}
	return cfg, nil
}

// Functions are the handlers of every herd function over one store.
type Functions struct {
	Store   *store.Store
	Objects *objstore.Store
	Auth    *auth.Service
	API     *api.API
	Boot    *boot.Handler
	UI      http.Handler
}

// UIFactory builds the page function; main passes functions/ui.NewHandler.
// It is injected so the API-only Lambda does not link the pages.
type UIFactory func(st *store.Store, images *imgstore.Store, au *auth.Service, log *slog.Logger) http.Handler

// Open connects to the store and builds every function.
func Open(ctx context.Context, cfg Config, newUI UIFactory, log *slog.Logger) (*Functions, error) {
	st, err := store.Open(ctx, store.Config{RedisURL: cfg.RedisURL, Prefix: cfg.RedisPrefix})
	if err != nil {
		return nil, err
	}
	obj, err := objstore.Open(ctx, objstore.Config{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Secure: cfg.S3Secure})
	if err != nil {
		st.Close()
		return nil, err
	}
	// The object store deletes old consoles itself. Where it cannot (a
	// store without lifecycle rules, or no right to set them) herd runs
	// on and says so once.
	if err := obj.ExpireAfter(ctx, store.ConsoleArchivePrefix, cfg.ConsoleDays); err != nil {
		log.Warn("archived boot consoles are kept for ever: the object store's lifecycle rule could not be set", "err", err)
	}
	au := &auth.Service{Store: st, SessionTTL: cfg.SessionTTL, EdgeSecret: cfg.EdgeSecret, Log: log}
	rdb, prefix := st.Redis()
	images := imgstore.New(obj, rdb, prefix)
	art := boot.ObjectArtifacts{Objects: obj, Seen: store.BootArtifacts{S: st}, Live: images.Live}
	f := &Functions{Store: st, Objects: obj, Auth: au, API: api.New(st, au, log),
		Boot: boot.New(st, au, art, boot.Config{ServerURL: cfg.BootURL, RequireNodeCert: cfg.RequireNodeCert, BlobCacheBytes: int64(cfg.BlobCacheMB) << 20}, log)}
	f.API.Objects = obj
	f.API.Images = images
	if newUI != nil {
		f.UI = newUI(st, images, au, log)
	}
	return f, nil
}

// Handler routes /api/v1 to the API, /boot/ to the boot function and
// everything else to the pages, as the edge and the Lambda HTTP API do.
func (f *Functions) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(api.Prefix+"/", f.API)
	mux.Handle(boot.Prefix, f.Boot)
	if f.UI != nil {
		mux.Handle("/", f.UI)
	}
	return mux
}

// Close releases the store.
func (f *Functions) Close() error { return f.Store.Close() }

// StartLambda is the whole main of a Lambda entry point: configuration
// from HERD_FUNCTIONS_* variables, the store, then the handler pick
// chooses, served by the Lambda runtime until it ends the process.
func StartLambda(name string, newUI UIFactory, pick func(*Functions) http.Handler) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", name)
	cfg, err := LoadConfig("", os.Getenv)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(1)
	}
	fns, err := Open(context.Background(), cfg, newUI, log)
	if err != nil {
		log.Error("open store", "err", err)
		os.Exit(1)
	}
	lambda.Start(pick(fns))
}
