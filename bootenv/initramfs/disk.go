package initramfs

// DiskModules are the kernel modules bootenv loads to see and lay out
// disks: controllers (virtio, NVMe, AHCI/SCSI), md RAID levels,
// device-mapper for LVM, and the filesystems a layout can make.
func DiskModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "nvme", "ahci", "sd_mod",
		"md_mod", "raid0", "raid1", "raid10", "raid456", "dm_mod",
		"ext4", "xfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "crc32c_generic",
	}
}

// DiskTools are the commands the disk steps run, as Debian names them.
// The LVM commands are links to lvm and arrive as such; /sbin/modprobe is
// where the kernel looks when it loads a module on demand.
func DiskTools() []string {
	return []string{
		"sgdisk", "sfdisk", "blockdev", "wipefs", "blkid", "lsblk",
		"mdadm", "lvm", "pvcreate", "pvs", "vgcreate", "vgchange", "vgremove", "vgs", "lvcreate", "lvremove", "lvs",
		"mkfs.ext4", "mke2fs", "mkfs.xfs", "mkfs.vfat", "mkswap",
		"mount", "umount", "mkdir", "switch_root", "/sbin/modprobe", "kmod",
		"efibootmgr", // the fallback boot entry on UEFI machines
		// The fallback loader on BIOS machines, and its boot code.
		"extlinux", "/usr/lib/syslinux/mbr/gptmbr.bin",
		// Not a command: mke2fs reads its defaults (64bit, metadata_csum) here.
		"/etc/mke2fs.conf",
	}
}

// LVMConf is a minimal /etc/lvm/lvm.conf for an initramfs without udev:
// LVM makes its device nodes itself and asks udev nothing.
const LVMConf = `devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	md_component_detection = 1
}
activation {
	udev_sync = 0
	udev_rules = 0
	verify_udev_operations = 1
	monitoring = 0
}
global {
	use_lvmpolld = 0
	event_activation = 0
}
backup {
	backup = 0
	archive = 0
}
`
