// Package config turns the [edge] section of herd.ini, with HERD_EDGE_<KEY>
// environment overrides, into a typed and validated Edge.
//
// Only main (and the all-in-one runner, which builds an Edge itself) should
// call it: every other edge package receives the values it needs.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bigkevmcd/go-configparser"

	"github.com/herd-hpc/herd/edge/dhcp"
)

const (
	// Section is the INI section the edge reads.
	Section = "edge"
	// EnvPrefix starts the environment variable that overrides a key:
	// HERD_EDGE_ plus the key in upper case, e.g. HERD_EDGE_FUNCTIONS_URL.
	EnvPrefix = "HERD_EDGE_"
	// SecretEnv gives the shared secret itself instead of edge_secret_file;
	// the all-in-one runner uses it so no secret file is needed in dev.
	SecretEnv = "HERD_EDGE_SECRET"
)

// Keys of the [edge] section.
const (
	KeyListen         = "listen"
	KeyFunctionsURL   = "functions_url"
	KeySecretFile     = "edge_secret_file"
	KeyTLSCert        = "tls_cert"
	KeyTLSKey         = "tls_key"
	KeyPKIDir         = "pki_dir"
	KeyTFTPListen     = "tftp_listen"
	KeyTFTPRoot       = "tftp_root"
	KeyDHCPInterfaces = "dhcp_interfaces"

	KeyDHCPListen         = "dhcp_listen"
	KeyDHCPMode           = "dhcp_mode"
	KeyDHCPSubnet         = "dhcp_subnet"
	KeyDHCPDiscoveryPool  = "dhcp_discovery_pool"
	KeyDHCPRouter         = "dhcp_router"
	KeyDHCPDNS            = "dhcp_dns"
	KeyDHCPDomain         = "dhcp_domain"
	KeyDHCPLease          = "dhcp_lease"
	KeyDHCPDiscoveryLease = "dhcp_discovery_lease"
	KeyDHCPServerAddress  = "dhcp_server_address"
	KeyBootURL            = "boot_url"
	KeyDHCPBIOSFile       = "dhcp_bios_file"
	KeyDHCPUEFIFile       = "dhcp_uefi_file"
	KeyDHCPARMFile        = "dhcp_arm_file"

	KeyPower            = "power"
	KeyPowerParallelism = "power_parallelism"
	KeyPowerTimeout     = "power_timeout"
)

// Keys lists every key of the [edge] section, in file order.
func Keys() []string {
	return []string{
		KeyListen, KeyFunctionsURL, KeySecretFile, KeyTLSCert, KeyTLSKey, KeyPKIDir,
		KeyTFTPListen, KeyTFTPRoot, KeyDHCPInterfaces,
		KeyDHCPListen, KeyDHCPMode, KeyDHCPSubnet, KeyDHCPDiscoveryPool, KeyDHCPRouter,
		KeyDHCPDNS, KeyDHCPDomain, KeyDHCPLease, KeyDHCPDiscoveryLease, KeyDHCPServerAddress,
		KeyBootURL, KeyDHCPBIOSFile, KeyDHCPUEFIFile, KeyDHCPARMFile,
		KeyPower, KeyPowerParallelism, KeyPowerTimeout,
	}
}

// DHCPMode is how the edge takes part in DHCP.
type DHCPMode string

const (
	// DHCPServer: the edge is the segment's DHCP server (the default).
	DHCPServer DHCPMode = "server"
	// DHCPProxy: the site keeps its DHCP server; the edge answers PXE
	// clients with boot options only (proxyDHCP).
	DHCPProxy DHCPMode = "proxy"
)

// AddrRange is an inclusive range of IPv4 addresses, written start-end.
type AddrRange struct {
	Start, End netip.Addr
}

// IsValid reports whether the range is set.
func (r AddrRange) IsValid() bool { return r.Start.IsValid() && r.End.IsValid() }

func (r AddrRange) String() string {
	if !r.IsValid() {
		return ""
	}
	return r.Start.String() + "-" + r.End.String()
}

