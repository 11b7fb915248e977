package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Detect tells what path is: a directory tree, an OCI layout directory, a
// docker save (or OCI archive) tar, or a plain tar, either tar possibly
// compressed. A tar is told by its names: manifest.json or index.json at the
// top beside nothing but what docker save and OCI archives hold make it an
// image archive; any other name makes it a root filesystem. Telling needs to
// read the tar's headers to the end only for an image archive, and skips
// file contents when the tar is not compressed.
func Detect(p string) (Kind, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return KindUnknown, fmt.Errorf("detect %s: %w", p, err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "oci-layout")); err == nil {
			return KindOCI, nil
		}
		return KindDir, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return KindUnknown, fmt.Errorf("detect %s: %w", p, err)
	}
	defer f.Close()
	k, err := detectTar(f)
	if err != nil {
		return KindUnknown, fmt.Errorf("detect %s: %w", p, err)
	}
	return k, nil
}

// detectTar reads tar headers from f until the names decide.
func detectTar(f *os.File) (Kind, error) {
	br := bufio.NewReader(f)
	head, _ := br.Peek(magicLen)
	var r io.Reader = f // plain: tar seeks past contents
	if DetectCompression(head) == None {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return KindUnknown, err
		}
	} else {
		d, err := decompress(br)
		if err != nil {
			return KindUnknown, err
		}
		defer d.close()
		r = d
	}
	tr := tar.NewReader(r)
	image := false
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) && i > 0 {
			break
		}
		if err != nil {
			return KindUnknown, fmt.Errorf("not a tar archive: %w: %w", ErrFormat, err)
		}
		switch imageArchiveName(path.Clean(h.Name)) {
		case nameOther:
			return KindTar, nil
		case nameIndex:
			image = true
		}
	}
	if image {
		return KindDockerSave, nil
	}
	return KindTar, nil
}

type nameClass int

const (
	nameOther nameClass = iota // cannot be in an image archive's top level
	nameImage                  // can be
	nameIndex                  // the index that makes it one
)

// imageArchiveName classifies a name as a docker save or OCI archive writes
// them: manifest.json, index.json, oci-layout, repositories, blobs/...,
// <id>.json and <id>/{VERSION,json,layer.tar}.
func imageArchiveName(name string) nameClass {
	switch name {
	case "manifest.json", "index.json":
		return nameIndex
	case ".", "oci-layout", "repositories", "blobs", "blobs/sha256":
		return nameImage
	}
	if strings.HasPrefix(name, "blobs/") {
		return nameImage
	}
	id, rest, _ := strings.Cut(name, "/")
	id = strings.TrimSuffix(id, ".json")
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return nameOther
	}
	switch rest {
	case "", "VERSION", "json", "layer.tar":
		return nameImage
	}
	return nameOther
}
