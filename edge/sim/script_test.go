package sim

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
)

func testSettings() Settings {
	return settingsFor(Rack{Nodes: 10, MACPrefix: DefaultMACPrefix(), NamePrefix: "sim"}.Node(6),
		Firmware{BuildArch: "i386", Platform: "pcbios"}, Lease{})
}

// The scripts functions/boot renders are what the simulator must follow;
// these tests read herd's own renderings, so a change on either side that
// breaks the other fails here.
func TestParseHerdChainScript(t *testing.T) {
	s, err := ParseScript(string(boot.ChainScript("http://10.0.0.1:8080")), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.Chain)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{"mac": "02:68:64:00:00:07", "arch": "i386", "platform": "pcbios",
		"manufacturer": "herd-sim", "product": "simulated node", "serial": "SIM00000007", "asset": "sim07"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q (chain %s)", k, q.Get(k), v, s.Chain)
		}
	}
	if u.Host != "10.0.0.1:8080" || u.Path != "/boot/ipxe" || s.Kernel != "" || s.Boot {
		t.Errorf("script %+v", s)
	}
	// What herd parses out of the query must be what the node told.
	req, hasMAC, err := boot.ParseScriptRequest(q)
	if err != nil || !hasMAC || req.MAC != "02:68:64:00:00:07" || req.Arch != "i386" || req.Serial != "SIM00000007" {
		t.Errorf("herd reads the chain query as %+v, %v, %v", req, hasMAC, err)
	}
	if classify(s) != OutcomeFailed {
		t.Errorf("a bare chain classified as %s", classify(s))
	}
}

func TestParseHerdBootScript(t *testing.T) {
	for _, platform := range []string{"pcbios", "efi"} {
		b := boot.Boot{Server: "http://10.0.0.1:8080", Node: "sim07", MAC: "02:68:64:00:00:07", Image: "rocky 9",
			Branch: "live", Platform: platform, Session: "bs_abc", Token: "hbt_s3cret",
			Kernel: "images/rocky%209/live/kernel", Initrd: "images/rocky%209/live/initrd", Bootenv: boot.BootenvKey}
		s, err := ParseScript(string(b.Render()), testSettings())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.Kernel, "http://10.0.0.1:8080/boot/artifacts/images/rocky%25209/live/kernel?session=bs_abc&token=") {
			t.Errorf("%s: kernel %q", platform, s.Kernel)
		}
		if len(s.Initrds) != 2 || !strings.Contains(s.Initrds[1], "/boot/artifacts/bootenv/initramfs?") {
			t.Errorf("%s: initrds %q", platform, s.Initrds)
		}
		for k, want := range map[string]string{ParamSession: "bs_abc", ParamServer: "http://10.0.0.1:8080", ParamToken: "hbt_s3cret"} {
			if v, ok := s.Param(k); !ok || v != want {
				t.Errorf("%s: %s = %q, %v", platform, k, v, ok)
			}
		}
		if _, ok := s.Param("initrd"); ok != (platform == "efi") {
			t.Errorf("%s: initrd= on the command line: %v", platform, ok)
		}
		if !s.Boot || s.Chain != "" || len(s.Unknown) > 0 || classify(s) != OutcomeBooted {
			t.Errorf("%s: %+v", platform, s)
		}
	}
}