// Edge is the edge's configuration.
type Edge struct {
	// Listen is the HTTP(S) address for admins and nodes, host:port.
	Listen string
	// FunctionsURL is where every HTTP request is forwarded (http or https,
	// optionally with a path prefix).
	FunctionsURL *url.URL
	// Secret is sent to functions with every request so they can trust the
	// X-Herd-* headers the edge sets.
	Secret Secret
	// SecretFile is where Secret was read from; informational when the
	// secret came from HERD_EDGE_SECRET.
	SecretFile string
	// TLSCert and TLSKey are PEM files; HTTPS is served when both are set.
	TLSCert string
	TLSKey  string
	// PKIDir is the cluster PKI (herd pki init): when set, HTTPS is served
	// with the edge's certificate from it, and nodes showing a client
	// certificate of its CA are marked as such to functions.
	PKIDir string
	// TFTPListen is the UDP address of the TFTP server; empty turns TFTP off.
	TFTPListen string
	// TFTPRoot is the directory TFTP serves read-only. It may not exist yet.
	TFTPRoot string
	// DHCPInterfaces are the interfaces to answer DHCP on; with neither
	// these nor DHCPListen, DHCP is off.
	DHCPInterfaces []string
	// DHCPListen, host:port, answers DHCP on one socket bound to no
	// interface instead (tests and the simulator, as a relay agent).
	DHCPListen string
	// DHCPMode is server or proxy; empty means server.
	DHCPMode DHCPMode
	// DHCPSubnet is the segment's network; required in server mode.
	DHCPSubnet netip.Prefix
	// DHCPDiscoveryPool is where unknown MACs (and known nodes without a
	// reserved address) get leases; required in server mode.
	DHCPDiscoveryPool AddrRange
	// DHCPRouter, DHCPDNS and DHCPDomain go to known nodes only.
	DHCPRouter netip.Addr
	DHCPDNS    []netip.Addr
	DHCPDomain string
	// DHCPLease (known nodes) and DHCPDiscoveryLease (unknown MACs); zero
	// means edge/dhcp's defaults, 1h and 2m.
	DHCPLease          time.Duration
	DHCPDiscoveryLease time.Duration
	// DHCPServerAddress is the edge's address as nodes reach it (server
	// identifier and next-server); invalid: each interface's first IPv4
	// address, or dhcp_listen's host.
	DHCPServerAddress netip.Addr
	// BootURL is how nodes reach the edge over HTTP, e.g.
	// http://10.0.0.1:8080; nil: http://<server address>:<listen port>.
	BootURL *url.URL
	// Boot files by architecture, in tftp_root; empty means edge/dhcp's
	// defaults (undionly.kpxe, snponly.efi, arm64-efi/snponly.efi).
	DHCPBIOSFile string
	DHCPUEFIFile string
	DHCPARMFile  string
	// PowerOff stops this edge from taking power jobs ("power = off"),
	// for a segment whose BMCs another edge reaches.
	PowerOff bool
	// PowerParallelism is how many power operations run at once; zero
	// means edge/power's default (128).
	PowerParallelism int
	// PowerTimeout bounds one BMC or PDU operation; zero means 30s.
	PowerTimeout time.Duration
}

// TLS reports whether the HTTP listener serves HTTPS.
func (e Edge) TLS() bool { return e.PKIDir != "" || e.TLSCert != "" && e.TLSKey != "" }

// TFTP reports whether the TFTP server runs.
func (e Edge) TFTP() bool { return e.TFTPListen != "" }

// DHCP reports whether DHCP is answered at all: on interfaces, or on
// dhcp_listen.
func (e Edge) DHCP() bool { return len(e.DHCPInterfaces) > 0 || e.DHCPListen != "" }

// DHCPProxy reports whether DHCP runs in proxy mode.
func (e Edge) DHCPProxy() bool { return e.DHCPMode == DHCPProxy }

// Secret is the shared secret between edge and functions. It prints as
// "[redacted]" in logs, errors and fmt output; convert it with string() to
// use it.
type Secret string

const redacted = "[redacted]"

