package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// Media types the import tells apart; anything else is judged by its JSON.
const (
	mediaOCIIndex     = "application/vnd.oci.image.index.v1+json"
	mediaDockerList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	annotationRefName = "org.opencontainers.image.ref.name"
	annotationCtrName = "io.containerd.image.name"
	maxJSON           = 16 << 20 // index, manifest and config blobs
	maxIndexDepth     = 4        // nested indexes followed
	defaultPlatform   = "linux/amd64"
)

// descriptor, index, imageManifest and imageConfig are the parts of the OCI
// image spec (and Docker's equivalents, which share the field names) the
// import reads.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Architecture + "/" + p.Variant
	}
	return p.OS + "/" + p.Architecture
}

// index is an image index (or Docker manifest list) or an image manifest:
// one JSON shape holds both so a blob of unknown media type can be told by
// which list it has.
type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

type layoutFile struct {
	ImageLayoutVersion string `json:"imageLayoutVersion"`
}

// parsePlatform reads "os/arch" or "os/arch/variant"; empty is linux/amd64.
func parsePlatform(s string) (platform, error) {
	if s == "" {
		s = defaultPlatform
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
	}
	p := platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// matches reports whether a manifest for have runs on want; a wanted variant
// must match, an unwanted one is any.
func (want platform) matches(have platform) bool {
	return have.OS == want.OS && have.Architecture == want.Architecture && (want.Variant == "" || have.Variant == want.Variant)
}

// jsonBlobs reads the verified content of small blobs by descriptor.
type jsonBlobs func(d descriptor) ([]byte, error)

// checkBlob checks b against d's size and digest.
func checkBlob(d descriptor, b []byte) error {
	want, err := manifest.ParseDigest(d.Digest)
	if err != nil {
		return err
	}
	if int64(len(b)) != d.Size {
		return fmt.Errorf("blob %s: %d bytes, descriptor says %d: %w", d.Digest, len(b), d.Size, ErrDigest)
	}
	if got := manifest.Sum(b); got != want {
		return fmt.Errorf("blob %s: content has digest %s: %w", d.Digest, got, ErrDigest)
	}
	return nil
}

// chosenImage is the image an OCI index leads to.
type chosenImage struct {
	manifest index
	config   imageConfig
	diffIDs  []manifest.Digest
}

// chooseOCI follows the index top to the one image manifest that ref and
// platform pick, and reads its config. It decides only: blobs come from get.
func chooseOCI(top index, get jsonBlobs, ref string, plat platform) (*chosenImage, error) {
	cands := top.Manifests
	if ref != "" {
		cands = slices.DeleteFunc(slices.Clone(cands), func(d descriptor) bool {
			return d.Annotations[annotationRefName] != ref && d.Annotations[annotationCtrName] != ref
		})
		if len(cands) == 0 {
			return nil, fmt.Errorf("ref %q (have %s): %w", ref, refNames(top.Manifests), ErrNoImage)
		}
	}
	for depth := 0; ; depth++ {
		d, err := pickPlatform(cands, plat)
		if err != nil {
			return nil, err
		}
		b, err := get(d)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		var m index
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		if m.Manifests == nil || m.Config != nil {
			return chooseConfig(m, d, get, plat)
		}
		if depth == maxIndexDepth {
			return nil, fmt.Errorf("index %s: more than %d nested indexes: %w", d.Digest, maxIndexDepth, ErrFormat)
		}
		cands = m.Manifests
	}
}

// pickPlatform picks the one descriptor of cands for plat. A single
// candidate is taken unless its platform says otherwise; of several, the
// ones whose platform matches count (attestation manifests, with platform
// unknown/unknown, never do).
func pickPlatform(cands []descriptor, plat platform) (descriptor, error) {
	if len(cands) == 1 {
		if p := cands[0].Platform; p != nil && !plat.matches(*p) {
			return descriptor{}, fmt.Errorf("image is for %s, want %s: %w", p, plat, ErrNoImage)
		}
		return cands[0], nil
	}
	if len(cands) == 0 {
		return descriptor{}, fmt.Errorf("index lists no manifests: %w", ErrNoImage)
	}
	var match []descriptor
	var have []string
	for _, d := range cands {
		if d.Platform == nil {
			continue
		}
		have = append(have, d.Platform.String())
		if plat.matches(*d.Platform) {
			match = append(match, d)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(have) == 0:
		return descriptor{}, fmt.Errorf("%d images (%s); pick one by ref: %w", len(cands), refNames(cands), ErrAmbiguous)
	case len(match) == 0:
		return descriptor{}, fmt.Errorf("no manifest for %s (have %s): %w", plat, strings.Join(have, ", "), ErrNoImage)
	}
	return descriptor{}, fmt.Errorf("%d manifests for %s: %w", len(match), plat, ErrAmbiguous)
}

func refNames(ds []descriptor) string {
	var names []string
	for _, d := range ds {
		if n := d.Annotations[annotationRefName]; n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no ref names"
	}
	return strings.Join(names, ", ")
}

// chooseConfig reads the config of image manifest m and checks it fits.
func chooseConfig(m index, d descriptor, get jsonBlobs, plat platform) (*chosenImage, error) {
	if m.Config == nil {
		return nil, fmt.Errorf("manifest %s has no config: %w", d.Digest, ErrFormat)
	}
	b, err := get(*m.Config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	img := &chosenImage{manifest: m}
	if err := json.Unmarshal(b, &img.config); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if img.diffIDs, err = diffIDs(img.config, len(m.Layers)); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := checkPlatform(img.config, plat); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return img, nil
}

// diffIDs parses the config's layer digests (of the uncompressed tars); a
// config must list one per layer.
func diffIDs(c imageConfig, layers int) ([]manifest.Digest, error) {
	if len(c.RootFS.DiffIDs) != layers {
		return nil, fmt.Errorf("%d diff_ids for %d layers: %w", len(c.RootFS.DiffIDs), layers, ErrFormat)
	}
	ds := make([]manifest.Digest, layers)
	for i, s := range c.RootFS.DiffIDs {
		d, err := manifest.ParseDigest(s)
		if err != nil {
			return nil, fmt.Errorf("diff_ids[%d]: %w", i, err)
		}
		ds[i] = d
	}
	return ds, nil
}

// checkPlatform refuses a config made for another platform than plat; a
// config that does not say is taken.
func checkPlatform(c imageConfig, plat platform) error {
	if c.OS == "" || c.Architecture == "" {
		return nil
	}
	have := platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}
	if !plat.matches(have) {
		return fmt.Errorf("image is for %s, want %s: %w", have, plat, ErrNoImage)
	}
	return nil
}

// FromOCI imports the image of the OCI image layout in directory dir that
// opts.Ref and opts.Platform pick: it follows index.json to an image
// manifest, checks every index, manifest and config blob against its
// digest, then streams the layers in order, each checked against its
// descriptor's digest and size and its diff ID before it is applied, and
// returns the manifest of the layers applied with their whiteouts. Nothing
// is committed.
func FromOCI(ctx context.Context, blobs Blobs, dir string, opts Options) (*manifest.Manifest, Stats, error) {
	var st Stats
	fail := func(err error) (*manifest.Manifest, Stats, error) {
		return nil, st, fmt.Errorf("import OCI layout %s: %w", dir, err)
	}
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return fail(err)
	}
	top, err := readLayoutIndex(dir)
	if err != nil {
		return fail(err)
	}
	img, err := chooseOCI(*top, ociDirJSON(dir), opts.Ref, plat)
	if err != nil {
		return fail(err)
	}
	u := newUploader(ctx, blobs, opts.workers())
	layers, err := readOCILayers(u, dir, img, opts)
	if werr := u.wait(); err == nil {
		err = werr
	}
	u.addStats(&st)
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

// readLayoutIndex reads oci-layout and index.json of an OCI layout.
func readLayoutIndex(dir string) (*index, error) {
	b, err := readSmall(filepath.Join(dir, "oci-layout"))
	if err != nil {
		return nil, err
	}
	var lf layoutFile
	if err := json.Unmarshal(b, &lf); err != nil {
		return nil, fmt.Errorf("oci-layout: %w", err)
	}
	if !strings.HasPrefix(lf.ImageLayoutVersion, "1.") {
		return nil, fmt.Errorf("oci-layout: version %q, want 1.x: %w", lf.ImageLayoutVersion, ErrFormat)
	}
	if b, err = readSmall(filepath.Join(dir, "index.json")); err != nil {
		return nil, err
	}
	var top index
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	return &top, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxJSON {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, maxJSON, ErrFormat)
	}
	return b, nil
}

// blobPath is where an OCI layout keeps the blob of d; only sha256 blobs
// exist for this import, and the parsed digest keeps the path inside dir.
func blobPath(dir string, d descriptor) (string, manifest.Digest, error) {
	dg, err := manifest.ParseDigest(d.Digest)
	if err != nil {
		return "", dg, err
	}
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(dg.String(), "sha256:")), dg, nil
}

