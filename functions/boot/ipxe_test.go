package boot_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// TestChainScript: iPXE's first, bare request is told to come back with
// what it knows about the machine.
func TestChainScript(t *testing.T) {
	e := newEnv(t, boot.Config{})
	status, h, body := e.get("/boot/ipxe")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("bare /boot/ipxe: %d %s", status, h.Get("Content-Type"))
	}
	golden(t, "chain", body)
	// Without the edge's word the script points where the request went.
	status, _, body = e.do("GET", "/boot/ipxe", nil, "X-Forwarded-Host", "evil.example:1")
	if status != 200 || !strings.Contains(string(body), "chain "+e.srv.URL+"/boot/ipxe?mac=${netX/mac}") {
		t.Fatalf("direct /boot/ipxe: %d\n%s", status, body)
	}
}

func TestKnownMACBootsBIOSAndEFI(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	// Image names are labels: any characters, escaped in keys and URLs.
	const image = "rocky 9/x86&64 ${evil}"
	e.group(model.Group{Name: "compute", Settings: model.Settings{Image: image, KernelArgs: "console=ttyS0,115200n8 nomodeset"}})
	e.node(model.Node{Name: "node001", Group: "compute", Interfaces: []model.Interface{
		{Name: "eth0", MAC: "52:54:00:12:34:56", Address: "10.0.0.5/16", Boot: true}}})
	e.image(image, boot.LiveBranch)

	for _, platform := range []string{"pcbios", "efi"} {
		t.Run(platform, func(t *testing.T) {
			status, _, body := e.get("/boot/ipxe?mac=52-54-00-12-34-56&arch=x86_64&platform=" + platform)
			if status != 200 {
				t.Fatalf("status %d:\n%s", status, body)
			}
			id, token := bootParams(t, body)
			golden(t, "boot_"+platform, normalize(body, id, token))

			sess, err := e.st.BootSession(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sess.Node != "node001" || sess.MAC != "52:54:00:12:34:56" || sess.State != model.BootScriptSent ||
				sess.Arch != "x86_64" || sess.Platform != platform || sess.ClientAddr != "10.0.7.9" ||
				sess.Image != image || sess.Branch != boot.LiveBranch || len(sess.Artifacts) != 3 {
				t.Fatalf("session: %+v", sess)
			}
			if d := time.Until(sess.Expires); d < 23*time.Hour || d > 25*time.Hour {
				t.Errorf("session expires in %v, want about 24h", d)
			}
			// The token is stored hashed only.
			if _, err := e.st.BootTokenSession(ctx, token, 0); !store.IsKind(err, store.KindUnauthorized) {
				t.Errorf("the token itself is a key: %v", err)
			}
			events, err := e.st.BootEvents(ctx, id)
			if err != nil || len(events) != 1 || events[0].Step != "ipxe" || events[0].State != model.EventOK {
				t.Fatalf("events: %+v %v", events, err)
			}
			// Every URL in the script works with the session's token.
			for _, u := range regexp.MustCompile(`http://\S+/boot/artifacts/\S+`).FindAllString(string(body), -1) {
				p, _ := url.Parse(u)
				status, _, got := e.get(p.RequestURI())
				if status != 200 || !strings.Contains(string(got), "of "+image) && string(got) != "bootenv initramfs" {
					t.Errorf("GET %s: %d %q", u, status, got)
				}
			}
		})
	}
	list, err := e.st.BootSessions(ctx, "node001", 0)
	if err != nil || len(list) != 2 || list[0].Platform != "efi" || list[1].Platform != "pcbios" {
		t.Fatalf("recent sessions, newest first: %+v %v", list, err)
	}
}

// TestNodeWaits: a node with no image, or whose image lacks a file, is
// told why on its console and asks again, continuing its session.
func TestNodeWaits(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	e.group(model.Group{Name: "compute"})
	e.node(model.Node{Name: "node002", Group: "compute", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:00:00:02", Boot: true}}})

	status, _, body := e.get("/boot/ipxe?mac=52:54:00:00:00:02&arch=x86_64&platform=pcbios")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	id := retrySession(t, body)
	golden(t, "wait_no_image", normalize(body, id, ""))
	sess, err := e.st.BootSession(ctx, id)
	if err != nil || sess.State != model.BootWaiting || !strings.Contains(sess.Reason, "has no image") {
		t.Fatalf("session: %+v %v", sess, err)
	}

	// The image is set but its kernel is missing: same session, new reason.
	g, _ := e.st.GetGroup(ctx, "compute")
	g.Image, g.Branch = "rocky9", "testing"
	if _, err := e.st.ReplaceGroup(ctx, admin(), g, 0); err != nil {
		t.Fatal(err)
	}
	e.put(boot.ImageKey("rocky9", "testing", boot.ModulesFile), []byte("initrd"))
	status, _, body = e.get(retryPath(t, body))
	if status != 200 || retrySession(t, body) != id {
		t.Fatalf("retry: %d, want the same session %s:\n%s", status, id, body)
	}
	golden(t, "wait_missing_kernel", normalize(body, id, ""))
	sess, _ = e.st.BootSession(ctx, id)
	if sess.State != model.BootWaiting || sess.Reason != "the kernel of image rocky9 branch testing is missing (object images/rocky9/testing/kernel)" {
		t.Fatalf("session: %+v", sess)
	}

	// Everything is there now: the retry boots, still in the same session.
	e.image("rocky9", "testing")
	status, _, body = e.get(retryPath(t, body))
	gotID, _ := bootParams(t, body)
	if status != 200 || gotID != id {
		t.Fatalf("retry: %d, session %s, want %s", status, gotID, id)
	}
	sess, _ = e.st.BootSession(ctx, id)
	events, _ := e.st.BootEvents(ctx, id)
	if sess.State != model.BootScriptSent || sess.Reason != "" || len(events) != 3 {
		t.Fatalf("session %+v, %d events", sess, len(events))
	}
	if list, _ := e.st.BootSessions(ctx, "node002", 0); len(list) != 1 {
		t.Fatalf("%d sessions, want the one continued", len(list))
	}
	// A retry naming a session that is not waiting opens a new one.
	status, _, body = e.get("/boot/ipxe?mac=52:54:00:00:00:02&session=" + id)
	if gotID, _ := bootParams(t, body); status != 200 || gotID == id {
		t.Fatalf("retry of a session that no longer waits: %d, session %s", status, gotID)
	}

	// The group picks an older kernel of the image: the script loads it
	// once it is published, and says what is missing until then.
	g.Kernel = "6.1.0-9-amd64"
	if _, err := e.st.ReplaceGroup(ctx, admin(), g, 0); err != nil {
		t.Fatal(err)
	}
	_, _, body = e.get("/boot/ipxe?mac=52:54:00:00:00:02")
	if !strings.Contains(string(body), "kernel of image rocky9 branch testing version 6.1.0-9-amd64 is missing") {
		t.Fatalf("script without the chosen kernel:\n%s", body)
	}
	for _, f := range []string{"kernel", boot.ModulesFile} {
		e.put(imgstore.VersionArtifactKey("rocky9", "testing", "6.1.0-9-amd64", f), []byte(f))
	}
	_, _, body = e.get("/boot/ipxe?mac=52:54:00:00:00:02")
	if !strings.Contains(string(body), "/images/rocky9/testing/versions/6.1.0-9-amd64/kernel?") {
		t.Fatalf("script does not load the chosen kernel:\n%s", body)
	}
}

func retrySession(t *testing.T, script []byte) string {
	t.Helper()
	m := regexp.MustCompile(`session=([0-9a-f]{32})`).FindSubmatch(script)
	if m == nil {
		t.Fatalf("no session in the retry URL:\n%s", script)
	}
	return string(m[1])
}

func retryPath(t *testing.T, script []byte) string {
	t.Helper()
	m := regexp.MustCompile(`chain (\S+)`).FindSubmatch(script)
	if m == nil {
		t.Fatalf("no chain in:\n%s", script)
	}
	u, err := url.Parse(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func TestUnknownMACIsDiscovered(t *testing.T) {
	e := newEnv(t, boot.Config{})
	ctx := context.Background()
	long := strings.Repeat("x", 500)
	q := url.Values{"mac": {"52:54:00:AA:BB:CC"}, "arch": {"x86_64"}, "platform": {"efi"},
		"uuid": {"4c4c4544-0042-3510-8052-b4c04f4a4d32"}, "manufacturer": {"Dell Inc.\x1b[2J"},
		"product": {"PowerEdge R650"}, "serial": {long}, "asset": {"rack 4\nslot 2"}}
	status, _, body := e.get("/boot/ipxe?"+q.Encode(), boot.HeaderVendorClass, "PXEClient:Arch:00007:UNDI:003016")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	golden(t, "unknown", body)
	d, err := e.st.GetDiscovered(ctx, "52:54:00:aa:bb:cc")
	if err != nil {
		t.Fatal(err)
	}
	if d.Count != 1 || d.Arch != "x86_64" || d.Platform != "efi" || d.ClientAddr != "10.0.7.9" ||
		d.VendorClass != "PXEClient:Arch:00007:UNDI:003016" || d.UUID != "4c4c4544-0042-3510-8052-b4c04f4a4d32" ||
		d.Manufacturer != "Dell Inc.[2J" || d.Product != "PowerEdge R650" || len(d.Serial) != model.MaxDiscoveredText ||
		d.Asset != "rack 4slot 2" {
		t.Fatalf("entry: %+v", d)
	}
	first := d.FirstSeen
	// Asking again counts, keeps the first sighting and what was told
	// before; a vendor class without the edge's secret is not believed.
	time.Sleep(5 * time.Millisecond)
	status, _, _ = e.do("GET", "/boot/ipxe?mac=52:54:00:aa:bb:cc", nil, boot.HeaderVendorClass, "forged")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	d, _ = e.st.GetDiscovered(ctx, "52:54:00:aa:bb:cc")
	if d.Count != 2 || !d.FirstSeen.Equal(first) || !d.LastSeen.After(first) || d.Product != "PowerEdge R650" ||
		d.VendorClass != "PXEClient:Arch:00007:UNDI:003016" || d.ClientAddr != "127.0.0.1" {
		t.Fatalf("entry after a second request: %+v", d)
	}
	// Unknown MACs open no session.
	if list, _ := e.st.BootSessions(ctx, "", 0); len(list) != 0 {
		t.Fatalf("sessions: %+v", list)
	}
}

// TestDiscoveryBurstIsCapped: thousands of unknown MACs keep only the most
// recently seen, counting the rest.
func TestDiscoveryBurstIsCapped(t *testing.T) {
	e := newEnv(t, boot.Config{DiscoveryCap: 100})
	for i := range 300 {
		status, _, _ := e.get("/boot/ipxe?mac=" + macN(i))
		if status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	page, err := e.st.ListDiscovered(context.Background(), store.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 100 || len(page.Items) != 100 || page.Evicted != 200 {
		t.Fatalf("total %d, %d items, %d evicted; want 100, 100, 200", page.Total, len(page.Items), page.Evicted)
	}
	if page.Items[0].MAC != model.MAC(macN(299)) || page.Items[99].MAC != model.MAC(macN(200)) {
		t.Fatalf("kept %s..%s, want the newest %s..%s", page.Items[0].MAC, page.Items[99].MAC, macN(299), macN(200))
	}
}

func macN(i int) string {
	return fmt.Sprintf("02:00:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i))
}

// TestBadRequests: input herd cannot use is explained on the console (200
// for iPXE, which runs only 2xx answers; 400 for anyone else), never a 500.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, boot.Config{})
	status, _, body := e.get("/boot/ipxe?mac=52:54:00:zz:00:01&arch=x86_64")
	if status != 200 {
		t.Fatalf("bad MAC from iPXE: %d", status)
	}
	golden(t, "bad_mac", body)
	for _, q := range []string{"mac=", "mac=nonsense", "mac=52:54:00:00:00:01&arch=X86%2064", "mac=52:54:00:00:00:01&platform=" + strings.Repeat("a", 17),
		"mac=52:54:00:00:00:01&mac=52:54:00:00:00:02"} {
		status, h, body := e.do("GET", "/boot/ipxe?"+q, nil)
		if status != 400 || !strings.HasPrefix(string(body), "#!ipxe\necho herd: ") || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %s\n%s", q, status, h.Get("Content-Type"), body)
		}
	}
	// A host that is no host is not put into a script.
	status, _, body = e.do("GET", "/boot/ipxe?mac=52:54:00:00:00:01", nil, "Host", "bad host${x}")
	if status != 400 || strings.Contains(string(body), "${x}") || !strings.Contains(string(body), "chain /boot/ipxe\n") {
		t.Errorf("bad host: %d\n%s", status, body)
	}
}

// TestScriptsPure renders the scripts that need no store, so the golden
// files show every kind of answer.
func TestScriptsPure(t *testing.T) {
	golden(t, "error", boot.ErrorScript("mac: \"x\" is not a MAC; $(rm) #1 | && ;", server+"/boot/ipxe", 30*time.Second))
	b := boot.Boot{Server: server, Node: "node001", MAC: "52:54:00:12:34:56", Image: "rocky9", Branch: "live",
		Session: "0123456789abcdef0123456789abcdef", Token: "hbt_TOKEN",
		Kernel: boot.ImageKey("rocky9", "live", "kernel"), Initrd: boot.ImageKey("rocky9", "live", boot.ModulesFile), Bootenv: boot.BootenvKey}
	golden(t, "render_pcbios", b.Render())
	b.Platform = "efi"
	b.Args = []string{"console=ttyS0,115200", "nomodeset"}
	golden(t, "render_efi", b.Render())
}

func TestKeySegment(t *testing.T) {
	for in, want := range map[string]string{
		"rocky9":      "rocky9",
		"rocky-9.4_a": "rocky-9.4_a",
		"a/b":         "a%2Fb",
		"a%2Fb":       "a%252Fb",
		".":           "%2E",
		"..":          "%2E%2E",
		"...":         "...",
		"ü":           "%C3%BC",
		"a b&c":       "a%20b%26c",
	} {
		if got := boot.KeySegment(in); got != want {
			t.Errorf("KeySegment(%q) = %q, want %q", in, got, want)
		}
	}
	// Distinct names never share a key.
	seen := map[string]string{}
	for _, n := range []string{"a/b", "a%2Fb", "a%2fb", ".", "%2E", "..", "a b"} {
		k := boot.KeySegment(n)
		if other, ok := seen[k]; ok {
			t.Errorf("%q and %q both map to %q", n, other, k)
		}
		seen[k] = n
	}
	if !slices.Equal([]string{boot.ImageKey("a/b", "..", "kernel")}, []string{"images/a%2Fb/%2E%2E/kernel"}) {
		t.Errorf("ImageKey: %s", boot.ImageKey("a/b", "..", "kernel"))
	}
}
