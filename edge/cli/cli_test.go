package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/client"
	imgstore "github.com/herd-hpc/herd/functions/image/store"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/functions/store/storetest"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// herd is a real API and boot function on real Redis, served by httptest,
// and a credentials file for the CLI runs against it.
type herd struct {
	t        *testing.T
	url      string
	store    *store.Store
	password string // of the first admin, "admin"
	env      map[string]string
}

func newHerd(t *testing.T) *herd {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	log := slog.New(slog.DiscardHandler)
	au := &auth.Service{Store: st, SessionTTL: time.Hour, Log: log}
	user, pw, created, err := au.EnsureFirstAdmin(ctx, "test")
	if err != nil || !created || user != "admin" {
		t.Fatalf("first admin: %q created=%v: %v", user, created, err)
	}
	// The API beside the boot function, as herd-functions serves them:
	// machines boot through the one and admins look through the other.
	mux := http.NewServeMux()
	a := api.New(st, au, log)
	obj := testenv.Objects(t)
	rdb, prefix := st.Redis()
	a.Images, a.Objects = imgstore.New(obj, rdb, prefix), obj
	mux.Handle(api.Prefix+"/", a)
	mux.Handle(boot.Prefix, boot.New(st, au, completeArtifacts{}, boot.Config{}, log))
	srv := httptest.NewServer(mux)
	// Cleanups run last first: closing the store ends a long poll still
	// blocked in Redis, so the server can close without waiting it out.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { st.Close() })
	return &herd{
		t: t, url: srv.URL, store: st, password: pw,
		env: map[string]string{"HERD_CONFIG": filepath.Join(t.TempDir(), "herd", "credentials")},
	}
}

// loggedIn returns a herd the CLI has logged in to as admin.
func loggedIn(t *testing.T) *herd {
	h := newHerd(t)
	h.ok(h.runIn(h.password+"\n", "login", "--server", h.url, "--user", "admin", "--password-stdin"))
	return h
}

type result struct {
	code           int
	stdout, stderr string
	args           []string
}

func (h *herd) run(args ...string) result { return h.runIn("", args...) }

func (h *herd) runIn(stdin string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return h.env[k] })
	return result{code: code, stdout: out.String(), stderr: errb.String(), args: args}
}

