package components

import (
	"strings"
	"testing"
)

func TestImagePage(t *testing.T) {
	const v1 = "sha256:271be81fea91c0ffee00000000000000000000000000000000000000000001"
	v := ImageView{
		Name: "rocky 9/hpc", Live: "main", LiveVersion: v1, Created: day(10), Updated: day(11),
		Branches: []BranchRow{
			{Name: "main", Version: v1, Live: true, Users: 1},
			{Name: "testing", Version: "sha256:ccb2d637b312c0ffee00000000000000000000000000000000000000000002"},
		},
		Kernels: []KernelRow{{Version: "6.1.0-28-amd64", Path: "boot/vmlinuz-6.1.0-28-amd64", Size: 8 << 20,
			Initrd: "boot/initrd.img-6.1.0-28-amd64", Modules: 3012}},
		Users: []ImageUserRow{{Kind: "group", Name: "compute"}, {Kind: "node", Name: "node001", Via: "compute"},
			{Kind: "node", Name: "login1", Branch: "testing"}},
		UsersTotal: 250,
	}
	golden(t, "image_page", ImagePage(Page{Title: "Image rocky 9/hpc", Section: "images", User: "alice"}, v))
	golden(t, "image_page_readonly", ImagePage(Page{Title: "Image rocky 9/hpc", Section: "images", User: "bob", ReadOnly: true},
		ImageView{Name: "bare", Live: "main", LiveVersion: v1, Branches: v.Branches[:1]}))
}

func TestImageURLs(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ImageURL("rocky 9/hpc"), "/images/rocky%209%2Fhpc"},
		{BranchURL("a/b", "x y"), "/images/a%2Fb/branches/x%20y"},
		{DiffURL("a", "main", "sha256:00"), "/images/a/diff?from=main&to=sha256%3A00"},
		{imageAuditURL("a b"), "/audit?ref=image%2Fa+b"},
		{refURL("image/rocky 9/hpc"), "/images/rocky%209%2Fhpc"},
		{shortDigest("sha256:271be81fea91c0ffee"), "271be81fea91"},
		{slashPath("."), "/"},
		{slashPath("etc/motd"), "/etc/motd"},
		{byteSize(1000), "1000 B"},
		{byteSize(3000), "2.9 KiB"},
		{byteSize(8 << 20), "8.0 MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !strings.HasPrefix(more(523, 500), "… and 23 more") {
		t.Errorf("more(523, 500) = %q", more(523, 500))
	}
}
