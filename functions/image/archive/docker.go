package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// dockerManifest is one image of a docker save archive's manifest.json.
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// maxSymlinkHops bounds how many symlinks of the archive a layer path may go
// through (docker save links a layer that two images share).
const maxSymlinkHops = 8

// saved is a docker save (or OCI archive) tar read once: its small JSON
// files and its layers, by their cleaned names in the archive.
type saved struct {
	json     map[string][]byte
	layers   map[string]*savedLayer
	symlinks map[string]string // name → target, as a name in the archive
}

type savedLayer struct {
	l    *layer
	sums layerSums
	err  error // why the layer could not be read; fatal only if the image needs it
}

// FromDockerSave imports an image from the tar `docker save` writes, plain
// or compressed: the classic layout (manifest.json, <id>.json configs,
// <id>/layer.tar) and the OCI one of Docker 25 and later (blobs/sha256/...,
// index.json beside manifest.json), or an OCI archive with index.json alone.
// The image is the one opts.Ref names among RepoTags, or the only one.
//
// The archive is read once, in whatever order it holds its files, so every
// layer is read and its contents uploaded before manifest.json says which
// layers the image uses; a layer of another image in the same archive costs
// uploads but never reaches the manifest. Each layer the image uses is then
// checked against its diff ID in the config (and its blob digest when the
// archive names it by digest) before it is applied. Nothing is committed.
func FromDockerSave(ctx context.Context, blobs Blobs, r io.Reader, opts Options) (*manifest.Manifest, Stats, error) {
	var st Stats
	fail := func(err error) (*manifest.Manifest, Stats, error) {
		return nil, st, fmt.Errorf("import docker save archive: %w", err)
	}
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return fail(err)
	}
	u := newUploader(ctx, blobs, opts.workers())
	s, err := readSaved(u, r, opts)
	if werr := u.wait(); err == nil {
		err = werr
	}
	u.addStats(&st)
	if err != nil {
		return fail(err)
	}
	layers, err := s.image(opts.Ref, plat)
	if err != nil {
		return fail(err)
	}
	st.Layers = len(layers)
	m, err := merge(layers)
	if err != nil {
		return fail(err)
	}
	return m, st, nil
}

// readSaved reads the outer tar: JSON files into memory, layers into layer
// trees with their sums, other files skipped.
func readSaved(u *uploader, r io.Reader, opts Options) (*saved, error) {
	d, err := decompress(bufio.NewReaderSize(r, 1<<16))
	if err != nil {
		return nil, err
	}
	defer d.close()
	s := &saved{json: map[string][]byte{}, layers: map[string]*savedLayer{}, symlinks: map[string]string{}}
	tr := tar.NewReader(d)
	for {
		if err := u.failed(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", truncated(err))
		}
		name := path.Clean(h.Name)
		// Sizes are bounded before anything is read: a sparse entry (docker
		// never writes one) could expand a few bytes into endless zeros.
		if h.Size > opts.limits().MaxEntrySize || isSparse(h) {
			return nil, fmt.Errorf("archive entry %q: sparse or larger than %d bytes: %w", h.Name, opts.limits().MaxEntrySize, ErrFormat)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			s.symlinks[name] = path.Join(path.Dir(name), h.Linkname)
			continue
		case tar.TypeReg:
		default:
			continue
		}
		br := bufio.NewReader(tr)
		head, _ := br.Peek(16)
		isJSON := strings.HasSuffix(name, ".json") || name == "oci-layout" || name == "repositories" ||
			strings.HasPrefix(name, "blobs/") && looksLikeJSON(head)
		switch {
		case isJSON && h.Size <= maxJSON:
			b, err := io.ReadAll(br)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, truncated(err))
			}
			s.json[name] = b
		case strings.HasSuffix(name, "/layer.tar") || strings.HasPrefix(name, "blobs/"):
			l, sums, err := readLayer(u, br, opts)
			if failed := u.failed(); failed != nil {
				return nil, failed
			}
			s.layers[name] = &savedLayer{l: l, sums: sums, err: err}
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return s, nil
}

// image returns the layers of the image ref picks, checked, in order.
func (s *saved) image(ref string, plat platform) ([]*layer, error) {
	if b, ok := s.json["manifest.json"]; ok {
		return s.dockerImage(b, ref, plat)
	}
	b, ok := s.json["index.json"]
	if !ok {
		return nil, fmt.Errorf("neither manifest.json nor index.json in the archive: %w", ErrFormat)
	}
	var top index
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	img, err := chooseOCI(top, s.blobJSON, ref, plat)
	if err != nil {
		return nil, err
	}
	var layers []*layer
	for i, d := range img.manifest.Layers {
		want, err := manifest.ParseDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		l, err := s.layer(blobName(want), want, d.Size, img.diffIDs[i])
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		layers = append(layers, l)
	}
	return layers, nil
}