// ok fails the test unless r succeeded.
func (h *herd) ok(r result) result {
	h.t.Helper()
	if r.code != 0 {
		h.t.Fatalf("herd %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// failed checks r's exit code and that stderr holds every want.
func (h *herd) failed(r result, code int, want ...string) result {
	h.t.Helper()
	if r.code != code {
		h.t.Errorf("herd %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			h.t.Errorf("herd %s: stderr lacks %q:\n%s", strings.Join(r.args, " "), w, r.stderr)
		}
	}
	return r
}

// api returns a client logged in as admin, for checking what the CLI did.
func (h *herd) api() *client.Client {
	h.t.Helper()
	reply, err := client.New(h.url, "", nil).Login(context.Background(), "admin", h.password)
	if err != nil {
		h.t.Fatal(err)
	}
	return client.New(h.url, reply.Token, nil)
}

func (h *herd) node(name string) model.Node {
	h.t.Helper()
	n, err := h.store.GetNode(context.Background(), name)
	if err != nil {
		h.t.Fatalf("read node %s: %v", name, err)
	}
	return n
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
	return v
}

// checkAligned checks that every row of a table starts each column where
// the header does.
func checkAligned(t *testing.T, table string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("table has no rows:\n%s", table)
	}
	var starts []int
	for _, m := range regexp.MustCompile(`\S+`).FindAllStringIndex(lines[0], -1) {
		starts = append(starts, m[0])
	}
	for _, line := range lines[1:] {
		for _, c := range starts[1:] {
			if len(line) <= c || line[c-1] != ' ' || line[c] == ' ' {
				t.Errorf("row does not start a column at %d:\n%s\n%s", c, lines[0], line)
			}
		}
	}
}

func TestLoginWhoamiLogout(t *testing.T) {
	h := newHerd(t)
	h.failed(h.run("login", "--server", h.url, "--user", "admin"), 2, "--password-stdin")
	h.failed(h.runIn("wrong-password\n", "login", "--server", h.url, "--user", "admin", "--password-stdin"), 1,
		"herd: log in to "+h.url+" as admin: wrong user name or password")

	r := h.ok(h.runIn(h.password+"\n", "login", "--server", h.url, "--user", "admin", "--password-stdin"))
	if !strings.Contains(r.stdout, "Logged in to "+h.url+" as admin") {
		t.Errorf("login said %q", r.stdout)
	}
	fi, err := os.Stat(h.env["HERD_CONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(h.env["HERD_CONFIG"]))
	if len(entries) != 1 {
		t.Errorf("credentials directory holds %d files, want 1 (no temporary left)", len(entries))
	}

	// The stored server is used without --server.
	r = h.ok(h.run("whoami"))
	for _, want := range []string{"User:", "admin", "Role:", "Server:", h.url} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("whoami lacks %q:\n%s", want, r.stdout)
		}
	}
	if u := decode[model.User](t, h.ok(h.run("whoami", "--json")).stdout); u.Name != "admin" || u.Role != model.RoleAdmin {
		t.Errorf("whoami --json: %+v", u)
	}

	// The session token is not sent to another server.
	h.env["HERD_SERVER"] = "http://127.0.0.1:1"
	h.failed(h.run("whoami"), 1, "cannot reach herd at http://127.0.0.1:1")
	delete(h.env, "HERD_SERVER")

	h.ok(h.run("logout"))
	h.failed(h.run("whoami"), 1, "herd: ask "+h.url+" who you are: ", "herd login")
	if r := h.ok(h.run("logout")); !strings.Contains(r.stdout, "Not logged in") {
		t.Errorf("second logout said %q", r.stdout)
	}
}

func TestNodeAddListShow(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "compute", "--image", "rocky9", "--branch", "stable", "--stateless"))
	r := h.ok(h.run("node", "add", "node[01-04]", "--group", "compute", "--ip", "10.0.0.10/24", "--bmc", "10.1.0.1", "--tag", "gpu,ib", "--psu", "psu1,psu2"))
	if !strings.Contains(r.stdout, "Added 4 nodes: node[01-04].") {
		t.Errorf("node add said:\n%s", r.stdout)
	}
	for i, name := range []string{"node01", "node02", "node03", "node04"} {
		n := h.node(name)
		want := []model.Interface{{Name: "eth0", Address: "10.0.0." + []string{"10", "11", "12", "13"}[i] + "/24", Boot: true}}
		if !slices.Equal(n.Interfaces, want) || n.Group != "compute" || !slices.Equal(n.Tags, []string{"gpu", "ib"}) || len(n.PowerSupplies) != 2 {
			t.Errorf("%s: %+v", name, n)
		}
	}
	h.ok(h.run("node", "add", "login1", "--mac", "52-54-00-AA-BB-01", "--image", "alma9"))
	if n := h.node("login1"); n.Interfaces[0].MAC != "52:54:00:aa:bb:01" {
		t.Errorf("login1 MAC %q, want canonical", n.Interfaces[0].MAC)
	}

	// The table: effective image and branch, aligned columns.
	r = h.ok(h.run("node", "list"))
	checkAligned(t, r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"NAME", "GROUP", "STATE", "IMAGE", "BRANCH", "MAC", "ADDRESS", "TAGS"}) {
		t.Errorf("header %q", got)
	}
	if len(lines) != 6 {
		t.Fatalf("want 5 nodes:\n%s", r.stdout)
	}
	if got := strings.Fields(lines[1]); !slices.Equal(got, []string{"login1", "-", "new", "alma9", "-", "52:54:00:aa:bb:01", "-", "-"}) {
		t.Errorf("login1 row %q", got)
	}
	if got := strings.Fields(lines[2]); !slices.Equal(got, []string{"node01", "compute", "new", "rocky9", "stable", "-", "10.0.0.10/24", "gpu,ib"}) {
		t.Errorf("node01 row %q", got)
	}

	// A range and filters go to the server.
	r = h.ok(h.run("node", "list", "node[02-03],login1", "--json"))
	page := decode[model.Page[model.Node]](t, r.stdout)
	if page.Total != 3 || len(page.Items) != 3 || page.Items[1].Name != "node02" || page.Items[1].Effective.Image != "rocky9" {
		t.Errorf("node list --json: %+v", page)
	}
	page = decode[model.Page[model.Node]](t, h.ok(h.run("node", "list", "@compute", "--tag", "gpu", "--json")).stdout)
	if page.Total != 4 {
		t.Errorf("@compute tagged gpu: %d nodes", page.Total)
	}
	if r := h.ok(h.run("node", "list", "--state", "up")); r.stdout != "" || !strings.Contains(r.stderr, "No nodes match") {
		t.Errorf("empty list: %q %q", r.stdout, r.stderr)
	}

	// show: an object for a name, an array for a range, details as text.
	if n := decode[model.Node](t, h.ok(h.run("node", "show", "node01", "--json")).stdout); n.Name != "node01" {
		t.Errorf("show --json: %+v", n)
	}
	if ns := decode[[]model.Node](t, h.ok(h.run("node", "show", "node[01-02]", "--json")).stdout); len(ns) != 2 {
		t.Errorf("show range --json: %d nodes", len(ns))
	}
	r = h.ok(h.run("node", "show", "node01"))
	for _, want := range []string{"Name:", "node01", "rocky9  (from group compute)", "Stateless:", "yes  (from group compute)", "eth0", "10.0.0.10/24", "boot", "psu1, psu2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("node show lacks %q:\n%s", want, r.stdout)
		}
	}
	h.failed(h.run("node", "show", "node99"), 1, "herd: node show: node node99 does not exist")
	r = h.failed(h.run("node", "show", "node[04-05]"), 1, "node node05 does not exist")
	if !strings.Contains(r.stdout, "node04") {
		t.Errorf("show of a partly missing range still shows the rest:\n%s", r.stdout)
	}
}

