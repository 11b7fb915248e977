package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// layout writes an OCI image layout by hand.
type layout struct {
	t   *testing.T
	dir string
}

func (l layout) blob(mediaType string, data []byte) descriptor {
	d := manifest.Sum(data)
	p := filepath.Join(l.dir, "blobs", "sha256", strings.TrimPrefix(d.String(), "sha256:"))
	must(l.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(l.t, os.WriteFile(p, data, 0o644))
	return descriptor{MediaType: mediaType, Digest: d.String(), Size: int64(len(data))}
}

func (l layout) json(mediaType string, v any) descriptor {
	b, err := json.Marshal(v)
	must(l.t, err)
	return l.blob(mediaType, b)
}

func (l layout) index(manifests ...descriptor) {
	b, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaOCIIndex, Manifests: manifests})
	must(l.t, err)
	must(l.t, os.WriteFile(filepath.Join(l.dir, "index.json"), b, 0o644))
	must(l.t, os.WriteFile(filepath.Join(l.dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
}

// image writes a config and manifest for layers (uncompressed tars, stored
// as given by compress) and returns the manifest's descriptor.
func (l layout) image(arch string, layers [][]byte, compress func(testing.TB, []byte) []byte) descriptor {
	var cfg imageConfig
	cfg.OS, cfg.Architecture, cfg.RootFS.Type = "linux", arch, "layers"
	m := index{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json"}
	for _, tb := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, manifest.Sum(tb).String())
		m.Layers = append(m.Layers, l.blob("application/vnd.oci.image.layer.v1.tar+gzip", compress(l.t, tb)))
	}
	c := l.json("application/vnd.oci.image.config.v1+json", cfg)
	m.Config = &c
	d := l.json(m.MediaType, m)
	d.Platform = &platform{OS: "linux", Architecture: arch}
	return d
}

// twoLayers are the layers of the image the OCI and docker tests share: the
// second deletes a file and a directory by whiteouts, makes a directory
// opaque, hardlinks to a file of the first and adds a file.
func twoLayers(t *testing.T) [][]byte {
	l1 := tarOf(t,
		dirEnt("etc/", 0o755), fileEnt("etc/a", 0o644, []byte("A")), fileEnt("etc/b", 0o644, []byte("B")),
		dirEnt("etc/gone/", 0o755), fileEnt("etc/gone/file", 0o644, []byte("gone")),
		dirEnt("opt/dir/", 0o755), fileEnt("opt/dir/x", 0o644, []byte("x")), fileEnt("opt/dir/sub/y", 0o644, []byte("y")),
		fileEnt("usr/bin/tool", 0o755, []byte("tool")),
	)
	l2 := tarOf(t,
		fileEnt("etc/.wh.a", 0o644, nil), fileEnt("etc/.wh.gone", 0o644, nil),
		dirEnt("opt/dir/", 0o700), fileEnt("opt/dir/.wh..wh..opq", 0o644, nil), fileEnt("opt/dir/new", 0o644, []byte("new")),
		linkEnt("usr/bin/tool2", "usr/bin/tool"),
		fileEnt("etc/c", 0o600, []byte("C")),
	)
	return [][]byte{l1, l2}
}

func checkTwoLayers(t *testing.T, m *manifest.Manifest) {
	t.Helper()
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	want := []string{".", "etc", "etc/b", "etc/c", "opt", "opt/dir", "opt/dir/new", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool2"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths %q\nwant  %q", paths, want)
	}
	es := entries(m)
	if e := es["opt/dir"]; e.Mode != 0o700 {
		t.Errorf("opt/dir mode %#o, want the upper layer's 0700", e.Mode)
	}
	if e := es["usr/bin/tool2"]; e.Type != manifest.TypeHardlink || e.LinkTarget != "usr/bin/tool" {
		t.Errorf("usr/bin/tool2 = %+v, want a hardlink to usr/bin/tool", e)
	}
	if e := es["etc/c"]; e.Digest != manifest.Sum([]byte("C")) || e.Mode != 0o600 {
		t.Errorf("etc/c = %+v", e)
	}
}

