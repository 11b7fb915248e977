package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

func TestAddressSequence(t *testing.T) {
	for _, tc := range []struct {
		first string
		n     int
		want  []string
		err   string
	}{
		{"10.0.0.1", 3, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, ""},
		{"10.0.0.254/24", 2, []string{"10.0.0.254/24", "10.0.0.255/24"}, ""},
		{"10.0.0.250", 10, nil, "10 addresses from 10.0.0.250 run past the last octet (259 > 255)"},
		{"10.0.0.14/28", 3, nil, "leave 10.0.0.0/28 at 10.0.0.16"},
		{"fd00::fe", 2, []string{"fd00::fe", "fd00::ff"}, ""},
		{"fd00::ff", 2, nil, "past the last octet"},
		{"10.0.0", 1, nil, `"10.0.0" is not an IP address`},
		{"10.0.0.1/33", 1, nil, "with prefix length"},
	} {
		got, err := addressSequence(tc.first, tc.n)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s×%d: error %v, want %q", tc.first, tc.n, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s×%d = %q, %v; want %q", tc.first, tc.n, got, err, tc.want)
		}
	}
}

func FuzzAddressSequence(f *testing.F) {
	f.Add("10.0.0.1/24", 5)
	f.Add("fd00::1", 300)
	f.Fuzz(func(t *testing.T, first string, n int) {
		if n < 1 || n > 1000 {
			return
		}
		got, err := addressSequence(first, n)
		if err == nil && len(got) != n {
			t.Fatalf("%q×%d gave %d addresses", first, n, len(got))
		}
	})
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	g := fs.String("group", "", "")
	pos, err := parseInterspersed(fs, []string{"node[1-4]", "--json", "extra", "--group", "gpu", "--", "--not-a-flag"})
	if err != nil || !*j || *g != "gpu" || !slices.Equal(pos, []string{"node[1-4]", "extra", "--not-a-flag"}) {
		t.Errorf("pos %q json %v group %q err %v", pos, *j, *g, err)
	}
}