func TestNodeAddRefusals(t *testing.T) {
	h := loggedIn(t)
	h.failed(h.run("node", "add", "n[1-10]", "--ip", "10.0.0.250"), 2, "past the last octet")
	h.failed(h.run("node", "add", "n[1-10]", "--ip", "10.0.0.10/29"), 2, "leave 10.0.0.8/29")
	h.failed(h.run("node", "add", "n[1-2]", "--mac", "52:54:00:00:00:01"), 2, "--mac is one node's address")
	h.failed(h.run("node", "add", "@compute"), 2, "node add makes new nodes")
	if page := decode[model.Page[model.Node]](t, h.ok(h.run("node", "list", "--json")).stdout); page.Total != 0 {
		t.Errorf("refused adds created %d nodes", page.Total)
	}

	// A bad MAC names the flag; a bad noderange points at the mistake.
	h.failed(h.run("node", "add", "n1", "--mac", "52:54:zz:00:00:01"), 2,
		`herd: node add: --mac: "52:54:zz:00:00:01" is not a MAC address`)
	r := h.failed(h.run("node", "list", "node[1-"), 2, `herd: node list: noderange "node[1-": at 7: expected a number after "-"`)
	if !strings.Contains(r.stderr, "  node[1-\n         ^\n") {
		t.Errorf("no caret under the position:\n%s", r.stderr)
	}
	h.failed(h.run("node", "add", "n[3-1]"), 2, "at 2: descending range")

	// What only the server can check comes back with its fields.
	h.ok(h.run("node", "add", "n1", "--mac", "52:54:00:00:00:01"))
	r = h.failed(h.run("node", "add", "n2", "--mac", "52:54:00:00:00:01"), 1)
	if want := "herd: add node n2: conflict\n  interfaces[0].mac: MAC 52:54:00:00:00:01 already belongs to node n1\n"; r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	h.failed(h.run("node", "add", "n3", "--group", "nosuch"), 1, "herd: add node n3: invalid input\n  group: group \"nosuch\" does not exist\n")
	h.failed(h.run("node", "add", "n4", "--tag", "x", "--tag", "x"), 1, "herd: add node n4: invalid input\n  tags[1]: \"x\" is listed twice\n")
}