func ociDirJSON(dir string) jsonBlobs {
	return func(d descriptor) ([]byte, error) {
		if d.Size < 0 || d.Size > maxJSON {
			return nil, fmt.Errorf("blob %s: size %d, limit %d: %w", d.Digest, d.Size, maxJSON, ErrFormat)
		}
		p, _, err := blobPath(dir, d)
		if err != nil {
			return nil, err
		}
		b, err := readSmall(p)
		if err != nil {
			return nil, err
		}
		return b, checkBlob(d, b)
	}
}

// readOCILayers reads the layers of img from the layout in dir, in order.
func readOCILayers(u *uploader, dir string, img *chosenImage, opts Options) ([]*layer, error) {
	var layers []*layer
	for i, d := range img.manifest.Layers {
		if err := u.failed(); err != nil {
			return nil, err
		}
		p, want, err := blobPath(dir, d)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		l, got, err := readLayer(u, f, opts)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d %s: %w", i, d.Digest, err)
		}
		if err := got.check(want, d.Size, img.diffIDs[i]); err != nil {
			return nil, fmt.Errorf("layer %d %s: %w", i, d.Digest, err)
		}
		layers = append(layers, l)
	}
	return layers, nil
}

// layerSums are what was read of one layer blob.
type layerSums struct {
	digest manifest.Digest // of the blob as stored, usually compressed
	size   int64
	diffID manifest.Digest // of the uncompressed tar
}