// String hides the secret.
func (Secret) String() string { return redacted }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return redacted }

// LogValue hides the secret from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText hides the secret from encoders.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Error describes one bad setting: where it came from, which key, which
// value, and what is wrong with it.
type Error struct {
	File  string // the INI file; empty for an Edge built in code
	Key   string // the [edge] key
	Env   string // the environment variable the value came from, if any
	Value string // the offending value; never a secret
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "[%s] %s", Section, e.Key)
	if e.Value != "" || e.Env != "" {
		fmt.Fprintf(&b, " = %q", e.Value)
	}
	if e.Env != "" {
		fmt.Fprintf(&b, " (from %s)", e.Env)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// LookupEnv reads one environment variable; os.LookupEnv in main, a map in
// tests.
type LookupEnv func(key string) (string, bool)

// Load reads the [edge] section of the INI file at path, applies
// HERD_EDGE_<KEY> overrides from env, reads the shared secret (from
// HERD_EDGE_SECRET or else edge_secret_file) and validates the result. All
// problems found are returned together, each as an *Error.
func Load(path string, env LookupEnv) (Edge, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	if err := checkBrackets(path); err != nil {
		return Edge{}, err
	}
	p, err := configparser.Parse(path)
	if err != nil {
		return Edge{}, fmt.Errorf("read config %s: %w", path, err)
	}
	if !p.HasSection(Section) {
		return Edge{}, fmt.Errorf("read config %s: no [%s] section", path, Section)
	}
	items, err := p.Items(Section)
	if err != nil {
		return Edge{}, fmt.Errorf("read config %s: %w", path, err)
	}

	var errs []error
	vals := make(map[string]setting, len(Keys()))
	for _, k := range items.Keys() {
		v := items[k]
		// The parser only knows '#' comments; a ';' comment line that
		// contains ':' or '=' comes back as a key.
		if strings.HasPrefix(k, ";") || strings.HasPrefix(k, "#") {
			continue
		}
		key := strings.ToLower(k)
		if !slices.Contains(Keys(), key) {
			errs = append(errs, &Error{File: path, Key: k, Value: v,
				Err: fmt.Errorf("unknown key (known: %s)", strings.Join(Keys(), ", "))})
			continue
		}
		vals[key] = setting{value: v}
	}
	for _, key := range Keys() {
		name := EnvPrefix + strings.ToUpper(key)
		if v, ok := env(name); ok {
			vals[key] = setting{value: v, env: name}
		}
	}

	cfg, reported, decodeErrs := decode(path, vals)
	errs = append(errs, decodeErrs...)
	if err := loadSecret(path, &cfg, vals[KeySecretFile], env); err != nil {
		errs = append(errs, err)
		reported[KeySecretFile] = true
	}
	errs = append(errs, validate(path, cfg, vals, reported)...)
	if len(errs) > 0 {
		return Edge{}, errors.Join(errs...)
	}
	return cfg, nil
}

// checkBrackets refuses lines go-configparser would misread: it takes any
// line with "[...]" in it, even a ';' comment or a value such as
// "[::1]:8080", for a section header and files what follows under it.
func checkBrackets(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		open := strings.IndexByte(line, '[')
		if open >= 0 && strings.IndexByte(line[open+1:], ']') > 0 {
			return fmt.Errorf("read config %s: line %d %q: the INI parser would take the [...] in it for a section header; "+
				"rephrase a comment, or give a value such as an IPv6 address in its environment variable", path, i+1, line)
		}
	}
	return nil
}

// setting is one raw value and the environment variable it came from.
type setting struct {
	value string
	env   string
}