func TestNodeSet(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "compute"))
	h.ok(h.run("node", "add", "node[1-3]", "--group", "compute", "--tag", "old", "--ip", "10.0.0.1"))

	// One missing node is reported, the others are still changed.
	r := h.failed(h.run("node", "set", "node[1-4]", "--image", "alma9", "--tag", "new", "--untag", "old"), 1,
		"herd: node set: node node4 does not exist\n",
		"herd: node set: updated 3 of 4 nodes; not found: node4\n")
	if want := "updated node1: image, tags\nupdated node2: image, tags\nupdated node3: image, tags\n"; r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	for _, name := range []string{"node1", "node2", "node3"} {
		if n := h.node(name); n.Image != "alma9" || !slices.Equal(n.Tags, []string{"new"}) {
			t.Errorf("%s: image %q tags %q", name, n.Image, n.Tags)
		}
	}
	h.failed(h.run("node", "set", "node9", "--image", "x"), 1, "herd: node set: node node9 does not exist\n")

	// Groups resolve through the API; --ip counts along the range; --unset
	// hands a setting back to the group.
	r = h.ok(h.run("node", "set", "@compute", "--ip", "10.0.1.20/24", "--unset", "image", "--stateless=false"))
	if !strings.Contains(r.stdout, "Updated 3 nodes: node[1-3].") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	for i, name := range []string{"node1", "node2", "node3"} {
		n := h.node(name)
		if n.Image != "" || n.Stateless == nil || *n.Stateless || len(n.Interfaces) != 1 || n.Interfaces[0].Address != "10.0.1.2"+string(rune('0'+i))+"/24" {
			t.Errorf("%s after set: %+v", name, n)
		}
	}
	h.ok(h.run("node", "set", "node1", "--mac", "52:54:00:00:00:11", "--bmc-user", "root"))
	if n := h.node("node1"); n.Interfaces[0].MAC != "52:54:00:00:00:11" || n.Interfaces[0].Address != "10.0.1.20/24" || n.BMC.Username != "root" {
		t.Errorf("node1 after --mac: %+v", n)
	}
	h.ok(h.run("node", "set", "node1", "--check-every-boot=false", "--sync-verify", "always", "--kernel", "6.1.0-9-amd64",
		"--kernel-args", "console=ttyS0,115200 nomodeset"))
	if n := h.node("node1"); n.CheckEveryBoot == nil || *n.CheckEveryBoot || n.SyncVerify != "always" || n.Kernel != "6.1.0-9-amd64" ||
		n.KernelArgs != "console=ttyS0,115200 nomodeset" {
		t.Errorf("node1 after sync flags: %+v", n.Settings)
	}
	h.failed(h.run("node", "set", "node1", "--sync-verify", "sometimes"), 1, "not unsure, never or always")
	h.failed(h.run("node", "set", "node1", "--kernel-args", "herd.token=x"), 1, "set by herd itself")
	if out := h.ok(h.run("node", "show", "node1")).stdout; !strings.Contains(out, "Kernel arguments") || !strings.Contains(out, "console=ttyS0,115200 nomodeset") {
		t.Errorf("node show lacks the kernel arguments:\n%s", out)
	}
	h.ok(h.run("node", "set", "node1", "--unset", "check-every-boot", "--unset", "sync-verify", "--unset", "kernel", "--unset", "kernel-args"))
	if n := h.node("node1"); n.CheckEveryBoot != nil || n.SyncVerify != "" || n.Kernel != "" || n.KernelArgs != "" {
		t.Errorf("node1 after --unset: %+v", n.Settings)
	}
	h.ok(h.run("group", "add", "gpu", "--plugin", "limits.enabled=true", "--plugin", "limits.nofile=1024"))
	h.ok(h.run("node", "set", "node1", "--group", "gpu", "--plugin", "limits.nofile=65536", "--plugin", "fstab.mounts=nfs:/home /home nfs defaults"))
	n := h.node("node1")
	if n.Plugins["limits"]["nofile"] != "65536" || n.Effective == nil || n.Effective.Plugins["limits"]["enabled"] != "true" ||
		n.Effective.Plugins["limits"]["nofile"] != "65536" || n.Effective.Plugins["fstab"]["mounts"] != "nfs:/home /home nfs defaults" {
		t.Errorf("node1's plugins: own %v, effective %+v", n.Plugins, n.Effective)
	}
	h.ok(h.run("node", "set", "node1", "--plugin", "limits.nofile="))
	if n := h.node("node1"); n.Effective.Plugins["limits"]["nofile"] != "1024" {
		t.Errorf("after removing the node's nofile: %v", n.Effective.Plugins)
	}
	h.failed(h.run("node", "set", "node1", "--plugin", "nosuch.key=v"), 1, "is not a plugin")
	h.failed(h.run("node", "set", "node1", "--plugin", "limits"), 2, "NAME.KEY=VALUE")
	h.ok(h.run("node", "set", "node1", "--unset", "plugin", "--unset", "group"))
	h.ok(h.run("node", "set", "node1", "--bmc-secret", "rack1-bmc"))
	if n := h.node("node1"); n.BMC.CredentialRef != "rack1-bmc" || n.BMC.Username != "root" {
		t.Errorf("node1 after --bmc-secret: %+v", n.BMC)
	}
	h.ok(h.run("node", "set", "node1", "--unset", "bmc-secret"))
	if n := h.node("node1"); n.BMC.CredentialRef != "" || n.BMC.Username != "root" {
		t.Errorf("node1 after --unset bmc-secret: %+v", n.BMC)
	}
	h.failed(h.run("node", "set", "node[1-2]", "--mac", "52:54:00:00:00:12"), 2, "--mac is one node's address")
	h.failed(h.run("node", "set", "node1"), 2, "nothing to change")
	h.failed(h.run("node", "set", "node1", "--unset", "colour"), 2, "--unset colour: unknown field")
	h.failed(h.run("node", "set", "node1", "--image", "x", "--unset", "image"), 2, "contradict")
	h.failed(h.run("node", "set", "@nosuch", "--image", "x"), 1, `group "nosuch" does not exist`)
	h.failed(h.run("node", "set", "node2", "--mac", "52:54:00:00:00:11"), 1, "herd: change node node2: conflict\n  interfaces[0].mac: MAC 52:54:00:00:00:11 already belongs to node node1\n")
}

