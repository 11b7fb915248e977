package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func noEnv(string) (string, bool) { return "", false }

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &out, noEnv); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"-register -nodes 50", ".herd/initial-admin-password", "-spread", "-inflight", "-mac-prefix", "-json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"extra"},
		{"-nodes", "0"},
		{"-mac-prefix", "01:00:00"},
		{"-firmware", "arm"},
		{"-until", "forever"},
		{"-expect", "miracles"},
		{"-artifacts", "all"},
		{"-events", "Bad:ok"},
		{"-subnet", "10.77.0.0/24", "-nodes", "300"},
		{"-subnet", "not-a-cidr"},
		{"-tftp", "nowhere"},
		{"-edge", "ftp://x"},
		{"-dhcp-tries", "0"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, &out, noEnv); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, out.String())
		}
	}
}

func TestConfig(t *testing.T) {
	o := options{nodes: 300, inflight: 64, macPrefix: "02:68:64", namePrefix: "sim", firmware: "efi", edge: "http://127.0.0.1:8080",
		subnet: "10.77.0.0/16", until: "script", artifacts: "none", events: "ipxe:ok", dhcpTimeout: 1e9, dhcpTries: 3,
		tftp: "127.0.0.1:6969", tftpBlock: 1432, register: true}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rack.FirstAddr.String() != "10.77.1.0" || !cfg.CheckAddr || cfg.Expect != "known" || cfg.Firmware.Name != "efi" ||
		len(cfg.DHCPTimeouts) != 3 || cfg.DHCPTimeouts[2] != 4e9 || cfg.TFTP.Port() != 6969 {
		t.Errorf("config %+v", cfg)
	}
	if _, err := (&options{register: true, adminFile: ""}).apiClient(context.Background(), noEnv); err == nil {
		t.Error("no credentials accepted")
	}
}