// decode turns raw values into typed fields; what cannot be parsed is
// reported (and its key noted, so validate does not report it again), what
// can be checked only as a whole is left to validate.
func decode(file string, vals map[string]setting) (Edge, map[string]bool, []error) {
	var errs []error
	reported := map[string]bool{}
	bad := func(key string, err error) {
		s := vals[key]
		errs = append(errs, &Error{File: file, Key: key, Env: s.env, Value: s.value, Err: err})
		reported[key] = true
	}
	get := func(key string) string { return strings.TrimSpace(vals[key].value) }

	cfg := Edge{
		Listen:     get(KeyListen),
		SecretFile: get(KeySecretFile),
		TLSCert:    get(KeyTLSCert),
		TLSKey:     get(KeyTLSKey),
		PKIDir:     get(KeyPKIDir),
		TFTPListen: get(KeyTFTPListen),
		TFTPRoot:   get(KeyTFTPRoot),
	}
	if s := get(KeyFunctionsURL); s != "" {
		u, err := url.Parse(s)
		if err != nil {
			bad(KeyFunctionsURL, errors.New("not a URL"))
		} else {
			cfg.FunctionsURL = u
		}
	}
	ifaces, err := parseInterfaces(get(KeyDHCPInterfaces))
	if err != nil {
		bad(KeyDHCPInterfaces, err)
	}
	cfg.DHCPInterfaces = ifaces
	decodeDHCP(&cfg, get, bad)
	return cfg, reported, errs
}

// decodeDHCP reads the DHCP keys; checks that need several keys are
// validate's.
func decodeDHCP(cfg *Edge, get func(string) string, bad func(string, error)) {
	cfg.DHCPListen = get(KeyDHCPListen)
	cfg.DHCPDomain = get(KeyDHCPDomain)
	cfg.DHCPBIOSFile = get(KeyDHCPBIOSFile)
	cfg.DHCPUEFIFile = get(KeyDHCPUEFIFile)
	cfg.DHCPARMFile = get(KeyDHCPARMFile)
	cfg.DHCPMode = DHCPMode(strings.ToLower(get(KeyDHCPMode)))
	if s := get(KeyDHCPSubnet); s != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			bad(KeyDHCPSubnet, errors.New("want an IPv4 network in CIDR form, e.g. 10.0.0.0/16"))
		} else {
			cfg.DHCPSubnet = p
		}
	}
	if s := get(KeyDHCPDiscoveryPool); s != "" {
		r, err := parseRange(s)
		if err != nil {
			bad(KeyDHCPDiscoveryPool, err)
		}
		cfg.DHCPDiscoveryPool = r
	}
	for _, a := range []struct {
		key string
		dst *netip.Addr
	}{{KeyDHCPRouter, &cfg.DHCPRouter}, {KeyDHCPServerAddress, &cfg.DHCPServerAddress}} {
		if s := get(a.key); s != "" {
			v, err := parseIPv4(s)
			if err != nil {
				bad(a.key, err)
			}
			*a.dst = v
		}
	}
	for _, f := range strings.Split(get(KeyDHCPDNS), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parseIPv4(f)
		if err != nil {
			bad(KeyDHCPDNS, fmt.Errorf("%w (separate addresses with commas)", err))
			cfg.DHCPDNS = nil
			break
		}
		cfg.DHCPDNS = append(cfg.DHCPDNS, v)
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{KeyDHCPLease, &cfg.DHCPLease}, {KeyDHCPDiscoveryLease, &cfg.DHCPDiscoveryLease}} {
		if s := get(d.key); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				bad(d.key, errors.New("want a duration such as 1h, 90m or 2m"))
			}
			*d.dst = v
		}
	}
	switch s := strings.ToLower(get(KeyPower)); s {
	case "", "on", "yes", "true":
	case "off", "no", "false":
		cfg.PowerOff = true
	default:
		bad(KeyPower, fmt.Errorf("%q: want on or off", s))
	}
	if s := get(KeyPowerParallelism); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 4096 {
			bad(KeyPowerParallelism, errors.New("want a number from 1 to 4096"))
		}
		cfg.PowerParallelism = n
	}
	if s := get(KeyPowerTimeout); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < time.Second {
			bad(KeyPowerTimeout, errors.New("want a duration of at least 1s, such as 30s"))
		}
		cfg.PowerTimeout = v
	}
	if s := get(KeyBootURL); s != "" {
		u, err := url.Parse(s)
		if err != nil {
			bad(KeyBootURL, errors.New("not a URL"))
		} else {
			cfg.BootURL = u
		}
	}
}