func TestClosest(t *testing.T) {
	known := []string{"list", "show", "add", "set", "delete"}
	for word, want := range map[string]string{
		"lst": "list", "dlete": "delete", "del": "delete", "sho": "show", "LIST": "list", "frobnicate": "", "x": "",
	} {
		if got := closest(word, known); got != want {
			t.Errorf("closest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestFlagProblem(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	fs.Bool("json", false, "")
	fs.Duration("ttl", 0, "")
	for args, want := range map[string]string{
		"--jsn":       "unknown flag --jsn (did you mean --json?)",
		"--ttl":       "--ttl needs a value",
		"--ttl=forty": "--ttl: parse error",
	} {
		err := fs.Parse(strings.Fields(args))
		if got := flagProblem(err, fs); got != want {
			t.Errorf("%s: %q, want %q", args, got, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		p    client.Error
		want string
	}{
		{client.Error{Title: "Not found", Detail: `node "x" does not exist`}, `node "x" does not exist`},
		{client.Error{Title: "Invalid input", Detail: "a: is bad; b: is worse",
			Errors: []model.FieldProblem{{Field: "a", Message: "is bad"}, {Field: "b", Message: "is worse"}}}, "invalid input"},
		{client.Error{Title: "Bad query", Detail: "since must be a time", Errors: []model.FieldProblem{{Field: "since", Message: "is not a time"}}},
			"since must be a time"},
		{client.Error{Title: "Malformed JSON"}, "malformed JSON"},
	} {
		if got := describe(&tc.p); got != tc.want {
			t.Errorf("describe(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestNodePatch(t *testing.T) {
	cur := model.Node{
		Name: "n1", Tags: []string{"a", "b"},
		Interfaces: []model.Interface{{Name: "ib0"}, {Name: "eth0", MAC: "52:54:00:00:00:01", Boot: true}},
	}
	yes := true
	for _, tc := range []struct {
		name     string
		flags    nodeFlags
		set      []string
		unset    []string
		addr     string
		want     map[string]any
		needsRev bool
	}{
		{
			name: "settings and deletions", flags: nodeFlags{settingsFlags: settingsFlags{image: "rocky9", stateless: optBool{&yes}}},
			set: []string{"image", "stateless", "branch"}, unset: []string{"group", "layout"},
			want: map[string]any{"image": "rocky9", "stateless": true, "branch": nil, "group": nil, "disk_layout": nil},
		},
		{
			name: "tags", flags: nodeFlags{tags: listFlag{"c", "a"}, untags: listFlag{"b"}}, set: []string{"tag", "untag"},
			want: map[string]any{"tags": []string{"a", "c"}}, needsRev: true,
		},
		{
			name: "bmc user only", flags: nodeFlags{bmcUser: "root"}, set: []string{"bmc-user"},
			want: map[string]any{"bmc": map[string]any{"username": "root"}},
		},
		{
			name: "ip goes to the boot interface", set: []string{"ip"}, addr: "10.0.0.5",
			want: map[string]any{"interfaces": []model.Interface{
				{Name: "ib0"}, {Name: "eth0", MAC: "52:54:00:00:00:01", Address: "10.0.0.5", Boot: true}}},
			needsRev: true,
		},
		{
			name: "a new interface by name", flags: nodeFlags{iface: "eth1", mac: "52:54:00:00:00:02"}, set: []string{"iface", "mac"},
			want: map[string]any{"interfaces": []model.Interface{
				{Name: "ib0"}, {Name: "eth0", MAC: "52:54:00:00:00:01", Boot: true}, {Name: "eth1", MAC: "52:54:00:00:00:02"}}},
			needsRev: true,
		},
	} {
		set, unset := map[string]bool{}, map[string]bool{}
		for _, s := range tc.set {
			set[s] = true
		}
		for _, u := range tc.unset {
			unset[u] = true
		}
		got, needsRev := tc.flags.patch(cur, tc.addr, set, unset)
		if !reflect.DeepEqual(got, tc.want) || needsRev != tc.needsRev {
			t.Errorf("%s: patch %#v (needsRev %v), want %#v (%v)", tc.name, got, needsRev, tc.want, tc.needsRev)
		}
	}
}

func TestExpandNames(t *testing.T) {
	for in, want := range map[string][]string{
		"A[1-3]":        {"A1", "A2", "A3"},
		"1,2,swp[9-10]": {"1", "2", "swp9", "swp10"},
		"ge-0:1,ge-0:2": {"ge-0:1", "ge-0:2"},
	} {
		if got, err := expandNames(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("expandNames(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := expandNames("A[1-"); err == nil {
		t.Error("a broken range was accepted")
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &buf, verb: "set", total: 4, now: func() time.Time { return now }}
	p.step("node1")
	if got := buf.String(); got != "\r\033[Kset [######..................] 1/4 node1" {
		t.Errorf("first step drew %q", got)
	}
	buf.Reset()
	p.step("node2") // within 100ms: not drawn
	if buf.Len() != 0 {
		t.Errorf("drew too often: %q", buf.String())
	}
	p.clear()
	p.redraw()
	p.step("node3")
	p.step("node4") // the last is always drawn
	if got := buf.String(); !strings.HasSuffix(got, "\r\033[Kset [########################] 4/4 node4") {
		t.Errorf("last step drew %q", got)
	}
	var none *progress // pipes get no progress at all
	none.step("x")
	none.clear()
	if a := (&app{stderr: &buf}); a.newProgress("set", 100) != nil {
		t.Error("progress drawn on a buffer")
	}
}

func TestSaveCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deep", "dir", "credentials")
	if err := saveCredentials(path, credentials{Server: "https://herd", Token: "hs_1"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".keep", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveCredentials(path, credentials{Server: "https://herd", Token: "hs_2"}); err != nil {
		t.Fatal(err)
	}
	a := &app{getenv: func(k string) string { return map[string]string{"HERD_CONFIG": path}[k] }}
	c, _, err := a.loadCredentials()
	if err != nil || c.Token != "hs_2" {
		t.Errorf("loaded %+v, %v", c, err)
	}
	fi, _ := os.Stat(path)
	dir, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || dir.Mode().Perm() != 0o700 {
		t.Errorf("modes %v %v", fi.Mode().Perm(), dir.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestSession(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials")
	if err := saveCredentials(path, credentials{Server: "https://herd:8443", Token: "hs_stored"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env         map[string]string
		flag        string
		server, tok string
	}{
		{env: map[string]string{}, server: "https://herd:8443", tok: "hs_stored"},
		{env: map[string]string{"HERD_TOKEN": "ht_env"}, server: "https://herd:8443", tok: "ht_env"},
		{env: map[string]string{"HERD_SERVER": "https://other"}, server: "https://other", tok: ""},
		{env: map[string]string{"HERD_SERVER": "https://other"}, flag: "https://herd:8443/", server: "https://herd:8443", tok: "hs_stored"},
	} {
		tc.env["HERD_CONFIG"] = path
		a := &app{server: tc.flag, getenv: func(k string) string { return tc.env[k] }}
		s, err := a.session()
		if err != nil || s.server != tc.server || s.token != tc.tok {
			t.Errorf("%v --server %q: %q %q %v; want %q %q", tc.env, tc.flag, s.server, s.token, err, tc.server, tc.tok)
		}
	}
	a := &app{getenv: func(k string) string { return map[string]string{"HOME": dir}[k] }}
	if p, _ := a.credentialsPath(); p != filepath.Join(dir, ".config", "herd", "credentials") {
		t.Errorf("default path %s", p)
	}
	a = &app{getenv: func(k string) string { return map[string]string{"HERD_CONFIG": path, "HERD_SERVER": "herd:8080"}[k] }}
	if _, err := a.session(); !errors.As(err, new(*usageError)) {
		t.Errorf("a server without scheme: %v", err)
	}
	a = &app{getenv: func(string) string { return "" }}
	if _, err := a.credentialsPath(); err == nil {
		t.Error("no HOME and no HERD_CONFIG gave a path")
	}
}