func TestParseHerdWaitScripts(t *testing.T) {
	server := "http://10.0.0.1:8080"
	unknown, err := ParseScript(string(boot.UnknownScript(server, "02:68:64:00:00:07", 30*time.Second)), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if unknown.Sleep != 30*time.Second || !strings.HasPrefix(unknown.Chain, server+"/boot/ipxe?mac=02:68:64:00:00:07&") {
		t.Errorf("unknown: %+v", unknown)
	}
	if got := classify(unknown); got != OutcomeDiscovery {
		t.Errorf("unknown script classified as %s", got)
	}
	retry := server + "/boot/ipxe?" + url.Values{"mac": {"02:68:64:00:00:07"}, "session": {"bs_abc"}, "arch": {"i386"}}.Encode()
	wait, err := ParseScript(string(boot.WaitScript("sim07", "node sim07 has no image: set one on the node", retry, time.Minute)), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if wait.Sleep != time.Minute || wait.Chain != retry {
		t.Errorf("wait: %+v", wait)
	}
	if got := classify(wait); got != OutcomeWaiting {
		t.Errorf("wait script classified as %s", got)
	}
}

func TestParseScript(t *testing.T) {
	set := Settings{"mac": "02:68:64:00:00:07", "buildarch": "x86_64", "name": "a b&c"}
	tests := []struct {
		name   string
		script string
		want   Script
		err    string
	}{
		{name: "not ipxe", script: "#!/bin/sh\necho hi\n", err: "not an iPXE script"},
		{name: "empty", script: "", err: "empty script"},
		{name: "settings", script: "#!ipxe\nchain http://e/boot?m=${net0/mac:hexhyp}&r=${mac:hexraw}&a=${buildarch}&n=${name:uristring}&x=${nope}\n",
			want: Script{Chain: "http://e/boot?m=02-68-64-00-00-07&r=026864000007&a=x86_64&n=a+b%26c&x="}},
		{name: "kernel options and imgargs", script: "#!ipxe\nkernel -n k --timeout 5000 http://e/k\nimgargs k console=ttyS0 quiet\nmodule http://e/i1\ninitrd --name=i2 http://e/i2\nboot || shell\n",
			want: Script{Kernel: "http://e/k", KernelArgs: []string{"console=ttyS0", "quiet"}, Initrds: []string{"http://e/i1", "http://e/i2"}, Boot: true}},
		{name: "continued line and comments", script: "#!ipxe\r\n# a comment\r\n:start\r\nkernel http://e/k \\\r\n  a=1 b=\"two words\"\r\nboot\r\n",
			want: Script{Kernel: "http://e/k", KernelArgs: []string{"a=1", "b=two words"}, Boot: true}},
		{name: "nothing after chain runs", script: "#!ipxe\necho waiting\nsleep 5\nchain /boot/ipxe?mac=${mac}\nkernel http://e/never\n",
			want: Script{Chain: "/boot/ipxe?mac=02:68:64:00:00:07", Sleep: 5 * time.Second}},
		{name: "unknown and exit", script: "#!ipxe\nfrobnicate now\nexit 1\n", want: Script{Unknown: []string{"frobnicate", "exit"}}},
		{name: "bad sleep", script: "#!ipxe\nsleep soon\n", err: "not a number"},
		{name: "unclosed setting", script: "#!ipxe\nchain http://e/${mac\n", err: "unclosed ${"},
		{name: "unclosed quote", script: "#!ipxe\necho \"hi\n", err: "unclosed quote"},
		{name: "kernel without image", script: "#!ipxe\nkernel --name k\n", err: "without an image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScript(tt.script, set)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseEvents(t *testing.T) {
	got, err := ParseEvents("ipxe:ok, done , sim:info")
	want := []Event{{"ipxe", model.EventOK}, {"done", model.EventOK}, {"sim", model.EventInfo}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"Bad Step:ok", "ipxe:great"} {
		if _, err := ParseEvents(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseScript feeds the parser what a server could send: it must not
// panic, and what it accepts must start with #!ipxe.
func FuzzParseScript(f *testing.F) {
	f.Add(string(boot.ChainScript("http://e")))
	f.Add(string(boot.UnknownScript("http://e", "02:68:64:00:00:01", time.Second)))
	f.Add("#!ipxe\nkernel --name k http://e/k a=${mac:hexhyp} \\\n b\ninitrd http://e/i || goto x\nboot\n")
	f.Fuzz(func(t *testing.T, body string) {
		s, err := ParseScript(body, testSettings())
		if err == nil && !strings.HasPrefix(strings.TrimSpace(strings.SplitN(body, "\n", 2)[0]), "#!ipxe") {
			t.Fatalf("accepted a script without #!ipxe: %q → %+v", body, s)
		}
	})
}
