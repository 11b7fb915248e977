package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes an INI file and a secret file into a fresh directory.
// "$DIR" in body is replaced by that directory.
func writeConfig(t *testing.T, body string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "edge.secret"), []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "herd.ini")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const validEdge = `[functions]
listen = 127.0.0.1:8081

[edge]
; HTTP(S) for admins and nodes; everything is forwarded to functions.
listen = :8080
functions_url = http://127.0.0.1:8081
edge_secret_file = $DIR/edge.secret
; Serve HTTPS when both are set.
tls_cert =
tls_key =
tftp_listen = :69
tftp_root = /usr/lib/ipxe
; Interfaces to answer DHCP on, comma separated. Empty: DHCP off.
dhcp_interfaces =
`

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		ini     string // "" means validEdge
		edit    func(string) string
		env     map[string]string
		want    func(t *testing.T, e Edge, dir string)
		wantErr []string // substrings, all must appear
	}{
		{
			name: "shipped defaults",
			want: func(t *testing.T, e Edge, dir string) {
				if e.Listen != ":8080" || e.FunctionsURL.String() != "http://127.0.0.1:8081" ||
					e.TFTPListen != ":69" || e.TFTPRoot != "/usr/lib/ipxe" ||
					e.SecretFile != dir+"/edge.secret" || e.TLS() || e.DHCP() || !e.TFTP() {
					t.Errorf("got %+v", e)
				}
				if string(e.Secret) != "s3cret-from-file" {
					t.Errorf("secret = %q, want it trimmed from the file", string(e.Secret))
				}
			},
		},
		{
			name: "the repository's infra/herd.ini parses",
			ini:  "REPO",
			env:  map[string]string{SecretEnv: "x"},
			want: func(t *testing.T, e Edge, _ string) {
				if e.FunctionsURL == nil || e.Listen == "" {
					t.Errorf("got %+v", e)
				}
			},
		},
		{
			name: "env overrides file",
			env: map[string]string{
				"HERD_EDGE_LISTEN":          "127.0.0.1:0",
				"HERD_EDGE_FUNCTIONS_URL":   "https://functions.example:8443/prod",
				"HERD_EDGE_DHCP_INTERFACES": "eth1, eth2,",
				"HERD_EDGE_TFTP_LISTEN":     "",
				// DHCP on in server mode needs its network, pool, and
				// (with listen port 0) the URL nodes reach the edge at.
				"HERD_EDGE_DHCP_SUBNET":         "10.0.0.0/16",
				"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.200.1-10.0.255.254",
				"HERD_EDGE_BOOT_URL":            "http://10.0.0.1:8080",
			},
			want: func(t *testing.T, e Edge, _ string) {
				if e.Listen != "127.0.0.1:0" || e.FunctionsURL.Path != "/prod" || e.TFTP() {
					t.Errorf("got %+v", e)
				}
				if !reflect.DeepEqual(e.DHCPInterfaces, []string{"eth1", "eth2"}) {
					t.Errorf("interfaces = %q", e.DHCPInterfaces)
				}
			},
		},
		{
			name: "secret from env needs no file",
			edit: func(s string) string { return strings.Replace(s, "$DIR/edge.secret", "/nonexistent/edge.secret", 1) },
			env:  map[string]string{SecretEnv: "in-memory"},
			want: func(t *testing.T, e Edge, _ string) {
				if string(e.Secret) != "in-memory" {
					t.Errorf("secret = %q", string(e.Secret))
				}
			},
		},
		{
			name:    "missing secret file",
			edit:    func(s string) string { return strings.Replace(s, "$DIR/edge.secret", "/nonexistent/edge.secret", 1) },
			wantErr: []string{"herd.ini: [edge] edge_secret_file = \"/nonexistent/edge.secret\"", "no such file"},
		},
		{
			name:    "empty secret env",
			env:     map[string]string{SecretEnv: ""},
			wantErr: []string{"HERD_EDGE_SECRET is set but empty"},
		},
		{
			name:    "no secret at all",
			edit:    func(s string) string { return strings.Replace(s, "$DIR/edge.secret", "", 1) },
			wantErr: []string{"edge_secret_file: required"},
		},
		{
			name:    "bad url scheme from env names variable and value",
			env:     map[string]string{"HERD_EDGE_FUNCTIONS_URL": "ftp://x"},
			wantErr: []string{`[edge] functions_url = "ftp://x" (from HERD_EDGE_FUNCTIONS_URL)`, "http:// or https://"},
		},
		{
			name:    "url without host",
			env:     map[string]string{"HERD_EDGE_FUNCTIONS_URL": "http:///x"},
			wantErr: []string{"functions_url", "no host"},
		},
		{
			name:    "url that does not parse",
			env:     map[string]string{"HERD_EDGE_FUNCTIONS_URL": "http://[::1"},
			wantErr: []string{`functions_url = "http://[::1"`, "not a URL"},
		},
		{
			name:    "url with credentials",
			env:     map[string]string{"HERD_EDGE_FUNCTIONS_URL": "http://u:p@x"},
			wantErr: []string{"functions_url", "credentials"},
		},
		{
			name:    "url missing",
			edit:    func(s string) string { return strings.Replace(s, "functions_url = http://127.0.0.1:8081", "", 1) },
			wantErr: []string{"functions_url: required"},
		},
		{
			name:    "listen without port",
			env:     map[string]string{"HERD_EDGE_LISTEN": "localhost"},
			wantErr: []string{`listen = "localhost"`, "host:port"},
		},
		{
			name:    "listen bad port",
			env:     map[string]string{"HERD_EDGE_LISTEN": ":http"},
			wantErr: []string{`listen = ":http"`, "port \"http\""},
		},
		{
			name:    "listen empty",
			env:     map[string]string{"HERD_EDGE_LISTEN": ""},
			wantErr: []string{"[edge] listen = \"\" (from HERD_EDGE_LISTEN): required"},
		},
		{
			name:    "tls cert without key",
			env:     map[string]string{"HERD_EDGE_TLS_CERT": "/etc/herd/edge.crt"},
			wantErr: []string{"tls_key", "empty while tls_cert is set"},
		},
		{
			name:    "tls key without cert",
			edit:    func(s string) string { return strings.Replace(s, "tls_key =", "tls_key = /k.pem", 1) },
			wantErr: []string{"tls_cert", "empty while tls_key is set"},
		},
		{
			name: "tls both",
			env:  map[string]string{"HERD_EDGE_TLS_CERT": "/c.pem", "HERD_EDGE_TLS_KEY": "/k.pem"},
			want: func(t *testing.T, e Edge, _ string) {
				if !e.TLS() {
					t.Error("TLS() = false with both set")
				}
			},
		},
		{
			name:    "tftp without root",
			env:     map[string]string{"HERD_EDGE_TFTP_ROOT": ""},
			wantErr: []string{"tftp_root", "required when tftp_listen is set"},
		},
		{
			name:    "tftp bad listen",
			env:     map[string]string{"HERD_EDGE_TFTP_LISTEN": "127.0.0.1:99999"},
			wantErr: []string{`tftp_listen = "127.0.0.1:99999"`, "0 to 65535"},
		},
		{
			name:    "interfaces separated by spaces",
			env:     map[string]string{"HERD_EDGE_DHCP_INTERFACES": "eth0 eth1"},
			wantErr: []string{"dhcp_interfaces", "separate interfaces with commas"},
		},
		{
			name:    "interface name too long",
			env:     map[string]string{"HERD_EDGE_DHCP_INTERFACES": "averyveryverylongname"},
			wantErr: []string{"dhcp_interfaces", "longer than 15"},
		},
		{
			name:    "interface listed twice",
			env:     map[string]string{"HERD_EDGE_DHCP_INTERFACES": "eth0,eth0"},
			wantErr: []string{"listed twice"},
		},
		{
			name:    "unknown key names file and key",
			edit:    func(s string) string { return s + "tftp_rot = /srv/tftp\n" },
			wantErr: []string{"herd.ini: [edge] tftp_rot = \"/srv/tftp\": unknown key"},
		},
		{
			name:    "several problems reported together",
			env:     map[string]string{"HERD_EDGE_LISTEN": "nope", "HERD_EDGE_FUNCTIONS_URL": "gopher://x"},
			wantErr: []string{"listen", "functions_url"},
		},
		{
			name:    "no edge section",
			ini:     "[functions]\nlisten = :1\n",
			wantErr: []string{"herd.ini: no [edge] section"},
		},
		{
			name:    "bracketed value the parser would take for a section",
			edit:    func(s string) string { return strings.Replace(s, "listen = :8080", "listen = [::1]:8080", 1) },
			wantErr: []string{"herd.ini: line 6 \"listen = [::1]:8080\"", "section header"},
		},
		{
			name:    "comment naming a section",
			edit:    func(s string) string { return strings.Replace(s, "; Serve HTTPS", "; see [functions]; Serve HTTPS", 1) },
			wantErr: []string{"line 9", "section header"},
		},
		{
			name: "IPv6 listen from env",
			env:  map[string]string{"HERD_EDGE_LISTEN": "[::1]:8080"},
			want: func(t *testing.T, e Edge, _ string) {
				if e.Listen != "[::1]:8080" {
					t.Errorf("listen = %q", e.Listen)
				}
			},
		},
		{
			name:    "secret with a newline inside",
			env:     map[string]string{SecretEnv: "a\nb"},
			wantErr: []string{"visible ASCII"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := validEdge
			switch tt.ini {
			case "":
			case "REPO":
				b, err := os.ReadFile("../../infra/herd.ini")
				if err != nil {
					t.Skipf("infra/herd.ini not readable: %v", err)
				}
				body = string(b)
			default:
				body = tt.ini
			}
			if tt.edit != nil {
				body = tt.edit(body)
			}
			path, dir := writeConfig(t, body)
			e, err := Load(path, envOf(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded with %+v, want error containing %q", e, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\n does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the secret: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.want != nil {
				tt.want(t, e, dir)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.ini"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.ini") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	path, _ := writeConfig(t, validEdge)
	_, err := Load(path, envOf(map[string]string{"HERD_EDGE_LISTEN": "x"}))
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != KeyListen || ce.Env != "HERD_EDGE_LISTEN" || ce.Value != "x" || ce.File != path {
		t.Fatalf("err = %#v, want *Error for listen", err)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	path, _ := writeConfig(t, validEdge)
	e, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate of a loaded config: %v", err)
	}
	e.FunctionsURL = nil
	e.Secret = ""
	err = e.Validate()
	if err == nil || strings.Contains(err.Error(), "herd.ini") ||
		!strings.Contains(err.Error(), "[edge] functions_url: required") ||
		!strings.Contains(err.Error(), "no shared secret") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret("hunter2")
	e := Edge{Secret: s}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "secret", s, "edge", e)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", e, e, e, s), logged.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

// FuzzLoad feeds arbitrary file contents through the parser and decoding:
// Load must return a config or an error, never panic, and never put the
// secret into an error.
func FuzzLoad(f *testing.F) {
	f.Add(strings.ReplaceAll(validEdge, "$DIR/edge.secret", "/nonexistent"))
	f.Add("[edge]\nlisten=[::1]:80\nfunctions_url=https://x/y\ndhcp_interfaces=a,b,,c\n")
	f.Add("[edge]\n; a: b\nfunctions_url = %(x)s\n")
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(t.TempDir(), "herd.ini")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		e, err := Load(path, envOf(map[string]string{SecretEnv: "fuzz-secret"}))
		if err != nil {
			if strings.Contains(err.Error(), "fuzz-secret") {
				t.Fatalf("error leaks secret: %v", err)
			}
			return
		}
		if e.Validate() != nil {
			t.Fatalf("Load accepted a config Validate refuses: %+v", e)
		}
	})
}

// dhcpOn is the environment of an edge answering DHCP in server mode on
// one interface; cases add to it or blank parts of it.
func dhcpOn(extra map[string]string) map[string]string {
	env := map[string]string{
		"HERD_EDGE_DHCP_INTERFACES":     "eth1",
		"HERD_EDGE_DHCP_SUBNET":         "10.0.0.0/16",
		"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.200.1-10.0.255.254",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestLoadDHCP(t *testing.T) {
	full := `
dhcp_interfaces = eth1
dhcp_mode = server
dhcp_subnet = 10.0.0.0/16
dhcp_discovery_pool = 10.0.200.1 - 10.0.255.254
dhcp_router = 10.0.0.254
dhcp_dns = 10.0.0.53, 10.0.0.54
dhcp_domain = cluster.example
dhcp_lease = 90m
dhcp_discovery_lease = 3m
dhcp_server_address = 10.0.0.1
boot_url = http://10.0.0.1:8080
dhcp_bios_file = undionly.kkpxe
dhcp_uefi_file = ipxe.efi
dhcp_arm_file = arm64/snp.efi
`
	tests := []struct {
		name    string
		ini     string // appended to validEdge (after removing its dhcp_interfaces line)
		env     map[string]string
		want    func(t *testing.T, e Edge)
		wantErr []string
	}{
		{
			name: "every key from the file",
			ini:  full,
			want: func(t *testing.T, e Edge) {
				if !e.DHCP() || e.DHCPProxy() || e.DHCPMode != DHCPServer || e.DHCPSubnet.String() != "10.0.0.0/16" ||
					e.DHCPDiscoveryPool.String() != "10.0.200.1-10.0.255.254" || e.DHCPRouter.String() != "10.0.0.254" ||
					len(e.DHCPDNS) != 2 || e.DHCPDNS[1].String() != "10.0.0.54" || e.DHCPDomain != "cluster.example" ||
					e.DHCPLease != 90*time.Minute || e.DHCPDiscoveryLease != 3*time.Minute ||
					e.DHCPServerAddress.String() != "10.0.0.1" || e.BootURL.String() != "http://10.0.0.1:8080" ||
					e.DHCPBIOSFile != "undionly.kkpxe" || e.DHCPUEFIFile != "ipxe.efi" || e.DHCPARMFile != "arm64/snp.efi" {
					t.Errorf("got %+v", e)
				}
			},
		},
		{
			name: "off by default, and then nothing is required",
			want: func(t *testing.T, e Edge) {
				if e.DHCP() || e.DHCPSubnet.IsValid() || e.DHCPLease != 0 {
					t.Errorf("got %+v", e)
				}
			},
		},
		{
			name: "dhcp_listen turns DHCP on without interfaces",
			env:  map[string]string{"HERD_EDGE_DHCP_LISTEN": "127.0.0.1:6767", "HERD_EDGE_DHCP_SUBNET": "10.0.0.0/16", "HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.1.1-10.0.1.200"},
			want: func(t *testing.T, e Edge) {
				if !e.DHCP() || e.DHCPListen != "127.0.0.1:6767" {
					t.Errorf("got %+v", e)
				}
			},
		},
		{
			name: "proxy mode needs no subnet or pool",
			env:  map[string]string{"HERD_EDGE_DHCP_INTERFACES": "eth1", "HERD_EDGE_DHCP_MODE": "Proxy"},
			want: func(t *testing.T, e Edge) {
				if !e.DHCPProxy() {
					t.Errorf("got %+v", e)
				}
			},
		},
		{name: "server mode needs subnet and pool", env: map[string]string{"HERD_EDGE_DHCP_INTERFACES": "eth1"},
			wantErr: []string{"dhcp_subnet: required in server mode", "dhcp_discovery_pool: required in server mode"}},
		{name: "interfaces and listen together", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_LISTEN": "127.0.0.1:6767"}),
			wantErr: []string{`dhcp_listen = "127.0.0.1:6767" (from HERD_EDGE_DHCP_LISTEN): set dhcp_interfaces or dhcp_listen, not both`}},
		{name: "bad mode", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_MODE": "relay"}),
			wantErr: []string{`dhcp_mode = "relay"`, "want server or proxy"}},
		{name: "subnet not CIDR", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_SUBNET": "10.0.0.0"}),
			wantErr: []string{`dhcp_subnet = "10.0.0.0"`, "CIDR"}},
		{name: "subnet with host bits", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_SUBNET": "10.0.0.1/16"}),
			wantErr: []string{"dhcp_subnet", "want the network address, 10.0.0.0/16"}},
		{name: "subnet too small", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_SUBNET": "10.0.0.0/31"}),
			wantErr: []string{"dhcp_subnet", "from 8 to 30"}},
		{name: "pool without dash", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.200.1"}),
			wantErr: []string{"dhcp_discovery_pool", "start-end"}},
		{name: "pool backwards", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.2.1-10.0.1.1"}),
			wantErr: []string{"dhcp_discovery_pool", "start is after end"}},
		{name: "pool outside subnet", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.1.0.1-10.1.0.9"}),
			wantErr: []string{"dhcp_discovery_pool", "not inside dhcp_subnet 10.0.0.0/16"}},
		{name: "pool holding the broadcast address", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.255.1-10.0.255.255"}),
			wantErr: []string{"dhcp_discovery_pool", "broadcast address 10.0.255.255"}},
		{name: "pool too large", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_SUBNET": "10.0.0.0/8", "HERD_EDGE_DHCP_DISCOVERY_POOL": "10.0.0.1-10.200.0.1"}),
			wantErr: []string{"dhcp_discovery_pool", "more than the"}},
		{name: "pool not IPv4", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_POOL": "fd00::1-fd00::9"}),
			wantErr: []string{"dhcp_discovery_pool", "not an IPv4 address"}},
		{name: "router outside subnet", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_ROUTER": "192.168.0.1"}),
			wantErr: []string{`dhcp_router = "192.168.0.1"`, "not in dhcp_subnet"}},
		{name: "dns with spaces", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DNS": "10.0.0.53 10.0.0.54"}),
			wantErr: []string{"dhcp_dns", "separate addresses with commas"}},
		{name: "domain with a space", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DOMAIN": "my cluster"}),
			wantErr: []string{"dhcp_domain", "not a DNS domain name"}},
		{name: "lease not a duration", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_LEASE": "3600"}),
			wantErr: []string{`dhcp_lease = "3600"`, "want a duration"}},
		{name: "discovery lease too short", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_DISCOVERY_LEASE": "2s"}),
			wantErr: []string{"dhcp_discovery_lease", "from 10s"}},
		{name: "server address not IPv4", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_SERVER_ADDRESS": "edge.example"}),
			wantErr: []string{"dhcp_server_address", "not an IPv4 address"}},
		{name: "boot url not http", env: dhcpOn(map[string]string{"HERD_EDGE_BOOT_URL": "tftp://10.0.0.1"}),
			wantErr: []string{"boot_url", "http:// or https://"}},
		{name: "boot url needed with listen port 0", env: dhcpOn(map[string]string{"HERD_EDGE_LISTEN": "127.0.0.1:0"}),
			wantErr: []string{"boot_url: required when listen has port 0"}},
		{name: "boot file with a space", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_BIOS_FILE": "undi only.kpxe"}),
			wantErr: []string{"dhcp_bios_file", "visible ASCII"}},
		{name: "boot file climbing out", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_UEFI_FILE": "../etc/passwd"}),
			wantErr: []string{"dhcp_uefi_file", "'..'"}},
		{name: "boot file too long", env: dhcpOn(map[string]string{"HERD_EDGE_DHCP_ARM_FILE": strings.Repeat("a", 128)}),
			wantErr: []string{"dhcp_arm_file", "127 bytes"}},
		{name: "listen on a host name", env: map[string]string{"HERD_EDGE_DHCP_LISTEN": "localhost:6767", "HERD_EDGE_DHCP_MODE": "proxy"},
			wantErr: []string{"dhcp_listen", "IPv4 address"}},
		{name: "listen on all addresses without a server address", env: map[string]string{"HERD_EDGE_DHCP_LISTEN": ":6767", "HERD_EDGE_DHCP_MODE": "proxy"},
			wantErr: []string{"dhcp_server_address: required when dhcp_listen names no host"}},
		{name: "bad values are reported even with DHCP off", env: map[string]string{"HERD_EDGE_DHCP_ROUTER": "x"},
			wantErr: []string{`dhcp_router = "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(validEdge, "dhcp_interfaces =\n", "", 1) + tt.ini
			path, _ := writeConfig(t, body)
			e, err := Load(path, envOf(tt.env))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded with %+v", e)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\n does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want(t, e)
			if err := e.Validate(); err != nil {
				t.Errorf("Validate of a loaded config: %v", err)
			}
		})
	}
}