func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// parseRange reads start-end.
func parseRange(s string) (AddrRange, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return AddrRange{}, errors.New("want start-end, e.g. 10.0.200.1-10.0.255.254")
	}
	start, err := parseIPv4(strings.TrimSpace(from))
	if err != nil {
		return AddrRange{}, err
	}
	end, err := parseIPv4(strings.TrimSpace(to))
	if err != nil {
		return AddrRange{}, err
	}
	return AddrRange{Start: start, End: end}, nil
}

// loadSecret fills cfg.Secret from HERD_EDGE_SECRET, or else from the
// secret file.
func loadSecret(file string, cfg *Edge, fileSetting setting, env LookupEnv) error {
	if v, ok := env(SecretEnv); ok {
		if v == "" {
			return fmt.Errorf("%s is set but empty", SecretEnv)
		}
		cfg.Secret = Secret(v)
		return nil
	}
	bad := func(err error) error {
		return &Error{File: file, Key: KeySecretFile, Env: fileSetting.env, Value: cfg.SecretFile, Err: err}
	}
	if cfg.SecretFile == "" {
		return bad(fmt.Errorf("required (or give the secret itself in %s)", SecretEnv))
	}
	b, err := os.ReadFile(cfg.SecretFile)
	if err != nil {
		return bad(fmt.Errorf("read secret: %w", err))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return bad(errors.New("secret file is empty"))
	}
	cfg.Secret = Secret(s)
	return nil
}

// Validate checks an Edge built in code (the all-in-one runner builds its
// own) the same way Load checks one read from a file.
func (e Edge) Validate() error {
	return errors.Join(validate("", e, nil, nil)...)
}

// validate checks the typed values; keys in reported already have an error.
func validate(file string, e Edge, vals map[string]setting, reported map[string]bool) []error {
	var errs []error
	bad := func(key, value string, err error) {
		if reported[key] {
			return
		}
		errs = append(errs, &Error{File: file, Key: key, Env: vals[key].env, Value: value, Err: err})
	}

	if e.Listen == "" {
		bad(KeyListen, "", errors.New("required (host:port, e.g. :8080)"))
	} else if err := checkHostPort(e.Listen); err != nil {
		bad(KeyListen, e.Listen, err)
	}

	switch u := e.FunctionsURL; {
	case u == nil:
		bad(KeyFunctionsURL, "", errors.New("required (e.g. http://127.0.0.1:8081)"))
	default:
		if err := checkFunctionsURL(u); err != nil {
			bad(KeyFunctionsURL, u.Redacted(), err)
		}
	}

	if e.Secret == "" {
		bad(KeySecretFile, e.SecretFile, errors.New("no shared secret"))
	} else if err := checkSecret(string(e.Secret)); err != nil {
		bad(KeySecretFile, e.SecretFile, err)
	}

	switch {
	case e.PKIDir != "" && (e.TLSCert != "" || e.TLSKey != ""):
		bad(KeyPKIDir, e.PKIDir, fmt.Errorf("set either %s or %s and %s, not both", KeyPKIDir, KeyTLSCert, KeyTLSKey))
	case e.TLSCert != "" && e.TLSKey == "":
		bad(KeyTLSKey, "", fmt.Errorf("empty while %s is set: set both or neither", KeyTLSCert))
	case e.TLSCert == "" && e.TLSKey != "":
		bad(KeyTLSCert, "", fmt.Errorf("empty while %s is set: set both or neither", KeyTLSKey))
	}

	if e.TFTPListen != "" {
		if err := checkHostPort(e.TFTPListen); err != nil {
			bad(KeyTFTPListen, e.TFTPListen, err)
		}
		if e.TFTPRoot == "" {
			bad(KeyTFTPRoot, "", fmt.Errorf("required when %s is set", KeyTFTPListen))
		}
	}

	seen := map[string]bool{}
	for _, name := range e.DHCPInterfaces {
		if err := checkInterface(name); err != nil {
			bad(KeyDHCPInterfaces, strings.Join(e.DHCPInterfaces, ","), err)
		} else if seen[name] {
			bad(KeyDHCPInterfaces, strings.Join(e.DHCPInterfaces, ","), fmt.Errorf("interface %q listed twice", name))
		}
		seen[name] = true
	}
	validateDHCP(e, bad)
	return errs
}

