package archive

import (
	"fmt"
	"maps"
	"slices"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// apply puts layer up on top of the image lower, as a container runtime
// unpacks it: hardlinks to lower files resolve to those files, whiteouts
// delete lower paths with their subtrees, opaque directories drop their
// lower children, then up's entries replace lower's, directories merging.
// It is pure: lower is changed in place, up is only read (its pending
// hardlinks are resolved).
//
// A lower path that is not a directory but has entries beneath it in up
// (which tarcheck cannot see across layers) is refused rather than followed,
// since following a lower symlink is how a layer writes outside its place.
func apply(lower *tree, up *layer) error {
	for _, n := range up.links {
		if n.link == "" {
			continue // resolved when this layer was applied before, lower in the same image
		}
		t := lower.lookup(n.link)
		if t == nil || t.e == nil || t.e.Type != manifest.TypeFile {
			return fmt.Errorf("%w: entry %q: hardlink to %q, which no lower layer has as a regular file", ErrLayerApply, n.src, n.link)
		}
		n.e, n.link = t.e, ""
	}
	for _, p := range up.whiteouts {
		lower.remove(p)
	}
	for _, p := range up.opaque {
		if d := lower.lookup(p); d != nil && d.isDir() {
			clear(d.kids)
		}
	}
	if !up.t.root.implied {
		lower.setRoot(up.t.root.e, up.t.root.src)
	}
	return overlay(lower.root, up.t.root, ".")
}

// overlay merges the children of the upper directory up into lower, the
// same directory at path p one layer down.
func overlay(lower, up *node, p string) error {
	// Sorted so that of several conflicts the same one is reported each time.
	for _, name := range slices.Sorted(maps.Keys(up.kids)) {
		u, l := up.kids[name], lower.kids[name]
		q := name
		if p != "." {
			q = p + "/" + name
		}
		switch {
		case l != nil && l.isDir() && u.isDir():
			if !u.implied {
				l.e, l.implied, l.src = u.e, false, u.src
			}
			if err := overlay(l, u, q); err != nil {
				return err
			}
		case l != nil && u.implied:
			return fmt.Errorf("%w: %q is a %s in a lower layer, and this layer has entries beneath it", ErrLayerApply, q, l.typ())
		default:
			// A copy, so that a layer an image lists twice (identical empty
			// layers are common) is not changed by its first application.
			lower.kids[name] = u.clone()
		}
	}
	return nil
}

// merge applies layers in order onto an empty image and returns its
// manifest.
func merge(layers []*layer) (*manifest.Manifest, error) {
	img := newTree()
	for i, l := range layers {
		if err := apply(img, l); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return img.manifest()
}
