package testenv

import (
	"testing"
)

// bigPackages is what DebianRootBig adds to minbase: a kernel, compilers,
// perl and python, as a compute node's image has them. Together they make a
// root of over 1 GB in tens of thousands of files, the size issue 5's
// figures are measured on.
const bigPackages = "linux-image-amd64,gcc,g++,make,python3,python3-pip,perl"

// DebianRootBig returns a real Debian root filesystem the size of a compute
// node's image (debootstrap --variant=minbase with a kernel, gcc, g++, make,
// perl, python3 and pip: over 1 GB in tens of thousands of files), built on
// first use into localdev/.cache/rootfs/bookworm-big and kept there between
// runs; building it takes a few minutes once. It is meant for benchmarks
// that need a tree as large as a real one. Tests must not change it: copy it
// with CopyTree first. The mirror is HERD_DEBIAN_MIRROR, default
// http://deb.debian.org/debian. Building needs root; without root the test
// is skipped with the reason.
func DebianRootBig(t testing.TB) string {
	t.Helper()
	return debianRoot(t, "big", bigPackages)
}
