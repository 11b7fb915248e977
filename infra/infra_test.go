package infra

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bigkevmcd/go-configparser"
	"gopkg.in/yaml.v3"
)

// root is the repository, seen from this package's folder.
const root = ".."

const lambdaPkg = "github.com/aws/aws-lambda-go/lambda"

// systemBinaries are the programs herd's units run that herd does not build.
var systemBinaries = []string{"redis-server", "minio"}

// routeOwner says which function serves a path: the first prefix that
// matches. Pages are everything else. A new function adds its prefix here.
func routeOwner(p string) string {
	for _, r := range []struct{ prefix, function string }{
		{"/api/v1/", "api"},
		{"/boot/", "boot"},
	} {
		if strings.HasPrefix(p, r.prefix) {
			return r.function
		}
	}
	return "ui"
}

// --- herd.ini -----------------------------------------------------------

func readINI(t *testing.T) *configparser.ConfigParser {
	t.Helper()
	p, err := configparser.NewConfigParserFromFile("herd.ini")
	if err != nil {
		t.Fatalf("parse infra/herd.ini: %v", err)
	}
	return p
}

func iniGet(t *testing.T, p *configparser.ConfigParser, section, key string) string {
	t.Helper()
	v, err := p.Get(section, key)
	if err != nil {
		t.Fatalf("infra/herd.ini: [%s] %s: %v", section, key, err)
	}
	return v
}

func TestHerdINI(t *testing.T) {
	p := readINI(t)
	for _, s := range []string{"functions", "edge"} {
		if !p.HasSection(s) {
			t.Errorf("infra/herd.ini has no [%s] section", s)
		}
	}
	// The edge forwards to where functions listens.
	listen := iniGet(t, p, "functions", "listen")
	u, err := url.Parse(iniGet(t, p, "edge", "functions_url"))
	if err != nil || u.Host != listen {
		t.Errorf("[edge] functions_url %v does not point at [functions] listen %s", u, listen)
	}
}

// --- systemd units ------------------------------------------------------

// unit is a parsed systemd unit file: section → key → values, in order
// (keys may repeat).
type unit map[string]map[string][]string

func (u unit) get(section, key string) []string { return u[section][key] }