func blobName(d manifest.Digest) string {
	return "blobs/sha256/" + strings.TrimPrefix(d.String(), "sha256:")
}

// dockerImage picks the image of manifest.json and returns its layers.
func (s *saved) dockerImage(b []byte, ref string, plat platform) ([]*layer, error) {
	var ms []dockerManifest
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	dm, err := pickDocker(ms, ref)
	if err != nil {
		return nil, err
	}
	cfgName, err := s.resolve(dm.Config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", dm.Config, err)
	}
	cb, ok := s.json[cfgName]
	if !ok {
		return nil, fmt.Errorf("config %s is not in the archive: %w", dm.Config, ErrFormat)
	}
	// Classic archives name the config by its digest, the image id.
	if want, ok := digestInName(cfgName); ok {
		if got := manifest.Sum(cb); got != want {
			return nil, fmt.Errorf("config %s has digest %s: %w", dm.Config, got, ErrDigest)
		}
	}
	var cfg imageConfig
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", dm.Config, err)
	}
	if err := checkPlatform(cfg, plat); err != nil {
		return nil, fmt.Errorf("config %s: %w", dm.Config, err)
	}
	ids, err := diffIDs(cfg, len(dm.Layers))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", dm.Config, err)
	}
	var layers []*layer
	for i, lp := range dm.Layers {
		name, err := s.resolve(lp)
		if err != nil {
			return nil, fmt.Errorf("layer %d %s: %w", i, lp, err)
		}
		want, _ := digestInName(name)
		l, err := s.layer(name, want, -1, ids[i])
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		layers = append(layers, l)
	}
	return layers, nil
}

// pickDocker picks the image of manifest.json that ref names in its
// RepoTags ("name" meaning "name:latest"), or the only one.
func pickDocker(ms []dockerManifest, ref string) (dockerManifest, error) {
	var tags []string
	for _, m := range ms {
		tags = append(tags, m.RepoTags...)
	}
	if ref == "" {
		switch len(ms) {
		case 1:
			return ms[0], nil
		case 0:
			return dockerManifest{}, fmt.Errorf("manifest.json lists no images: %w", ErrNoImage)
		}
		return dockerManifest{}, fmt.Errorf("%d images (%s); pick one by ref: %w", len(ms), strings.Join(tags, ", "), ErrAmbiguous)
	}
	want := ref
	if i := strings.LastIndexByte(ref, ':'); i < 0 || strings.Contains(ref[i:], "/") {
		want = ref + ":latest"
	}
	for _, m := range ms {
		for _, t := range m.RepoTags {
			if t == ref || t == want {
				return m, nil
			}
		}
	}
	return dockerManifest{}, fmt.Errorf("ref %q (have %s): %w", ref, strings.Join(tags, ", "), ErrNoImage)
}

// layer returns the layer read under name after checking its sums.
func (s *saved) layer(name string, want manifest.Digest, size int64, diffID manifest.Digest) (*layer, error) {
	sl, ok := s.layers[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the archive: %w", name, ErrFormat)
	}
	if sl.err != nil {
		return nil, fmt.Errorf("%s: %w", name, sl.err)
	}
	if err := sl.sums.check(want, size, diffID); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return sl.l, nil
}

// blobJSON reads a JSON blob of an OCI archive, checked against d.
func (s *saved) blobJSON(d descriptor) ([]byte, error) {
	want, err := manifest.ParseDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	b, ok := s.json[blobName(want)]
	if !ok {
		return nil, fmt.Errorf("blob %s is not in the archive: %w", d.Digest, ErrFormat)
	}
	return b, checkBlob(d, b)
}

// resolve returns the archive name p stands for, following the archive's
// symlinks.
func (s *saved) resolve(p string) (string, error) {
	name := path.Clean(p)
	for range maxSymlinkHops {
		target, ok := s.symlinks[name]
		if !ok {
			return name, nil
		}
		name = target
	}
	return "", fmt.Errorf("more than %d symlinks: %w", maxSymlinkHops, ErrFormat)
}

// digestInName returns the digest a name spells: blobs/sha256/<hex> or
// <hex>.json.
func digestInName(name string) (manifest.Digest, bool) {
	hex, ok := strings.CutPrefix(name, "blobs/sha256/")
	if !ok {
		hex, ok = strings.CutSuffix(name, ".json")
	}
	if !ok || strings.Contains(hex, "/") {
		return manifest.Digest{}, false
	}
	d, err := manifest.ParseDigest("sha256:" + hex)
	return d, err == nil
}

// isSparse reports whether h is a sparse file in any of tar's encodings.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
