package initramfs

// PKIDir is where bootenv finds the cluster CA and the node client
// certificate inside the initramfs (see edge/pki's file names).
const PKIDir = "etc/herd/pki"

// Bootenv is the Spec of bootenv's initramfs: init as /init, the disk
// tools with their libraries, lvm.conf, and files (the cluster PKI, say).
// Kernel modules are not in it: the boot script loads the image's
// published modules archive beside it, so one bootenv serves every
// kernel. modulesDir and extra add modules anyway (the QEMU tests, which
// boot without an image).
func Bootenv(init []byte, files map[string][]byte, modulesDir string, extra ...string) Spec {
	spec := Spec{
		Init:  init,
		Tools: DiskTools(),
		Files: map[string][]byte{"etc/lvm/lvm.conf": []byte(LVMConf)},
	}
	for p, b := range files {
		spec.Files[p] = b
	}
	if modulesDir != "" {
		spec.ModulesDir = modulesDir
		spec.Modules = append(DiskModules(), extra...)
	}
	return spec
}