func TestNodeDelete(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("node", "add", "node[1-3]"))
	h.failed(h.run("node", "delete", "node[1-2]"), 2, "refusing to delete without --yes: stdin is not a terminal")
	h.node("node1")
	r := h.failed(h.run("node", "delete", "node[2-4]", "--yes"), 1, "node node4 does not exist", "deleted 2 of 3 nodes")
	if r.stdout != "deleted node2\ndeleted node3\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	h.ok(h.run("node", "rm", "node1", "--yes"))
	if page := decode[model.Page[model.Node]](t, h.ok(h.run("node", "list", "--json")).stdout); page.Total != 0 {
		t.Errorf("%d nodes left", page.Total)
	}
}

func TestGroupsDevicesConnections(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("group", "add", "gpu", "--description", "GPU nodes", "--image", "rocky9", "--power", "redfish"))
	h.failed(h.run("group", "add", "bad", "--power", "telnet"), 2, `--power "telnet" is not a power method`)
	h.ok(h.run("group", "set", "gpu", "--tag", "a,b", "--layout", "raid1"))
	h.ok(h.run("group", "set", "gpu", "--untag", "a", "--unset", "description"))
	g := decode[model.Group](t, h.ok(h.run("group", "show", "gpu", "--json")).stdout)
	if g.Description != "" || g.DiskLayout != "raid1" || !slices.Equal(g.Tags, []string{"b"}) || g.PowerMethod != model.PowerRedfish {
		t.Errorf("group: %+v", g)
	}
	h.ok(h.run("node", "add", "g[1-2]", "--group", "gpu", "--psu", "psu1"))
	r := h.ok(h.run("group", "show", "gpu"))
	if !strings.Contains(r.stdout, "g[1-2]  (2)") {
		t.Errorf("group show lacks members:\n%s", r.stdout)
	}
	checkAligned(t, h.ok(h.run("group", "list")).stdout)
	if p := decode[model.Page[model.Group]](t, h.ok(h.run("group", "list", "--json")).stdout); p.Total != 1 {
		t.Errorf("groups: %+v", p)
	}
	h.failed(h.run("group", "delete", "gpu"), 1, "herd: delete group gpu: ")
	h.failed(h.run("group", "show", "nosuch"), 1, "herd: group show: group nosuch does not exist")

	h.ok(h.run("device", "add", "sw1", "--kind", "switch", "--ports", "swp[1-4]", "--address", "10.2.0.1", "--psu", "psu1,psu2", "--power", "pdu"))
	if d := decode[model.Device](t, h.ok(h.run("device", "show", "sw1", "--json")).stdout); len(d.PowerSupplies) != 2 || d.PowerMethod != model.PowerPDU {
		t.Errorf("sw1's power: %v %q", d.PowerSupplies, d.PowerMethod)
	}
	h.ok(h.run("device", "add", "pdu1", "--kind", "pdu", "--outlets", "A[1-8]", "--driver", "eaton-g4", "--secret", "pdu-admin"))
	if d := decode[model.Device](t, h.ok(h.run("device", "show", "pdu1", "--json")).stdout); d.CredentialRef != "pdu-admin" {
		t.Errorf("pdu1's secret: %q", d.CredentialRef)
	}
	h.ok(h.run("device", "add", "sw2", "--kind", "switch", "--ports", "ge-0:1,ge-0:2"))
	h.failed(h.run("device", "add", "x", "--kind", "router"), 2, `--kind "router" is not a device kind`)
	h.failed(h.run("device", "add", "x", "--kind", "pdu", "--outlets", "A[1-"), 2, "--outlets: noderange")
	d := decode[model.Device](t, h.ok(h.run("device", "show", "pdu1", "--json")).stdout)
	if len(d.Outlets) != 8 || d.Outlets[7] != "A8" {
		t.Errorf("pdu1 outlets %q", d.Outlets)
	}
	if d := decode[model.Device](t, h.ok(h.run("device", "show", "sw2", "--json")).stdout); !slices.Equal(d.Ports, []string{"ge-0:1", "ge-0:2"}) {
		t.Errorf("sw2 ports %q", d.Ports)
	}
	h.ok(h.run("device", "set", "sw1", "--model", "SN2010", "--tag", "rack1"))
	checkAligned(t, h.ok(h.run("device", "list")).stdout)
	if p := decode[model.Page[model.Device]](t, h.ok(h.run("device", "list", "--kind", "pdu", "--json")).stdout); p.Total != 1 {
		t.Errorf("pdus: %+v", p)
	}

	h.ok(h.run("node", "set", "g1", "--iface", "eth0"))
	r = h.ok(h.run("connect", "g1:eth0", "sw1:swp1"))
	if !strings.Contains(r.stdout, "connected g1:eth0 to sw1:swp1 (network:g1:eth0)") {
		t.Errorf("connect said %q", r.stdout)
	}
	h.ok(h.run("connect", "g1:psu1", "pdu1:A3", "--power"))
	h.failed(h.run("connect", "g2:psu1", "pdu1:B9", "--power"), 1, "herd: connect g2:psu1 to pdu1:B9: invalid input\n  port: PDU pdu1 has no outlet \"B9\"")
	h.failed(h.run("connect", "g2", "pdu1:A1"), 2, `"g2" is not NODE:INTERFACE`)
	h.failed(h.run("connect", "lst"), 2, `did you mean "list"?`)
	r = h.ok(h.run("connect", "list", "--node", "g1"))
	checkAligned(t, r.stdout)
	conns := decode[model.Page[model.Connection]](t, h.ok(h.run("connect", "list", "--device", "pdu1", "--json")).stdout)
	if conns.Total != 1 || conns.Items[0].ID != "power:g1:psu1" {
		t.Errorf("connections: %+v", conns)
	}
	if r := h.ok(h.run("node", "show", "g1")); !strings.Contains(r.stdout, "psu1 -> pdu1 outlet A3") || !strings.Contains(r.stdout, "eth0 -> sw1 port swp1") {
		t.Errorf("node show lacks connections:\n%s", r.stdout)
	}
	if r := h.ok(h.run("device", "show", "sw1")); !strings.Contains(r.stdout, "swp1 -> g1 eth0") {
		t.Errorf("device show lacks connections:\n%s", r.stdout)
	}
	h.failed(h.run("device", "delete", "pdu1"), 1, "herd: delete device pdu1: ")
	h.ok(h.run("connect", "delete", "power:g1:psu1"))
	h.ok(h.run("device", "delete", "pdu1"))
	h.failed(h.run("connect", "delete", "power:g1:psu1"), 1, "connection power:g1:psu1 does not exist")
}

