package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"time"

	"github.com/herd-hpc/herd/frontend/components"
)

// staticFile is one asset, read once when the function starts.
type staticFile struct {
	data    []byte
	version string // first hex digits of its SHA-256
}

// staticFiles serves the assets. Pages link them with ?v=<version>, so a
// versioned URL never changes content and may be cached for a year; an
// unversioned request is revalidated by ETag.
type staticFiles struct {
	files map[string]staticFile
}

// loadStatic reads every asset of fsys. The assets are a few small files;
// keeping them in memory lets every answer carry an ETag without any
// state shared between replicas.
func loadStatic(fsys fs.FS, log *slog.Logger) *staticFiles {
	s := &staticFiles{files: map[string]staticFile{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		s.files[p] = staticFile{data: data, version: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		log.Error("read static assets", "err", err)
	}
	if _, ok := s.files[htmxPath]; !ok {
		log.Warn("htmx is not installed: pages work but without live filters and partial updates; run make to copy it", "want", "frontend/static/"+htmxPath)
	}
	return s
}

const (
	cssPath  = "herd.css"
	jsPath   = "herd.js"
	iconPath = "favicon.svg"
	htmxPath = "vendor/htmx.min.js"
)

// url is the versioned URL of an asset, or "" if there is no such asset.
func (s *staticFiles) url(name string) string {
	f, ok := s.files[name]
	if !ok {
		return ""
	}
	return StaticPrefix + name + "?v=" + f.version
}

func (s *staticFiles) assets() components.Assets {
	return components.Assets{CSS: s.url(cssPath), JS: s.url(jsPath), Icon: s.url(iconPath), HTMX: s.url(htmxPath)}
}

// ServeHTTP serves one asset; the path has lost its /static/ prefix.
func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(r.URL.Path)
	f, ok := s.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+f.version+`"`)
	if r.URL.Query().Get("v") == f.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300, must-revalidate")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