// validateDHCP checks the DHCP settings. Values given are always checked;
// what server mode needs is required only while DHCP is on.
func validateDHCP(e Edge, bad func(key, value string, err error)) {
	on := e.DHCP()
	switch e.DHCPMode {
	case "", DHCPServer, DHCPProxy:
	default:
		bad(KeyDHCPMode, string(e.DHCPMode), errors.New("want server or proxy"))
	}
	if e.DHCPListen != "" {
		if err := checkHostPort(e.DHCPListen); err != nil {
			bad(KeyDHCPListen, e.DHCPListen, err)
		} else if host, _, _ := net.SplitHostPort(e.DHCPListen); host != "" {
			if _, err := parseIPv4(host); err != nil {
				bad(KeyDHCPListen, e.DHCPListen, errors.New("the host must be an IPv4 address, e.g. 127.0.0.1:6767"))
			} else if ip := netip.MustParseAddr(host); ip.IsUnspecified() && !e.DHCPServerAddress.IsValid() {
				bad(KeyDHCPServerAddress, "", fmt.Errorf("required when %s names no host: the address nodes reach the edge at", KeyDHCPListen))
			}
		} else if !e.DHCPServerAddress.IsValid() {
			bad(KeyDHCPServerAddress, "", fmt.Errorf("required when %s names no host: the address nodes reach the edge at", KeyDHCPListen))
		}
		if len(e.DHCPInterfaces) > 0 {
			bad(KeyDHCPListen, e.DHCPListen, fmt.Errorf("set %s or %s, not both", KeyDHCPInterfaces, KeyDHCPListen))
		}
	}

	subnet := e.DHCPSubnet
	if subnet.IsValid() {
		switch {
		case !subnet.Addr().Is4():
			bad(KeyDHCPSubnet, subnet.String(), errors.New("want an IPv4 network"))
		case subnet != subnet.Masked():
			bad(KeyDHCPSubnet, subnet.String(), fmt.Errorf("want the network address, %s", subnet.Masked()))
		case subnet.Bits() < 8 || subnet.Bits() > 30:
			bad(KeyDHCPSubnet, subnet.String(), errors.New("prefix length must be from 8 to 30"))
		}
	} else if on && !e.DHCPProxy() {
		bad(KeyDHCPSubnet, "", errors.New("required in server mode (e.g. 10.0.0.0/16)"))
	}

	pool := e.DHCPDiscoveryPool
	if pool.IsValid() {
		if err := checkPool(pool, subnet); err != nil {
			bad(KeyDHCPDiscoveryPool, pool.String(), err)
		}
	} else if on && !e.DHCPProxy() {
		bad(KeyDHCPDiscoveryPool, "", errors.New("required in server mode (start-end, e.g. 10.0.200.1-10.0.255.254)"))
	}

	if r := e.DHCPRouter; r.IsValid() && subnet.IsValid() && !subnet.Contains(r) {
		bad(KeyDHCPRouter, r.String(), fmt.Errorf("not in %s %s", KeyDHCPSubnet, subnet))
	}
	if d := e.DHCPDomain; d != "" && !isHostName(strings.TrimSuffix(d, ".")) {
		bad(KeyDHCPDomain, d, errors.New("not a DNS domain name"))
	}
	for _, l := range []struct {
		key string
		v   time.Duration
	}{{KeyDHCPLease, e.DHCPLease}, {KeyDHCPDiscoveryLease, e.DHCPDiscoveryLease}} {
		if l.v != 0 && (l.v < 10*time.Second || l.v > 0xffffffff*time.Second) {
			bad(l.key, l.v.String(), errors.New("must be from 10s to about 136 years (or empty for the default)"))
		}
	}
	if u := e.BootURL; u != nil {
		if err := checkFunctionsURL(u); err != nil {
			bad(KeyBootURL, u.Redacted(), err)
		} else if n := len(strings.TrimSuffix(u.String(), "/") + "/boot/ipxe"); n > 255 {
			bad(KeyBootURL, u.Redacted(), fmt.Errorf("too long: its boot script URL must fit DHCP option 67 (255 bytes, got %d)", n))
		}
	} else if on {
		if _, port, err := net.SplitHostPort(e.Listen); err == nil && port == "0" {
			bad(KeyBootURL, "", fmt.Errorf("required when %s has port 0: nodes must be told the edge's HTTP port", KeyListen))
		}
	}
	for _, f := range []struct{ key, v string }{
		{KeyDHCPBIOSFile, e.DHCPBIOSFile}, {KeyDHCPUEFIFile, e.DHCPUEFIFile}, {KeyDHCPARMFile, e.DHCPARMFile},
	} {
		if err := checkBootFile(f.v); err != nil {
			bad(f.key, f.v, err)
		}
	}
}

