package kernel

import (
	"bufio"
	"bytes"
	"path"
	"slices"
	"strings"

	"github.com/herd-hpc/herd/functions/image/manifest"
)

// ProvisionerModules returns the module directories and files (relative to
// a kernel's modules directory, as modules.dep names them) the provisioner
// needs to reach disks and the network and to write the image's file
// systems. A prefix ending in "/" is a directory; any other matches file
// names that start with it. Kept short on purpose: the archive rides along
// every provisioner boot.
//
//	block devices   drivers/block (virtio_blk, loop, nbd…), drivers/nvme,
//	                drivers/scsi (sd_mod, SAS HBAs), drivers/ata (AHCI),
//	                drivers/md (RAID and device mapper), drivers/virtio
//	network         drivers/net/ethernet (every wired NIC), drivers/net/virtio_net
//	file systems    fs/ext4, fs/xfs, fs/btrfs, fs/fat, fs/vfat (the EFI
//	                system partition), fs/nls (its code pages), fs/jbd2, fs/mbcache
//	helpers         lib (crc, raid6, zstd…), crypto (crc32c, xor, async_tx)
//
// Whatever these need beyond the list (phylib for a NIC, failover for
// virtio_net) comes in through modules.dep; see SelectModules.
func ProvisionerModules() []string {
	return []string{
		"kernel/drivers/block/", "kernel/drivers/nvme/", "kernel/drivers/scsi/",
		"kernel/drivers/ata/", "kernel/drivers/md/", "kernel/drivers/virtio/",
		"kernel/drivers/net/ethernet/", "kernel/drivers/net/virtio_net",
		"kernel/fs/ext4/", "kernel/fs/xfs/", "kernel/fs/btrfs/", "kernel/fs/fat/",
		"kernel/fs/vfat/", "kernel/fs/nls/", "kernel/fs/jbd2/", "kernel/fs/mbcache",
		"kernel/lib/", "kernel/crypto/",
		// DHCP's raw sockets, and entropy for DHCP ids and TLS keys on
		// machines without RDRAND; efivarfs for the fallback boot entry.
		"kernel/net/packet/", "kernel/drivers/char/hw_random/", "kernel/fs/efivarfs/",
	}
}

// SelectModules returns the files of k's modules directory the provisioner
// archive holds, relative to it and sorted: the modules.* index files at
// its top, the module files ProvisionerModules lists, and every module
// those depend on according to modulesDep (the content of its modules.dep,
// nil if there is none). Only paths that resolve to regular files count.
func SelectModules(m *manifest.Manifest, k Kernel, modulesDep []byte) []string {
	if k.ModulesDir == "" {
		return nil
	}
	t := NewTree(m)
	files := map[string]bool{}
	for _, e := range t.Under(k.ModulesDir) {
		rel := e.Path[len(k.ModulesDir)+1:]
		if _, r, ok := t.Resolve(e.Path); ok && r.Type == manifest.TypeFile {
			files[rel] = true
		}
	}
	want := map[string]bool{}
	var queue []string
	for rel := range files {
		switch {
		case !strings.Contains(rel, "/") && strings.HasPrefix(rel, "modules."):
			want[rel] = true
		case isModule(rel) && wanted(rel):
			want[rel] = true
			queue = append(queue, rel)
		}
	}
	deps := parseDeps(modulesDep)
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		for _, d := range deps[rel] {
			if files[d] && !want[d] {
				want[d] = true
				queue = append(queue, d)
			}
		}
	}
	out := make([]string, 0, len(want))
	for rel := range want {
		out = append(out, rel)
	}
	slices.Sort(out)
	return out
}

func wanted(rel string) bool {
	for _, p := range ProvisionerModules() {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p) ||
			!strings.HasSuffix(p, "/") && path.Dir(rel) == path.Dir(p) && strings.HasPrefix(path.Base(rel), path.Base(p)) {
			return true
		}
	}
	return false
}

// parseDeps reads modules.dep: "module: dep dep …" per line.
func parseDeps(b []byte) map[string][]string {
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if ok {
			deps[strings.TrimSpace(mod)] = strings.Fields(rest)
		}
	}
	return deps
}