// check compares the sums with the expected ones; a zero want or diffID, or
// a negative size, is not checked.
func (s layerSums) check(want manifest.Digest, size int64, diffID manifest.Digest) error {
	switch {
	case !want.IsZero() && s.digest != want:
		return fmt.Errorf("blob has digest %s: %w", s.digest, ErrDigest)
	case size >= 0 && s.size != size:
		return fmt.Errorf("blob is %d bytes, descriptor says %d: %w", s.size, size, ErrDigest)
	case !diffID.IsZero() && s.diffID != diffID:
		return fmt.Errorf("uncompressed tar has digest %s, config's diff_id is %s: %w", s.diffID, diffID, ErrDigest)
	}
	return nil
}

// readLayer reads one layer blob from r to its end, uploading contents, and
// returns it with its sums. The caller checks the sums before applying it.
func readLayer(u *uploader, r io.Reader, opts Options) (*layer, layerSums, error) {
	var s layerSums
	raw := &countingHash{h: sha256.New()}
	diff := sha256.New()
	l, err := readTar(u, io.TeeReader(r, raw), opts.limits(), true, diff)
	if err != nil {
		return nil, s, err
	}
	if _, err := io.Copy(raw, r); err != nil { // what decompression left unread
		return nil, s, err
	}
	raw.h.Sum(s.digest[:0])
	diff.Sum(s.diffID[:0])
	s.size = raw.n
	return l, s, nil
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// looksLikeJSON reports whether a blob's first bytes open a JSON object.
func looksLikeJSON(head []byte) bool {
	return len(bytes.TrimLeft(head, " \t\r\n")) > 0 && bytes.TrimLeft(head, " \t\r\n")[0] == '{'
}