func TestUsersAndTokens(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.runIn("bobs-password\n", "user", "add", "bob", "--role", "readonly", "--password-stdin"))
	h.failed(h.runIn("short\n", "user", "add", "eve", "--password-stdin"), 1, "herd: add user eve: invalid input\n  password: password is too short")
	r := h.ok(h.run("user", "list"))
	checkAligned(t, r.stdout)
	if !strings.Contains(r.stdout, "bob") || !strings.Contains(r.stdout, "readonly") {
		t.Errorf("user list:\n%s", r.stdout)
	}

	r = h.ok(h.run("token", "create", "ci", "--ttl", "720h"))
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "ht_") || !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("token create: %q %q", r.stdout, r.stderr)
	}
	tokens := decode[model.Page[model.Token]](t, h.ok(h.run("token", "list", "--json")).stdout)
	if tokens.Total != 1 || tokens.Items[0].Name != "ci" || tokens.Items[0].Expires.IsZero() {
		t.Fatalf("tokens: %+v", tokens)
	}
	checkAligned(t, h.ok(h.run("token", "list")).stdout)

	// A script with HERD_TOKEN and no login.
	script := &herd{t: t, url: h.url, env: map[string]string{
		"HERD_CONFIG": filepath.Join(t.TempDir(), "none"), "HERD_SERVER": h.url, "HERD_TOKEN": secret,
	}}
	if r := script.ok(script.run("whoami")); !strings.Contains(r.stdout, "API token from HERD_TOKEN") {
		t.Errorf("whoami with a token:\n%s", r.stdout)
	}
	h.ok(h.run("token", "delete", tokens.Items[0].ID))
	script.failed(script.run("node", "list"), 1, "herd: list nodes: the session or token is unknown or expired")

	// A read-only account is told so.
	bob := &herd{t: t, url: h.url, env: map[string]string{"HERD_CONFIG": filepath.Join(t.TempDir(), "bob")}}
	bob.ok(bob.runIn("bobs-password\n", "login", "--server", h.url, "--user", "bob", "--password-stdin"))
	bob.failed(bob.run("group", "add", "x"), 1, "herd: add group x: user bob has the readonly role and cannot change anything")
	h.ok(h.run("user", "delete", "bob"))
	h.failed(h.run("user", "delete", "bob"), 1, "user bob does not exist")
}

