// Package e2e holds herd's end-to-end test (issue 7, make e2e): a bare
// QEMU machine with an empty disk and a MAC herd has never seen boots
// through the real edge (DHCP, TFTP, HTTP in a network namespace) and the
// real functions (on localdev's Redis and MinIO), is discovered, assigned
// through the API, and provisions itself: disks laid out, image synced,
// plugins run, pivot into the image's init; it boots again with nothing
// to do, and once more after one file of the image changed; then a second
// machine boots under UEFI (OVMF) when that is installed. It has no code
// of its own outside the test; testdata/init is the image's init.
package e2e