// checkPool wants an IPv4 range inside subnet (when known), not holding
// the subnet's network or broadcast address.
func checkPool(r AddrRange, subnet netip.Prefix) error {
	if r.End.Less(r.Start) {
		return errors.New("start is after end")
	}
	s, e := r.Start.As4(), r.End.As4()
	size := (uint64(s[0])<<24 | uint64(s[1])<<16 | uint64(s[2])<<8 | uint64(s[3]))
	size = (uint64(e[0])<<24 | uint64(e[1])<<16 | uint64(e[2])<<8 | uint64(e[3])) - size + 1
	if size > dhcp.MaxPoolSize {
		return fmt.Errorf("%d addresses, more than the %d supported", size, dhcp.MaxPoolSize)
	}
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return nil
	}
	if !subnet.Contains(r.Start) || !subnet.Contains(r.End) {
		return fmt.Errorf("not inside %s %s", KeyDHCPSubnet, subnet)
	}
	network := subnet.Masked().Addr()
	last := network.As4()
	hostBits := 32 - subnet.Bits()
	for i := 3; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		last[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	if r.Start == network || r.End == netip.AddrFrom4(last) {
		return fmt.Errorf("must not include the network address %s or the broadcast address %s", network, netip.AddrFrom4(last))
	}
	return nil
}

// checkBootFile accepts a TFTP path that fits the DHCP file field.
func checkBootFile(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 127 {
		return errors.New("longer than 127 bytes: it must fit the DHCP file field")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return errors.New("may hold only visible ASCII characters")
		}
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return errors.New("must not contain '..'")
		}
	}
	return nil
}

// checkHostPort accepts host:port with a numeric port; the host may be
// empty (all addresses), an IP literal or a host name.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8080 or :8080")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && net.ParseIP(host) == nil && !isHostName(host) {
		return fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return nil
}

func isHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func checkFunctionsURL(u *url.URL) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http:// or https:// URL")
	case u.Host == "":
		return errors.New("URL has no host")
	case u.User != nil:
		return errors.New("URL must not carry credentials; the edge authenticates with the shared secret")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("URL must not have a query")
	case u.Fragment != "":
		return errors.New("URL must not have a fragment")
	}
	return nil
}

// checkSecret makes sure the secret can travel in an HTTP header.
func checkSecret(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return errors.New("secret may hold only visible ASCII characters (it travels in an HTTP header)")
		}
	}
	return nil
}

// parseInterfaces splits a comma-separated list, dropping blanks.
func parseInterfaces(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.ContainsAny(f, " \t") {
			return nil, fmt.Errorf("%q: separate interfaces with commas", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// checkInterface applies Linux's rules for interface names.
func checkInterface(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	case len(name) > 15:
		return fmt.Errorf("interface name %q is longer than 15 bytes", name)
	case strings.ContainsAny(name, "/:"):
		return fmt.Errorf("interface name %q contains '/' or ':'", name)
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("interface name %q contains a space or control character", name)
		}
	}
	return nil
}
