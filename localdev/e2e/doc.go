// Package e2e holds herd's end-to-end test (issue 7, make e2e): a bare
// QEMU machine with an empty disk and a MAC herd has never seen boots
// through the real edge (DHCP, TFTP, HTTP in a network namespace) and the
// real functions (on localdev's Redis and MinIO), is discovered, assigned
// through the API, and provisions itself: disks laid out, image synced,
// plugins run, pivot into the image's init; it boots again with nothing
// to do, and once more after one file of the image changed; herd then
// powers it off and on through its BMC (OpenIPMI's ipmi_sim, whose power
// on starts the machine's qemu and whose power off ends it), and it boots
// twice more that way; a second machine boots under UEFI (OVMF) when that
// is installed; and headless Chromium saves the node's page. Artifacts
// (the page's PNG, figures.txt, the logs) stay in $HERD_E2E_ARTIFACTS or
// localdev/.state/e2e/<time>/. It has no code of its own outside the
// test; testdata/init is the image's init.
package e2e
