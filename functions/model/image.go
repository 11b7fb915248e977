package model

import "time"

// Image is an image as the API shows it: its branches and which is live.
// Names are labels of any characters; the id never changes.
type Image struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Live     string        `json:"live"`
	Branches []ImageBranch `json:"branches"`
	Created  time.Time     `json:"created,omitzero"`
	Updated  time.Time     `json:"updated,omitzero"`
}

// ImageBranch is one branch and the version (manifest digest) it points at.
type ImageBranch struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ImagePatch renames an image or makes another branch live.
type ImagePatch struct {
	Name string `json:"name,omitempty"`
	Live string `json:"live,omitempty"`
}

// BranchRequest creates branch Name as a copy of From (default: the live
// branch).
type BranchRequest struct {
	Name string `json:"name"`
	From string `json:"from,omitempty"`
}

// BranchPatch renames a branch.
type BranchPatch struct {
	Name string `json:"name"`
}

// CommitRequest moves a branch from Base (empty: the branch, or the image,
// is new) to Version, a manifest already stored.
type CommitRequest struct {
	// Lease, when set, is the import lease to end with the commit.
	Lease   string `json:"lease,omitempty"`
	Base    string `json:"base,omitempty"`
	Version string `json:"version"`
	Message string `json:"message,omitempty"`
}

// CommitReply says what a commit changed.
type CommitReply struct {
	Image   string `json:"image"`
	Branch  string `json:"branch"`
	Version string `json:"version"`
	Base    string `json:"base,omitempty"`
	Added   int    `json:"added"`
	Changed int    `json:"changed"`
	Removed int    `json:"removed"`
	// Kernel is the kernel version published for booting this branch.
	Kernel string `json:"kernel,omitempty"`
	// Note says what nodes will not be able to do with this version.
	Note string `json:"note,omitempty"`
}

// RollbackRequest moves a branch back to an earlier version of its own.
type RollbackRequest struct {
	To      string `json:"to"`
	Message string `json:"message,omitempty"`
}

// ImageDiff lists the paths that differ between two versions.
type ImageDiff struct {
	Added   []string     `json:"added"`
	Changed []PathChange `json:"changed"`
	Removed []string     `json:"removed"`
}

// PathChange is one path in both versions and what differs ("content,mode").
type PathChange struct {
	Path string `json:"path"`
	What string `json:"what"`
}

// MissingRequest asks which of these blob digests the store lacks.
type MissingRequest struct {
	Digests []string `json:"digests"`
	// Lease, when set, pins the digests for that import first, so what is
	// reported present stays until the import commits.
	Lease string `json:"lease,omitempty"`
}

// ImportLease is an import that spans requests: blobs it checks or stores
// with the lease stay safe from GC until it commits or ends.
type ImportLease struct {
	Lease string `json:"lease"`
}

// MissingReply lists the digests the store lacks.
type MissingReply struct {
	Missing []string `json:"missing"`
}

// ImageVersion is one record of a branch's history: the branch moved from
// Previous to Version, by Kind (commit, rollback, branch).
type ImageVersion struct {
	Version  string    `json:"version"`
	Previous string    `json:"previous,omitempty"`
	Time     time.Time `json:"time"`
	User     string    `json:"user,omitempty"`
	Message  string    `json:"message,omitempty"`
	Kind     string    `json:"kind"`
	From     string    `json:"from,omitempty"`
	Added    int       `json:"added"`
	Changed  int       `json:"changed"`
	Removed  int       `json:"removed"`
}

// GCRequest asks for a garbage collection of image content.
type GCRequest struct {
	DryRun bool   `json:"dry_run,omitempty"`
	Grace  string `json:"grace,omitempty"` // unreferenced content younger than this stays; default 1h
}

// GCReport is what a garbage collection found and freed.
type GCReport struct {
	DryRun           bool  `json:"dry_run"`
	Versions         int   `json:"versions"`
	Blobs            int   `json:"blobs"`
	Scanned          int   `json:"scanned"`
	KeptYoung        int   `json:"kept_young"`
	DeletedBlobs     int   `json:"deleted_blobs"`
	DeletedManifests int   `json:"deleted_manifests"`
	BytesFreed       int64 `json:"bytes_freed"`
}

// BootenvInfo describes the published bootenv initramfs.
type BootenvInfo struct {
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256,omitempty"`
	Modified time.Time `json:"modified,omitzero"`
}
