package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/objstore"
)

// has reports whether the object under key exists: a HEAD, cheaper than
// opening the object.
func (s *Store) has(ctx context.Context, key string) (bool, error) {
	_, err := s.obj.Stat(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// putIfAbsent stores size bytes from r under the key of digest d unless
// that key already holds an object. It reports whether it uploaded. The
// bytes are hashed as they stream, and a mismatch fails the upload before
// its last byte is handed over, so no key ever holds other content than its
// digest says.
func (s *Store) putIfAbsent(ctx context.Context, key string, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	ok, err := s.has(ctx, key)
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	vr := &verifyingReader{r: r, h: sha256.New(), want: d, left: size}
	if err := s.obj.Put(ctx, key, vr, size, "application/octet-stream"); err != nil {
		return false, fmt.Errorf("put %s: %w", key, err)
	}
	if vr.left != 0 {
		return false, fmt.Errorf("put %s: %d bytes were not read", key, vr.left)
	}
	return true, nil
}

// PutBlob stores size bytes from r as the blob with digest d unless it is
// already present, and reports whether it uploaded. The content is checked
// against d as it streams; a mismatch stores nothing.
func (s *Store) PutBlob(ctx context.Context, d manifest.Digest, r io.Reader, size int64) (bool, error) {
	return s.putIfAbsent(ctx, BlobKey(d), d, r, size)
}

// VerifyingReader returns a reader of exactly size bytes of r whose read
// of the last byte fails unless their SHA-256 is d: whoever stores what it
// reads never completes content other than d says.
func VerifyingReader(r io.Reader, d manifest.Digest, size int64) io.Reader {
	return &verifyingReader{r: r, h: sha256.New(), want: d, left: size}
}

// verifyingReader passes exactly left bytes of r and fails the read that
// would complete them if their SHA-256 is not want.
type verifyingReader struct {
	r    io.Reader
	h    hash.Hash
	want manifest.Digest
	left int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if v.left == 0 {
		var got manifest.Digest
		v.h.Sum(got[:0])
		if got != v.want {
			return 0, fmt.Errorf("content changed: digest %s, want %s", got, v.want)
		}
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		return n, fmt.Errorf("content shorter than expected by %d bytes: %w", v.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// readBlob returns the content of the blob with digest d and checks it.
func (s *Store) readBlob(ctx context.Context, d manifest.Digest, w io.Writer, size uint64) error {
	rc, n, err := s.obj.Get(ctx, BlobKey(d))
	if err != nil {
		return err
	}
	defer rc.Close()
	if uint64(n) != size {
		return fmt.Errorf("blob %s: %d bytes, want %d", d, n, size)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), rc); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if got := manifest.Digest(h.Sum(nil)); got != d {
		return fmt.Errorf("blob %s: content has digest %s", d, got)
	}
	return nil
}

// PutManifest stores m and returns its digest, the version id.
func (s *Store) PutManifest(ctx context.Context, m *manifest.Manifest) (manifest.Digest, error) {
	return s.putManifest(ctx, m, nil)
}

// PutManifestLeased is PutManifest for an import holding lease l: the
// manifest is pinned before the store looks whether it exists.
func (s *Store) PutManifestLeased(ctx context.Context, m *manifest.Manifest, l Lease) (manifest.Digest, error) {
	return s.putManifest(ctx, m, &l)
}

func (s *Store) putManifest(ctx context.Context, m *manifest.Manifest, l *Lease) (manifest.Digest, error) {
	b, err := manifest.Encode(m)
	if err != nil {
		return manifest.Digest{}, err
	}
	d := manifest.Sum(b)
	if l != nil {
		if err := s.Pin(ctx, *l, d); err != nil {
			return manifest.Digest{}, fmt.Errorf("store manifest %s: %w", d, err)
		}
	}
	if _, err := s.putIfAbsent(ctx, ManifestKey(d), d, bytes.NewReader(b), int64(len(b))); err != nil {
		return manifest.Digest{}, fmt.Errorf("store manifest %s: %w", d, err)
	}
	return d, nil
}

// Manifest reads the manifest with digest d, checking that its content has
// that digest.
func (s *Store) Manifest(ctx context.Context, d manifest.Digest) (*manifest.Manifest, error) {
	rc, _, err := s.obj.Get(ctx, ManifestKey(d))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("manifest %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if got := manifest.Sum(b); got != d {
		return nil, fmt.Errorf("manifest %s: content has digest %s", d, got)
	}
	m, err := manifest.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	return m, nil
}