// buildLayout writes a layout whose index names one image, "herd:1", a
// nested index for amd64 (two layers, gzip and zstd), arm64 (the first
// layer only) and an attestation manifest.
func buildLayout(t *testing.T) (dir string, amd64 descriptor) {
	l := layout{t: t, dir: t.TempDir()}
	layers := twoLayers(t)
	amd64 = l.image("amd64", layers, func(t testing.TB, b []byte) []byte {
		if bytes.Equal(b, layers[0]) {
			return gzipOf(t, b)
		}
		return zstdOf(t, b)
	})
	arm64 := l.image("arm64", layers[:1], gzipOf)
	att := amd64
	att.Platform = &platform{OS: "unknown", Architecture: "unknown"}
	nested := l.json(mediaOCIIndex, index{SchemaVersion: 2, MediaType: mediaOCIIndex, Manifests: []descriptor{arm64, att, amd64}})
	nested.Annotations = map[string]string{annotationRefName: "herd:1"}
	l.index(nested)
	return l.dir, amd64
}

func TestFromOCI(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	dir, amd64 := buildLayout(t)

	m, st, err := FromOCI(ctx, s, dir, Options{})
	must(t, err)
	checkTwoLayers(t, m)
	if st.Layers != 2 || st.Files != 8 || st.BlobsUploaded != 8 {
		t.Errorf("stats %+v: want 2 layers, 8 files, 8 blobs (whiteouts are no files)", st)
	}

	byRef, _, err := FromOCI(ctx, s, dir, Options{Ref: "herd:1"})
	must(t, err)
	checkTwoLayers(t, byRef)

	arm, _, err := FromOCI(ctx, s, dir, Options{Platform: "linux/arm64"})
	must(t, err)
	if _, ok := entries(arm)["etc/a"]; !ok || len(arm.Entries) != 14 {
		t.Errorf("arm64 image has %d entries, want the first layer's 14", len(arm.Entries))
	}

	if _, _, err := FromOCI(ctx, s, dir, Options{Ref: "other"}); !errors.Is(err, ErrNoImage) {
		t.Errorf("unknown ref: %v, want ErrNoImage", err)
	}
	if _, _, err := FromOCI(ctx, s, dir, Options{Platform: "linux/riscv64"}); !errors.Is(err, ErrNoImage) {
		t.Errorf("unknown platform: %v, want ErrNoImage", err)
	}

	// A layer blob replaced by another valid layer is refused by its digest.
	var im index
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(amd64.Digest, "sha256:")))
	must(t, err)
	must(t, json.Unmarshal(b, &im))
	p, _, err := blobPath(dir, im.Layers[1])
	must(t, err)
	must(t, os.WriteFile(p, zstdOf(t, tarOf(t, fileEnt("evil", 0o644, []byte("evil")))), 0o644))
	if _, _, err := FromOCI(ctx, s, dir, Options{}); !errors.Is(err, ErrDigest) {
		t.Errorf("replaced layer: %v, want ErrDigest", err)
	}
}

// TestFromOCIDiffID checks that a layer must also match its config's diff
// ID, the digest of the uncompressed tar.
func TestFromOCIDiffID(t *testing.T) {
	l := layout{t: t, dir: t.TempDir()}
	layers := twoLayers(t)
	m := index{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json"}
	var cfg imageConfig
	for _, tb := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, manifest.Sum(append(tb, 0)).String())
		m.Layers = append(m.Layers, l.blob("application/vnd.oci.image.layer.v1.tar", tb))
	}
	c := l.json("application/vnd.oci.image.config.v1+json", cfg)
	m.Config = &c
	l.index(l.json(m.MediaType, m))
	if _, _, err := FromOCI(context.Background(), discard{}, l.dir, Options{}); !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("wrong diff_id: %v, want ErrDigest", err)
	}
}