// parseUnit reads the subset of systemd's unit syntax herd's units use:
// [Section] headers, Key=Value lines, # and ; comments, and lines continued
// with a trailing backslash.
func parseUnit(path string) (unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	n := 0
	var cont string
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line = cont + " " + line
			cont = ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSpace(strings.TrimSuffix(line, `\`))
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: bad section header %q", path, n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: not Key=Value: %q", path, n, line)
			}
			if section == "" {
				return nil, fmt.Errorf("%s:%d: %q outside a section", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if cont != "" {
		return nil, fmt.Errorf("%s: ends in a continued line", path)
	}
	return u, sc.Err()
}

func units(t *testing.T) map[string]unit {
	t.Helper()
	paths, err := filepath.Glob("systemd/*.service")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no systemd units in infra/systemd (err %v)", err)
	}
	us := map[string]unit{}
	for _, p := range paths {
		u, err := parseUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		us[filepath.Base(p)] = u
	}
	return us
}

// execStart returns the one command line of a unit, without systemd's
// prefix characters (-, @, :, +, !).
func execStart(t *testing.T, name string, u unit) []string {
	t.Helper()
	lines := u.get("Service", "ExecStart")
	if len(lines) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", name, len(lines))
	}
	argv := strings.Fields(lines[0])
	argv[0] = strings.TrimLeft(argv[0], "-@:+!")
	return argv
}

func flagValue(argv []string, name string) (string, bool) {
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestSystemdUnits(t *testing.T) {
	ini := readINI(t)
	us := units(t)
	for _, want := range []string{"herd-functions.service", "herd-edge.service", "herd-redis.service", "herd-minio.service"} {
		if us[want] == nil {
			t.Errorf("infra/systemd/%s is missing", want)
		}
	}
	for name, u := range us {
		t.Run(name, func(t *testing.T) {
			for _, s := range []string{"Unit", "Service", "Install"} {
				if u[s] == nil {
					t.Errorf("no [%s] section", s)
				}
			}
			for key, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"} {
				if got := u.get("Service", key); !slices.Equal(got, []string{want}) {
					t.Errorf("%s = %v, want %s", key, got, want)
				}
			}
			for _, key := range []string{"After", "Wants", "Requires", "Conflicts"} {
				for _, v := range u.get("Unit", key) {
					for _, dep := range strings.Fields(v) {
						if !strings.HasSuffix(dep, ".target") && us[dep] == nil && dep != "redis-server.service" {
							t.Errorf("%s=%s: no such unit in infra/systemd", key, dep)
						}
					}
				}
			}
			argv := execStart(t, name, u)
			bin := path.Base(argv[0])
			switch {
			case strings.HasPrefix(bin, "herd-"):
				if argv[0] != "/usr/local/bin/"+bin {
					t.Errorf("ExecStart runs %s, want /usr/local/bin/%s", argv[0], bin)
				}
				checkHerdBinary(t, bin)
				cfg, ok := flagValue(argv, "--config")
				if !ok {
					t.Fatalf("ExecStart %v has no --config", argv)
				}
				if cfg != "/etc/herd/herd.ini" {
					t.Errorf("--config %s, want /etc/herd/herd.ini (infra/herd.ini)", cfg)
				}
				if section := strings.TrimPrefix(bin, "herd-"); !ini.HasSection(section) {
					t.Errorf("%s reads [%s], which infra/herd.ini does not have", bin, section)
				}
			case slices.Contains(systemBinaries, bin):
			default:
				t.Errorf("ExecStart runs %s: neither a herd command (functions/cmd, edge/cmd) nor one of %v", argv[0], systemBinaries)
			}
			for _, env := range u.get("Service", "EnvironmentFile") {
				example, _ := filepath.Glob("*/" + path.Base(strings.TrimPrefix(env, "-")) + ".example")
				if len(example) == 0 {
					t.Errorf("EnvironmentFile=%s: no infra/*/%s.example to make it from", env, path.Base(env))
				}
			}
		})
	}
}

// checkHerdBinary checks that herd builds bin: functions/cmd/BIN or
// edge/cmd/BIN is a main package.
func checkHerdBinary(t *testing.T, bin string) {
	t.Helper()
	for _, dir := range []string{"functions/cmd/" + bin, "edge/cmd/" + bin} {
		if files := mainFiles(t, filepath.Join(root, dir)); len(files) > 0 {
			return
		}
	}
	t.Errorf("%s: no main package in functions/cmd/%[1]s or edge/cmd/%[1]s", bin)
}

func TestEdgeCapabilities(t *testing.T) {
	u := units(t)["herd-edge.service"]
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		caps := strings.Fields(strings.Join(u.get("Service", key), " "))
		slices.Sort(caps)
		if !slices.Equal(caps, []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}) {
			t.Errorf("herd-edge %s = %v, want CAP_NET_BIND_SERVICE CAP_NET_RAW (DHCP and TFTP), nothing more", key, caps)
		}
	}
	for name, u := range units(t) {
		if name != "herd-edge.service" && strings.Join(u.get("Service", "AmbientCapabilities"), "") != "" {
			t.Errorf("%s has ambient capabilities; only herd-edge needs any", name)
		}
	}
}

// TestRedisAndMinIO checks the stores' units against herd.ini: the
// functions must find them where they are configured, and Redis must keep
// every write.
func TestRedisAndMinIO(t *testing.T) {
	ini := readINI(t)
	us := units(t)

	argv := execStart(t, "herd-redis.service", us["herd-redis.service"])
	if len(argv) < 2 || !strings.HasPrefix(argv[1], "/etc/herd/") {
		t.Fatalf("herd-redis ExecStart %v: want redis-server /etc/herd/FILE.conf", argv)
	}
	conf := readRedisConf(t, filepath.Join("redis", path.Base(argv[1])))
	for key, want := range map[string]string{
		"appendonly": "yes", "appendfsync": "always", "protected-mode": "yes", "maxmemory-policy": "noeviction",
	} {
		if got := conf[key]; got != want {
			t.Errorf("herd-redis.conf: %s %q, want %q", key, got, want)
		}
	}
	if bind := strings.Fields(conf["bind"]); len(bind) == 0 || bind[0] != "127.0.0.1" {
		t.Errorf("herd-redis.conf: bind %q, want 127.0.0.1 first", conf["bind"])
	}
	ru, err := url.Parse(iniGet(t, ini, "functions", "redis_url"))
	if err != nil || ru.Port() != conf["port"] || ru.Hostname() != "127.0.0.1" {
		t.Errorf("[functions] redis_url %v, but herd-redis listens on 127.0.0.1:%s", ru, conf["port"])
	}

	argv = execStart(t, "herd-minio.service", us["herd-minio.service"])
	addr, ok := flagValue(argv, "--address")
	if host, _, err := net.SplitHostPort(addr); !ok || err != nil || host != "127.0.0.1" {
		t.Errorf("herd-minio --address %q, want 127.0.0.1:PORT", addr)
	}
	if ep := iniGet(t, ini, "functions", "s3_endpoint"); ep != addr {
		t.Errorf("[functions] s3_endpoint %s, but herd-minio listens on %s", ep, addr)
	}
}

// readRedisConf reads "directive args…" lines.
func readRedisConf(t *testing.T, p string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	conf := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		conf[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return conf
}

// --- SAM template -------------------------------------------------------

// key returns the value under k in mapping node n, or nil.
func key(n *yaml.Node, k string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return n.Content[i+1]
		}
	}
	return nil
}

// at follows keys down from n.
func at(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = key(n, k)
	}
	return n
}

// entries returns a mapping's keys and values in order.
func entries(n *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
	}
	return out
}

// readTemplate parses the template into nodes, so CloudFormation's short
// tags (!Ref, !Sub, !GetAtt) need no types of their own.
func readTemplate(t *testing.T) *yaml.Node {
	t.Helper()
	data, err := os.ReadFile("aws/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse infra/aws/template.yaml: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		t.Fatal("infra/aws/template.yaml: not one YAML document")
	}
	return doc.Content[0]
}

// function is one AWS::Serverless::Function of the template.
type function struct {
	logicalID, name string
	props           *yaml.Node
}

func functions(t *testing.T, tpl *yaml.Node) []function {
	t.Helper()
	var fns []function
	for _, r := range entries(key(tpl, "Resources")) {
		if at(r[1], "Type").Value != "AWS::Serverless::Function" {
			continue
		}
		props := key(r[1], "Properties")
		uri := key(props, "CodeUri")
		if uri == nil || uri.Kind != yaml.ScalarNode {
			t.Fatalf("%s: no CodeUri folder", r[0].Value)
		}
		// CodeUri is relative to the template: ../../out/lambda/NAME is
		// where `make lambda` puts functions/cmd/NAME as bootstrap.
		rel := filepath.ToSlash(filepath.Clean(filepath.Join("aws", uri.Value)))
		name, ok := strings.CutPrefix(rel, "../out/lambda/")
		if !ok || strings.Contains(name, "/") {
			t.Errorf("%s: CodeUri %s, want ../../out/lambda/NAME (the output of make lambda)", r[0].Value, uri.Value)
		}
		fns = append(fns, function{logicalID: r[0].Value, name: name, props: props})
	}
	if len(fns) == 0 {
		t.Fatal("infra/aws/template.yaml defines no functions")
	}
	return fns
}

func TestSAMTemplate(t *testing.T) {
	tpl := readTemplate(t)
	if v := at(tpl, "Transform").Value; v != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform %q, want AWS::Serverless-2016-10-31", v)
	}
	globals := at(tpl, "Globals", "Function")
	prop := func(f function, k string) *yaml.Node {
		if n := key(f.props, k); n != nil {
			return n
		}
		return key(globals, k)
	}
	for _, f := range functions(t, tpl) {
		t.Run(f.name, func(t *testing.T) {
			for k, want := range map[string]string{"Handler": "bootstrap", "Runtime": "provided.al2023"} {
				if n := prop(f, k); n == nil || n.Value != want {
					t.Errorf("%s: %s is not %s", f.logicalID, k, want)
				}
			}
			if n := prop(f, "Architectures"); n == nil || len(n.Content) != 1 || n.Content[0].Value != "x86_64" {
				t.Errorf("%s: Architectures is not [x86_64]", f.logicalID)
			}
			checkLambdaMain(t, f.name)
			for _, e := range entries(key(f.props, "Events")) {
				if at(e[1], "Type").Value != "HttpApi" {
					continue
				}
				p := at(e[1], "Properties", "Path").Value
				if owner := routeOwner(p); owner != f.name {
					t.Errorf("%s: event %s routes %s to %s, but %s is served by %s", f.logicalID, e[0].Value, p, f.name, p, owner)
				}
			}
		})
	}
	// Every page and the API are reachable.
	routes := map[string]string{}
	for _, f := range functions(t, tpl) {
		for _, e := range entries(key(f.props, "Events")) {
			routes[at(e[1], "Properties", "Path").Value] = f.name
		}
	}
	for p, want := range map[string]string{"/": "ui", "/{proxy+}": "ui", "/api/v1/{proxy+}": "api"} {
		if routes[p] != want {
			t.Errorf("route %s goes to %q, want %s", p, routes[p], want)
		}
	}
}

// TestSAMEnvironment checks that every HERD_FUNCTIONS_<KEY> the template
// sets is a key of [functions] in herd.ini (or the secret itself, for a
// <key>_file key).
func TestSAMEnvironment(t *testing.T) {
	tpl := readTemplate(t)
	ini := readINI(t)
	keys, err := ini.Options("functions")
	if err != nil {
		t.Fatal(err)
	}
	vars := entries(at(tpl, "Globals", "Function", "Environment", "Variables"))
	for _, f := range functions(t, tpl) {
		vars = append(vars, entries(at(f.props, "Environment", "Variables"))...)
	}
	if len(vars) == 0 {
		t.Fatal("the template sets no environment")
	}
	for _, v := range vars {
		k, ok := strings.CutPrefix(v[0].Value, "HERD_FUNCTIONS_")
		k = strings.ToLower(k)
		if !ok || !(slices.Contains(keys, k) || slices.Contains(keys, k+"_file")) {
			t.Errorf("environment %s sets no [functions] key of herd.ini", v[0].Value)
		}
	}
}

// TestSAMReferences checks that !Ref, !GetAtt and !Sub name parameters,
// resources or AWS pseudo parameters.
func TestSAMReferences(t *testing.T) {
	tpl := readTemplate(t)
	known := map[string]bool{}
	for _, sec := range []string{"Parameters", "Resources"} {
		for _, e := range entries(key(tpl, sec)) {
			known[e[0].Value] = true
		}
	}
	check := func(name string, n *yaml.Node) {
		if !known[name] && !strings.HasPrefix(name, "AWS::") {
			t.Errorf("line %d: %s refers to %q, which the template does not define", n.Line, n.Tag, name)
		}
	}
	subVar := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Tag {
		case "!Ref":
			check(n.Value, n)
		case "!GetAtt":
			if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
				check(n.Content[0].Value, n)
			} else {
				check(strings.SplitN(n.Value, ".", 2)[0], n)
			}
		case "!Sub":
			if n.Kind == yaml.ScalarNode {
				for _, m := range subVar.FindAllStringSubmatch(n.Value, -1) {
					check(strings.SplitN(m[1], ".", 2)[0], n)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(tpl)
}

// checkLambdaMain checks that functions/cmd/NAME is a main package that
// starts a Lambda handler: it calls lambda.Start of aws-lambda-go, or a
// Start… function of a herd package that does.
func checkLambdaMain(t *testing.T, name string) {
	t.Helper()
	dir := filepath.Join(root, "functions", "cmd", name)
	files := mainFiles(t, dir)
	if len(files) == 0 {
		t.Errorf("function %s: functions/cmd/%s has no main package", name, name)
		return
	}
	if !startsLambda(t, files, 2) {
		t.Errorf("function %s: functions/cmd/%s does not call lambda.Start (or a herd Start that does)", name, name)
	}
}

func modulePath(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no module line")
	}
	return string(m[1])
}

// mainFiles parses the non-test Go files of dir if they are package main.
func mainFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	files := parseDir(t, dir)
	for _, f := range files {
		if f.Name.Name != "main" {
			return nil
		}
	}
	return files
}

func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var files []*ast.File
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parse %s: %v", p, err)
			continue
		}
		files = append(files, f)
	}
	return files
}

// startsLambda reports whether files call lambda.Start*, directly or, up to
// depth packages away, through a Start* function of a package of this
// module.
func startsLambda(t *testing.T, files []*ast.File, depth int) bool {
	mod := modulePath(t)
	found := false
	for _, f := range files {
		imports := map[string]string{}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			name := path.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = p
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || found {
				return !found
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "Start") {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch p := imports[x.Name]; {
			case p == lambdaPkg:
				found = true
			case depth > 0 && strings.HasPrefix(p, mod+"/"):
				dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(p, mod+"/")))
				found = startsLambda(t, parseDir(t, dir), depth-1)
			}
			return !found
		})
	}
	return found
}

func TestParseUnit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.service")
	os.WriteFile(p, []byte("# c\n[Service]\nA=1\nA=2\n; c\nExecStart=/bin/x \\\n  --flag\n[Install]\nWantedBy=multi-user.target\n"), 0o600)
	u, err := parseUnit(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.get("Service", "A"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("A = %v", got)
	}
	if got := u.get("Service", "ExecStart"); !slices.Equal(got, []string{"/bin/x --flag"}) {
		t.Errorf("ExecStart = %q", got)
	}
	for _, bad := range []string{"A=1\n", "[Service]\nno equals\n", "[Service\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := parseUnit(p); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}
