// Package frontend holds what functions/ui renders and serves: the templ
// components (in components/) and the static assets under static/ — herd's
// own stylesheet, and htmx copied from node_modules into static/vendor by
// `make` (that folder is not committed, so pages must work without it).
package frontend

import (
	"embed"
	"io/fs"
)

// The pattern names the folder, not the files in it, so the build does not
// fail when static/vendor has not been filled yet.
//
//go:embed static
var static embed.FS

// Static returns the static assets, rooted at the static folder: "herd.css",
// "vendor/htmx.min.js" (when present), and so on.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only for an invalid path; "static" is valid.
		panic(err)
	}
	return sub
}