func TestAudit(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("node", "add", "node[1-2]"))
	h.ok(h.run("node", "delete", "node2", "--yes"))

	r := h.ok(h.run("audit"))
	checkAligned(t, r.stdout)
	for _, want := range []string{"TIME", "ACTION", "session login", "admin logged in", "node create", "created node node1", "node delete", "deleted node node2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit lacks %q:\n%s", want, r.stdout)
		}
	}
	// Oldest first: the login comes before the deletion.
	if strings.Index(r.stdout, "logged in") > strings.Index(r.stdout, "deleted node") {
		t.Errorf("audit is not oldest first:\n%s", r.stdout)
	}
	page := decode[model.Page[model.AuditEvent]](t, h.ok(h.run("audit", "--kind", "node", "--method", "delete", "--json")).stdout)
	if page.Total != 1 || page.Items[0].Refs[0] != "node/node2" {
		t.Errorf("filtered audit: %+v", page)
	}
	r = h.ok(h.run("audit", "--kind", "node", "--limit", "2"))
	if n := strings.Count(r.stdout, "\n"); n != 3 || !strings.Contains(r.stderr, "the newest 2 events") {
		t.Errorf("--limit 2: %d lines\n%s\n%s", n, r.stdout, r.stderr)
	}
	h.failed(h.run("audit", "--since", "yesterday"), 1, "since must be an RFC 3339 time")
}

