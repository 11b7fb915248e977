package components

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ImagesView is the list of images.
type ImagesView struct {
	Images []ImageRow
}

// ImageRow is one image in the list.
type ImageRow struct {
	Name        string
	Live        string // the live branch
	LiveVersion string // its version digest, "sha256:…"
	Branches    int
	Updated     time.Time
}

// ImageView is one image: its branches, the kernels of its live version,
// and who boots it.
type ImageView struct {
	Name        string
	Live        string
	LiveVersion string
	Created     time.Time
	Updated     time.Time
	Branches    []BranchRow
	Kernels     []KernelRow
	// KernelProblem is why the kernels could not be read, "" when they were.
	KernelProblem string
	// Users are the groups and nodes that boot the image, the first
	// UsersTotal of them.
	Users      []ImageUserRow
	UsersTotal int
}

// BranchRow is one branch of an image.
type BranchRow struct {
	Name    string
	Version string // "sha256:…"
	Live    bool
	Users   int // groups and nodes that name this branch
}

// KernelRow is one kernel found in a version.
type KernelRow struct {
	Version string
	Path    string
	Size    uint64
	Initrd  string // "" when the image has none
	Modules int
}

// ImageUserRow is a group or node that boots the image.
type ImageUserRow struct {
	Kind   string // "group" or "node"
	Name   string
	Branch string // "" follows the live branch
	Via    string // the group a node inherits the image from
}

// HistoryView is the history of one branch, newest first.
type HistoryView struct {
	Image, Branch string
	Current       string // the version the branch points at
	Records       []HistoryRow
	// More is set when older records were left out.
	More bool
}

// HistoryRow is one move of a branch.
type HistoryRow struct {
	Version                 string
	Time                    time.Time
	User, Kind, From, Msg   string
	Added, Changed, Removed int
}

// ImageDiffView compares two versions of an image.
type ImageDiffView struct {
	Image    string
	From, To string   // as asked: branch names or digests
	Branches []string // to choose from
	// Compared is set once both sides were found.
	Compared         bool
	FromVer, ToVer   string
	Added, Removed   []string
	Changed          []PathChangeRow
	AddedN, ChangedN int // totals; the lists may be capped
	RemovedN         int
	Problem          string // why the comparison failed, "" when it did not
	Identical        bool
}

// PathChangeRow is one changed path and what changed about it.
type PathChangeRow struct {
	Path, What string
}

// ImageURL is the page of an image; the name is one path segment, slashes
// and all.
func ImageURL(name string) string { return "/images/" + url.PathEscape(name) }

// BranchURL is the base of a branch's pages and actions.
func BranchURL(image, branch string) string {
	return ImageURL(image) + "/branches/" + url.PathEscape(branch)
}

// DiffURL compares two versions (branch names or digests) of an image.
func DiffURL(image, from, to string) string {
	return ImageURL(image) + "/diff?" + url.Values{"from": {from}, "to": {to}}.Encode()
}

// imageAuditURL is the audit page filtered to an image's events.
func imageAuditURL(name string) string {
	return "/audit?" + url.Values{"ref": {"image/" + name}}.Encode()
}

// shortDigest shows the first 12 hex digits of a digest.
func shortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// slashPath shows a manifest path (relative, "." for the root) as the
// absolute path it has on a node.
func slashPath(p string) string {
	if p == "." {
		return "/"
	}
	return "/" + p
}

// byteSize writes a size in the largest binary unit that keeps it >= 1.
func byteSize(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i:i+1] + "iB"
}

// branchUse says which branch a user boots.
func branchUse(u ImageUserRow, live string) string {
	if u.Branch == "" {
		return "live (" + live + ")"
	}
	return u.Branch
}

// userURL links a group or node.
func userURL(u ImageUserRow) string {
	if u.Kind == "group" {
		return groupURL(u.Name)
	}
	return nodeURL(u.Name)
}

// more is the note under a capped list.
func more(total, shown int) string {
	return "… and " + strconv.Itoa(total-shown) + " more"
}
