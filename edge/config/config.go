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
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/bigkevmcd/go-configparser"
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
	KeyTFTPListen     = "tftp_listen"
	KeyTFTPRoot       = "tftp_root"
	KeyDHCPInterfaces = "dhcp_interfaces"
)

// Keys lists every key of the [edge] section, in file order.
func Keys() []string {
	return []string{
		KeyListen, KeyFunctionsURL, KeySecretFile, KeyTLSCert, KeyTLSKey,
		KeyTFTPListen, KeyTFTPRoot, KeyDHCPInterfaces,
	}
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
	// TFTPListen is the UDP address of the TFTP server; empty turns TFTP off.
	TFTPListen string
	// TFTPRoot is the directory TFTP serves read-only. It may not exist yet.
	TFTPRoot string
	// DHCPInterfaces are the interfaces to answer DHCP on; none: DHCP off.
	DHCPInterfaces []string
}

// TLS reports whether the HTTP listener serves HTTPS.
func (e Edge) TLS() bool { return e.TLSCert != "" && e.TLSKey != "" }

// TFTP reports whether the TFTP server runs.
func (e Edge) TFTP() bool { return e.TFTPListen != "" }

// DHCP reports whether DHCP is to be answered on any interface.
func (e Edge) DHCP() bool { return len(e.DHCPInterfaces) > 0 }

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
	return cfg, reported, errs
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
	return errs
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