// TestApplyLayers checks the layer rules the tests above do not reach.
func TestApplyLayers(t *testing.T) {
	u := newUploader(context.Background(), discard{}, 1)
	defer u.wait()
	read := func(ents ...ent) *layer {
		l, err := readTar(u, bytes.NewReader(tarOf(t, ents...)), Options{}.limits(), true, nil)
		must(t, err)
		return l
	}
	lower := read(symlinkEnt("lib", "usr/lib"), fileEnt("usr/lib/x", 0o644, []byte("x")), fileEnt("a", 0o644, []byte("a")), linkEnt("b", "a"))
	// A layer replacing one name of a hardlinked file leaves the other with
	// the old content; writing beneath a lower symlink is refused.
	up := read(fileEnt("a", 0o644, []byte("new a")))
	if _, err := merge([]*layer{lower, up}); err != nil {
		t.Fatal(err)
	}
	img := newTree()
	must(t, apply(img, lower))
	must(t, apply(img, up))
	m, err := img.manifest()
	must(t, err)
	es := entries(m)
	if es["a"].Digest != manifest.Sum([]byte("new a")) || es["b"].Type != manifest.TypeFile || es["b"].Digest != manifest.Sum([]byte("a")) {
		t.Errorf("a = %+v, b = %+v", es["a"], es["b"])
	}
	through := read(fileEnt("lib/evil", 0o644, []byte("evil")))
	if _, err := merge([]*layer{lower, through}); !errors.Is(err, ErrLayerApply) {
		t.Errorf("file beneath a lower symlink: %v, want ErrLayerApply", err)
	}
	dangling := read(linkEnt("c", "missing"))
	if _, err := merge([]*layer{lower, dangling}); !errors.Is(err, ErrLayerApply) {
		t.Errorf("hardlink to a file no layer has: %v, want ErrLayerApply", err)
	}
	// The same layer twice (identical layers are common) applies cleanly.
	opq := read(dirEnt("d/", 0o755), fileEnt("d/.wh..wh..opq", 0o644, nil), fileEnt("d/f", 0o644, []byte("f")))
	m, err = merge([]*layer{lower, opq, opq})
	must(t, err)
	if _, ok := entries(m)["d/f"]; !ok {
		t.Errorf("d/f lost when its opaque layer applied twice")
	}
}

// saveTar writes a docker save archive in the classic layout: <id>/layer.tar
// (one of them a symlink, as docker writes a layer two images share),
// <config digest>.json, manifest.json last.
func saveTar(t *testing.T, layers [][]byte, repoTag string, diffIDs []string) []byte {
	var cfg imageConfig
	cfg.OS, cfg.Architecture, cfg.RootFS.Type = "linux", "amd64", "layers"
	cfg.RootFS.DiffIDs = diffIDs
	cb, err := json.Marshal(cfg)
	must(t, err)
	cfgName := strings.TrimPrefix(manifest.Sum(cb).String(), "sha256:") + ".json"
	var ents []ent
	var paths []string
	for i, tb := range layers {
		id := strings.TrimPrefix(manifest.Sum([]byte{byte(i)}).String(), "sha256:")
		ents = append(ents, dirEnt(id+"/", 0o755), fileEnt(id+"/VERSION", 0o644, []byte("1.0")), fileEnt(id+"/json", 0o644, []byte("{}")),
			fileEnt(id+"/layer.tar", 0o644, tb))
		paths = append(paths, id+"/layer.tar")
	}
	alias := strings.TrimPrefix(manifest.Sum([]byte("alias")).String(), "sha256:")
	ents = append(ents, dirEnt(alias+"/", 0o755), symlinkEnt(alias+"/layer.tar", "../"+paths[len(paths)-1]))
	paths[len(paths)-1] = alias + "/layer.tar"
	mb, err := json.Marshal([]dockerManifest{{Config: cfgName, RepoTags: []string{repoTag}, Layers: paths}})
	must(t, err)
	ents = append(ents, fileEnt(cfgName, 0o644, cb), fileEnt("manifest.json", 0o644, mb), fileEnt("repositories", 0o644, []byte("{}")))
	return tarOf(t, ents...)
}