// lockedBuffer is a buffer that Main writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAuditFollow(t *testing.T) {
	h := loggedIn(t)
	h.ok(h.run("node", "add", "before"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"audit", "-f", "--kind", "node"}, strings.NewReader(""), &stdout, &stderr,
			func(k string) string { return h.env[k] })
	}()
	waitFor := func(what string) {
		t.Helper()
		for !strings.Contains(stdout.String(), what) {
			select {
			case code := <-done:
				t.Fatalf("audit -f ended early with %d before %q\nstdout:\n%s\nstderr:\n%s", code, what, stdout.String(), stderr.String())
			case <-ctx.Done():
				t.Fatalf("no %q within the timeout\nstdout:\n%s\nstderr:\n%s", what, stdout.String(), stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// The history ends before the follow begins.
	waitFor("created node before")
	if _, err := h.api().CreateNode(ctx, model.Node{Name: "after"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.api().CreateGroup(ctx, model.Group{Name: "not-a-node-event"}); err != nil {
		t.Fatal(err)
	}
	waitFor("created node after")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("audit -f exit %d after interrupt; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("audit -f did not stop when interrupted")
	}
	out := stdout.String()
	if strings.Count(out, "created node before") != 1 || strings.Count(out, "created node after") != 1 || strings.Contains(out, "not-a-node-event") {
		t.Errorf("followed output:\n%s", out)
	}
}

func TestHelp(t *testing.T) {
	h := newHerd(t)
	// Every command answers -h on stdout with its usage.
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		for _, s := range c.subs {
			p := append(slices.Clone(path), s.name)
			r := h.ok(h.run(append(slices.Clone(p), "-h")...))
			if !strings.HasPrefix(r.stdout, "Usage: herd "+strings.Join(p, " ")) {
				t.Errorf("herd %s -h:\n%s", strings.Join(p, " "), r.stdout)
			}
			walk(s, p)
		}
	}
	walk((&app{}).root(), nil)

	if r := h.ok(h.run("help", "node", "set")); !strings.Contains(r.stdout, "--untag TAG") {
		t.Errorf("help node set:\n%s", r.stdout)
	}
	if r := h.ok(h.run("--help")); !strings.Contains(r.stdout, "HERD_TOKEN") {
		t.Errorf("herd --help:\n%s", r.stdout)
	}
	h.failed(h.run("nodes", "list"), 2, `herd: unknown command "nodes" (did you mean "node"?); see 'herd help'`)
	h.failed(h.run("node", "dlete"), 2, `herd: node: unknown command "dlete" (did you mean "delete"?); see 'herd help node'`)
	h.failed(h.run("node", "list", "--jsno"), 2, "unknown flag --jsno (did you mean --json?)")
	h.failed(h.run("node", "show"), 2, "node show: missing arguments: want RANGE")
	h.failed(h.run("node", "show", "a", "b"), 2, "too many arguments")
	h.failed(h.run("help", "frobnicate"), 2, `unknown command "frobnicate"`)
	h.failed(h.run("node"), 2, "node: missing command (one of list, show, add, set, delete, unassigned, assign, forget)")
	h.failed(h.run(), 2, "no command given")
}
