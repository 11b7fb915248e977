package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// completeArtifacts has the kernel and initrd of every image and bootenv,
// so a node with an image gets its boot script without an object store.
type completeArtifacts struct{}

func (completeArtifacts) Image(_ context.Context, image, branch, _ string) (string, string, error) {
	return boot.ImageKey(image, branch, "kernel"), boot.ImageKey(image, branch, boot.ModulesFile), nil
}
func (completeArtifacts) Bootenv(context.Context) (string, error) { return boot.BootenvKey, nil }
func (completeArtifacts) Open(_ context.Context, key string) (*boot.Artifact, error) {
	return nil, &boot.MissingError{What: "file", Key: key}
}

// ipxe asks for a boot script as iPXE does and returns it.
func (h *herd) ipxe(query string) string {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+"/boot/ipxe?"+query, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("User-Agent", "iPXE/1.21.1+")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /boot/ipxe?%s: %d\n%s", query, res.StatusCode, b)
	}
	return string(b)
}

// bootNode boots a known MAC and returns the session id and boot token the
// script carries.
func (h *herd) bootNode(mac string) (id, token string) {
	h.t.Helper()
	script := h.ipxe("mac=" + mac + "&arch=x86_64&platform=efi")
	m1 := regexp.MustCompile(`herd\.session=([0-9a-f]{32})`).FindStringSubmatch(script)
	m2 := regexp.MustCompile(`herd\.token=(\S+)`).FindStringSubmatch(script)
	if m1 == nil || m2 == nil {
		h.t.Fatalf("no session or token in the script:\n%s", script)
	}
	return m1[1], m2[1]
}

// event posts a step event as bootenv does.
func (h *herd) event(id, token, step string, state model.BootEventState, msg string, ms int64) {
	h.t.Helper()
	ev := model.BootEvent{Step: step, State: state, Message: msg, DurationMS: ms}
	if _, err := client.NewBoot(h.url, token, nil).PostEvent(context.Background(), id, ev); err != nil {
		h.t.Fatalf("post %s %s: %v", step, state, err)
	}
}

// running is a command started in the background, for commands that
// follow something until interrupted.
type running struct {
	t              *testing.T
	stdout, stderr *lockedBuffer
	done           chan int
	cancel         context.CancelFunc
}

func (h *herd) start(args ...string) *running {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	r := &running{t: h.t, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan int, 1), cancel: cancel}
	go func() {
		r.done <- Main(ctx, args, strings.NewReader(""), r.stdout, r.stderr, func(k string) string { return h.env[k] })
	}()
	h.t.Cleanup(cancel)
	return r
}