func TestFromDockerSave(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	layers := twoLayers(t)
	ids := []string{manifest.Sum(layers[0]).String(), manifest.Sum(layers[1]).String()}
	saved := saveTar(t, layers, "herd/test:1", ids)

	ociDir, _ := buildLayout(t)
	fromOCI, _, err := FromOCI(ctx, s, ociDir, Options{})
	must(t, err)
	want, err := manifest.DigestOf(fromOCI)
	must(t, err)

	for _, tc := range []struct {
		name string
		data []byte
		ref  string
	}{
		{"classic", saved, ""},
		{"classic gzipped, by ref", gzipOf(t, saved), "herd/test:1"},
		{"docker 25 (OCI inside)", ociArchive(t, ociDir, true), "herd:1"},
		{"OCI archive", ociArchive(t, ociDir, false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, st, err := FromDockerSave(ctx, s, bytes.NewReader(tc.data), Options{Ref: tc.ref})
			must(t, err)
			checkTwoLayers(t, m)
			if got, err := manifest.DigestOf(m); err != nil || got != want {
				t.Errorf("manifest %s, %v; the OCI layout of the same layers gave %s", got, err, want)
			}
			if st.Layers != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	if _, _, err := FromDockerSave(ctx, s, bytes.NewReader(saved), Options{Ref: "herd/other"}); !errors.Is(err, ErrNoImage) {
		t.Errorf("unknown ref: %v, want ErrNoImage", err)
	}
	bad := saveTar(t, layers, "herd/test:1", []string{ids[0], manifest.Sum(nil).String()})
	if _, _, err := FromDockerSave(ctx, s, bytes.NewReader(bad), Options{}); !errors.Is(err, ErrDigest) {
		t.Errorf("wrong diff_id: %v, want ErrDigest", err)
	}
}

// ociArchive tars an OCI layout directory, with a docker manifest.json for
// its amd64 image when docker is set, as Docker 25 and later save.
func ociArchive(t *testing.T, dir string, docker bool) []byte {
	var ents []ent
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			ents = append(ents, dirEnt(rel+"/", 0o755))
			return nil
		}
		b, err := os.ReadFile(p)
		must(t, err)
		ents = append(ents, fileEnt(rel, 0o644, b))
		return nil
	}))
	if docker {
		var top, nested, img index
		readJSON := func(name string, v any) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			must(t, err)
			must(t, json.Unmarshal(b, v))
		}
		readJSON("index.json", &top)
		readJSON(blobName(parsed(t, top.Manifests[0].Digest)), &nested)
		readJSON(blobName(parsed(t, nested.Manifests[2].Digest)), &img)
		dm := dockerManifest{Config: blobName(parsed(t, img.Config.Digest)), RepoTags: []string{"herd:1"}}
		for _, l := range img.Layers {
			dm.Layers = append(dm.Layers, blobName(parsed(t, l.Digest)))
		}
		b, err := json.Marshal([]dockerManifest{dm})
		must(t, err)
		ents = append(ents, fileEnt("manifest.json", 0o644, b))
	}
	return tarOf(t, ents...)
}

func parsed(t *testing.T, s string) manifest.Digest {
	t.Helper()
	d, err := manifest.ParseDigest(s)
	must(t, err)
	return d
}

func TestDetect(t *testing.T) {
	ociDir, _ := buildLayout(t)
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		must(t, os.WriteFile(p, b, 0o644))
		return p
	}
	layers := twoLayers(t)
	saved := saveTar(t, layers, "x:1", []string{manifest.Sum(layers[0]).String(), manifest.Sum(layers[1]).String()})
	rootfs := tarOf(t, dirEnt("./", 0o755), fileEnt("./etc/hostname", 0o644, []byte("node\n")))
	// A tree whose first names look like an image archive's is still a tree.
	lookalike := tarOf(t, fileEnt("repositories", 0o644, []byte("{}")), fileEnt("etc/passwd", 0o644, nil), fileEnt("manifest.json", 0o644, nil))
	for _, tc := range []struct {
		path string
		want Kind
	}{
		{tmp, KindDir},
		{ociDir, KindOCI},
		{write("save.tar", saved), KindDockerSave},
		{write("save.tar.gz", gzipOf(t, saved)), KindDockerSave},
		{write("oci.tar", ociArchive(t, ociDir, false)), KindDockerSave},
		{write("rootfs.tar", rootfs), KindTar},
		{write("rootfs.tar.xz", xzOf(t, rootfs)), KindTar},
		{write("lookalike.tar", lookalike), KindTar},
	} {
		if got, err := Detect(tc.path); err != nil || got != tc.want {
			t.Errorf("Detect(%s) = %v, %v; want %v", filepath.Base(tc.path), got, err, tc.want)
		}
	}
	for _, bad := range []string{write("garbage", bytes.Repeat([]byte("not a tar "), 100)), write("empty", nil), filepath.Join(tmp, "missing")} {
		if k, err := Detect(bad); err == nil {
			t.Errorf("Detect(%s) = %v, want an error", filepath.Base(bad), k)
		}
	}
}