// waitFor waits until stdout holds what.
func (r *running) waitFor(what string) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(r.stdout.String(), what) {
		select {
		case code := <-r.done:
			r.done <- code
			if strings.Contains(r.stdout.String(), what) {
				return
			}
			r.t.Fatalf("ended with %d before printing %q\nstdout:\n%s\nstderr:\n%s", code, what, r.stdout.String(), r.stderr.String())
		case <-deadline:
			r.t.Fatalf("no %q within 10s\nstdout:\n%s\nstderr:\n%s", what, r.stdout.String(), r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exit waits for the command to end and returns its exit code.
func (r *running) exit() int {
	r.t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(10 * time.Second):
		r.t.Fatalf("did not end\nstdout:\n%s\nstderr:\n%s", r.stdout.String(), r.stderr.String())
		return -1
	}
}

func TestNodeUnassignedAssignForget(t *testing.T) {
	h := loggedIn(t)
	if r := h.ok(h.run("node", "unassigned")); r.stdout != "" || r.stderr != "No machines are waiting to be assigned.\n" {
		t.Errorf("empty list: %q %q", r.stdout, r.stderr)
	}
	// Three machines boot with MACs no node has; one asks twice.
	h.ipxe("mac=52:54:00:00:01:01&arch=x86_64&platform=efi&manufacturer=Dell%20Inc.&product=PowerEdge%20R650&serial=ABC123")
	h.ipxe("mac=52:54:00:00:01:02&arch=x86_64&platform=pcbios")
	h.ipxe("mac=52:54:00:00:01:02&arch=x86_64&platform=pcbios&serial=XYZ")
	h.ipxe("mac=52:54:00:00:01:03&arch=arm64&platform=efi")

	r := h.ok(h.run("node", "unassigned"))
	checkAligned(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"MAC", "FIRST-SEEN", "LAST-SEEN", "COUNT", "ARCH", "PLATFORM", "CLIENT", "MANUFACTURER", "PRODUCT", "SERIAL"}) {
		t.Errorf("header %q", got)
	}
	if len(lines) != 4 {
		t.Fatalf("want 3 machines:\n%s", r.stdout)
	}
	// Most recently seen first; dates are two fields each.
	if got := strings.Fields(lines[3]); got[0] != "52:54:00:00:01:01" || !slices.Equal(got[5:], []string{"1", "x86_64", "efi", "127.0.0.1", "Dell", "Inc.", "PowerEdge", "R650", "ABC123"}) {
		t.Errorf("first machine's row %q", got)
	}
	if got := strings.Fields(lines[2]); got[0] != "52:54:00:00:01:02" || got[5] != "2" || got[len(got)-1] != "XYZ" {
		t.Errorf("second machine's row %q", got)
	}
	page := decode[model.DiscoveredPage](t, h.ok(h.run("node", "unassigned", "--json")).stdout)
	if page.Total != 3 || len(page.Items) != 3 || page.Items[2].Product != "PowerEdge R650" || page.Items[1].Count != 2 {
		t.Errorf("unassigned --json: %+v", page)
	}

	// Assign to an existing node, the MAC written another way: it lands on
	// the boot interface, which has an address but no MAC yet.
	h.ok(h.run("group", "add", "compute"))
	h.ok(h.run("node", "add", "node001", "--ip", "10.0.0.1/24"))
	r = h.ok(h.run("node", "assign", "52-54-00-00-01-01", "node001"))
	if r.stdout != "assigned 52:54:00:00:01:01 to node001 as eth0; it boots as node001 the next time it asks\n" {
		t.Errorf("assign said %q", r.stdout)
	}
	if n := h.node("node001"); len(n.Interfaces) != 1 || n.Interfaces[0].MAC != "52:54:00:00:01:01" || n.Interfaces[0].Address != "10.0.0.1/24" {
		t.Errorf("node001 after assign: %+v", n.Interfaces)
	}
	// Its next request is node001's: no image yet, so it waits as node001.
	if script := h.ipxe("mac=52:54:00:00:01:01&arch=x86_64&platform=efi"); !strings.Contains(script, "node001") {
		t.Errorf("the assigned machine's next script:\n%s", script)
	}
	if r := h.ok(h.run("boot", "sessions", "node001")); !strings.Contains(r.stdout, "waiting") || !strings.Contains(r.stdout, "node node001 has no image") {
		t.Errorf("the assigned machine's session:\n%s", r.stdout)
	}

	// Create the node from the machine; twelve bare hex digits are a MAC.
	r = h.ok(h.run("node", "assign", "525400000102", "node002", "--create", "--group", "compute"))
	if r.stdout != "created node node002 in group compute with 52:54:00:00:01:02 on eth0; it boots as node002 the next time it asks\n" {
		t.Errorf("assign --create said %q", r.stdout)
	}
	if n := h.node("node002"); n.Group != "compute" || n.Interfaces[0] != (model.Interface{Name: "eth0", MAC: "52:54:00:00:01:02", Boot: true}) {
		t.Errorf("node002: %+v", n)
	}

	// Refusals: local ones with status 2, the API's with 1 and its words.
	h.failed(h.run("node", "assign", "52:54:00:00:01:03", "node003", "--group", "compute"), 2, "--group needs --create")
	h.failed(h.run("node", "assign", "52:54:zz:00:01:03", "node003"), 2, `herd: node assign: "52:54:zz:00:01:03" is not a MAC address`)
	h.failed(h.run("node", "assign", "52:54:00:00:01:03", "bad name"), 2, "herd: node assign: ")
	h.failed(h.run("node", "assign", "52:54:00:00:01:03", "node999"), 1,
		`herd: assign 52:54:00:00:01:03 to node999: node "node999" does not exist: create it, or assign with create`)
	h.failed(h.run("node", "assign", "52:54:00:00:01:03", "node001", "--create"), 1, `node "node001" already exists`)
	h.failed(h.run("node", "assign", "52:54:00:00:09:09", "node001"), 1, "no machine with MAC 52:54:00:00:09:09 is waiting to be assigned")
	h.failed(h.run("node", "assign", "52:54:00:00:01:03"), 2, "missing arguments: want MAC NODE")

	// Forget the third; it is gone until it boots again.
	if r := h.ok(h.run("node", "forget", "52:54:00:00:01:03")); !strings.HasPrefix(r.stdout, "forgot 52:54:00:00:01:03;") {
		t.Errorf("forget said %q", r.stdout)
	}
	h.failed(h.run("node", "forget", "52:54:00:00:01:03"), 1, "herd: forget 52:54:00:00:01:03: no machine with MAC 52:54:00:00:01:03 is waiting to be assigned")
	if page := decode[model.DiscoveredPage](t, h.ok(h.run("node", "unassigned", "--json")).stdout); page.Total != 0 || len(page.Items) != 0 {
		t.Errorf("after assigning and forgetting: %+v", page)
	}

	// All of it is audited, by the admin who ran it.
	r = h.ok(h.run("audit", "--method", "assign"))
	for _, want := range []string{"assigned discovered MAC 52:54:00:00:01:01 to node node001 as eth0", "[product: PowerEdge R650]",
		"created node node002 from discovered MAC 52:54:00:00:01:02", "admin"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := h.ok(h.run("audit", "--kind", "discovery")); !strings.Contains(r.stdout, "forgot discovered MAC 52:54:00:00:01:03") {
		t.Errorf("audit lacks the forget:\n%s", r.stdout)
	}
}

func TestBootSessionsAndShow(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "compute", "--image", "rocky9"))
	h.ok(h.run("node", "add", "node001", "--group", "compute", "--mac", "52:54:00:00:00:01"))
	if r := h.ok(h.run("boot", "sessions", "node001")); r.stdout != "" || r.stderr != "No recent boot sessions of node001.\n" {
		t.Errorf("no sessions: %q %q", r.stdout, r.stderr)
	}
	h.failed(h.run("boot", "sessions", "node999"), 1, "herd: boot sessions: node node999 does not exist")
	h.failed(h.run("boot", "sessions", "node001", "--limit", "0"), 2, "--limit must be from 1 to 1000")

	// A boot that fails at the image, then a reboot.
	id1, token1 := h.bootNode("52:54:00:00:00:01")
	h.event(id1, token1, "plan", model.EventStart, "", 0)
	h.event(id1, token1, "plan", model.EventOK, "nothing to change", 1200)
	h.event(id1, token1, "image", model.EventFail, "checksum mismatch", 0)
	id2, _ := h.bootNode("52:54:00:00:00:01")

	r := h.ok(h.run("boot", "sessions", "node001"))
	checkAligned(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"SESSION", "STARTED", "STATE", "STEP", "ARCH", "CLIENT", "DURATION", "REASON"}) {
		t.Errorf("header %q", got)
	}
	if len(lines) != 3 {
		t.Fatalf("want 2 sessions:\n%s", r.stdout)
	}
	// Newest first; STARTED is a date and a time.
	if got := strings.Fields(lines[1]); got[0] != id2 || !slices.Equal(got[3:7], []string{"script-sent", "-", "x86_64/efi", "127.0.0.1"}) || got[len(got)-1] != "-" {
		t.Errorf("newest row %q", got)
	}
	if got := strings.Fields(lines[2]); got[0] != id1 || got[3] != "failed" || got[4] != "image" || !strings.HasSuffix(lines[2], "image: checksum mismatch") {
		t.Errorf("failed row %q", got)
	}
	sessions := decode[model.Page[model.BootSession]](t, h.ok(h.run("boot", "sessions", "node001", "--json")).stdout)
	if sessions.Total != 2 || sessions.Items[0].ID != id2 || sessions.Items[1].State != model.BootFailed || sessions.Items[1].Reason != "image: checksum mismatch" {
		t.Errorf("sessions --json: %+v", sessions)
	}
	r = h.ok(h.run("boot", "sessions", "node001", "--limit", "1", "--json"))
	if p := decode[model.Page[model.BootSession]](t, r.stdout); p.Total != 1 || p.Items[0].ID != id2 {
		t.Errorf("--limit 1: %+v", p)
	}
	if r := h.ok(h.run("boot", "sessions", "node001", "--limit", "1")); !strings.Contains(r.stderr, "the newest 1 sessions; use --limit for more") {
		t.Errorf("--limit 1 does not say more are kept: %q", r.stderr)
	}

	// show: the header and the timeline, oldest first.
	r = h.ok(h.run("boot", "show", id1))
	for _, want := range []string{"Session:", id1, "Node:", "node001", "State:", "failed", "Reason:", "image: checksum mismatch",
		"Image:", "rocky9@live", "Arch:", "x86_64/efi", "boot script sent: image rocky9 branch live [arch: x86_64] [client addr: 127.0.0.1] [platform: efi]",
		"nothing to change", "1.2s", "checksum mismatch"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("boot show lacks %q:\n%s", want, r.stdout)
		}
	}
	timeline := r.stdout[strings.Index(r.stdout, "TIME"):]
	checkAligned(t, timeline)
	var steps []string
	for _, l := range strings.Split(strings.TrimSpace(timeline), "\n")[1:] {
		f := strings.Fields(l)
		steps = append(steps, f[1]+":"+f[2])
	}
	if strings.Join(steps, " ") != "ipxe:ok plan:start plan:ok image:fail" {
		t.Errorf("timeline steps %v:\n%s", steps, timeline)
	}
	d := decode[model.BootSessionDetail](t, h.ok(h.run("boot", "show", id1, "--json")).stdout)
	if d.Session.ID != id1 || len(d.Events) != 4 || d.Events[2].DurationMS != 1200 || d.Events[3].Message != "checksum mismatch" {
		t.Errorf("show --json: %+v", d)
	}
	// The first few digits do, upper case too.
	if r := h.ok(h.run("boot", "show", strings.ToUpper(id2[:8]))); !strings.Contains(r.stdout, id2) {
		t.Errorf("show by prefix:\n%s", r.stdout)
	}
	h.failed(h.run("boot", "show", "xyz"), 2, `"xyz" is not a boot session id`)
	h.failed(h.run("boot", "show", strings.Repeat("0", 32)), 1, "herd: boot show: boot session "+strings.Repeat("0", 32)+" does not exist")
	h.failed(h.run("boot", "show", "0000"), 1, "no recent boot session starts with 0000")

	// Watching a session that failed already prints it and says so.
	r = h.failed(h.run("boot", "watch", id1), 1, "herd: boot session "+id1+" of node001 failed after ")
	if !strings.Contains(r.stdout, "checksum mismatch") || !strings.Contains(r.stderr, ": image: checksum mismatch\n") {
		t.Errorf("watch of a failed session:\n%s\n%s", r.stdout, r.stderr)
	}
	h.failed(h.run("boot", "watch", "node999"), 1, "herd: boot watch: node node999 does not exist")
	h.failed(h.run("boot", "watch", "bad name"), 2, "is neither a node name nor a boot session id")
}

// TestBootWatch follows a session until it is done, and a node across a
// reboot, each receiving events posted after the watch began.
func TestBootWatch(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "compute", "--image", "rocky9"))
	h.ok(h.run("node", "add", "node001", "--group", "compute", "--mac", "52:54:00:00:00:01"))

	// A session, as JSON lines, until done.
	id, token := h.bootNode("52:54:00:00:00:01")
	w := h.start("boot", "watch", id, "--json")
	w.waitFor(`"step":"ipxe"`)
	h.event(id, token, "image", model.EventOK, "synced 3 files", 4200)
	w.waitFor(`"step":"image"`)
	h.event(id, token, model.StepDone, model.EventOK, "", 0)
	if code := w.exit(); code != 0 {
		t.Fatalf("watch of a session that ended well: exit %d\n%s", code, w.stderr.String())
	}
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(w.stdout.String()), "\n") {
		var l bootWatchLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("watch --json line %q: %v", line, err)
		}
		if l.Session.ID != id || l.Session.Node != "node001" {
			t.Errorf("line of another session: %+v", l.Session)
		}
		steps = append(steps, l.Event.Step+":"+string(l.Event.State))
	}
	if strings.Join(steps, " ") != "ipxe:ok image:ok done:ok" {
		t.Errorf("watched %v", steps)
	}

	// A node: its newest session from the start, then a reboot, then a
	// step of the new session, until interrupted.
	w = h.start("boot", "watch", "node001")
	w.waitFor("synced 3 files")
	id2, token2 := h.bootNode("52:54:00:00:00:01")
	w.waitFor(id2[:8] + "  ipxe")
	h.event(id2, token2, "disks", model.EventStart, "partitioning /dev/sda", 0)
	w.waitFor("partitioning /dev/sda")
	w.cancel()
	if code := w.exit(); code != 0 {
		t.Errorf("watch of a node after Ctrl-C: exit %d\n%s", code, w.stderr.String())
	}
	out := w.stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"TIME", "SESSION", "STEP", "STATE", "DURATION", "MESSAGE"}) {
		t.Errorf("header %q", got)
	}
	if strings.Count(out, "synced 3 files") != 1 || !strings.Contains(out, id[:8]+"  image       ok     4.2s") {
		t.Errorf("followed output:\n%s", out)
	}
}
