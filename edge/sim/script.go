package sim

import (
	"bufio"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Script is what a simulated iPXE makes of a script: the commands that
// matter to a network boot, with ${…} settings already expanded.
type Script struct {
	// Chain is the target of the first chain (or imgexec) command; empty
	// when there is none.
	Chain string
	// Kernel is the URL of the kernel command's image, KernelArgs the
	// command line after it; Initrds the images of initrd commands (module
	// is iPXE's alias), in order.
	Kernel     string
	KernelArgs []string
	Initrds    []string
	// Sleep is the total of sleep commands before the chain or boot.
	Sleep time.Duration
	// Boot says the script ends by booting what it loaded.
	Boot bool
	// Unknown lists commands this parser does not follow (echo, set, …
	// are taken in their stride and not listed).
	Unknown []string
}

// Boot parameters herd puts on the kernel command line.
const (
	ParamSession = "herd.session"
	ParamServer  = "herd.server"
	ParamToken   = "herd.token"
)

// Param returns the value of key=value on the kernel command line.
func (s Script) Param(key string) (string, bool) {
	for _, a := range s.KernelArgs {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Settings are the iPXE settings a script may use, by name without the
// ${}: mac, net0/mac, buildarch, platform, uuid, ip, …
type Settings map[string]string

// ParseScript reads an iPXE script. It must start with #!ipxe. Settings
// are expanded as iPXE would, with the :hex, :hexhyp, :hexraw and
// :uristring types; an unknown setting expands to nothing, as in iPXE.
// Lines are joined at a trailing backslash; a ":label" line and the "||" or
// "&&" parts of a line are read as if each command ran and succeeded.
func ParseScript(body string, set Settings) (Script, error) {
	var s Script
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	var pending string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if first {
			first = false
			if !strings.HasPrefix(strings.TrimSpace(line), "#!ipxe") {
				return s, fmt.Errorf("not an iPXE script: first line %q, want #!ipxe", truncate(line, 60))
			}
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\")
			continue
		}
		line, pending = pending+line, ""
		for _, cmd := range splitCommands(line) {
			done, err := s.command(cmd, set)
			if err != nil {
				return s, err
			}
			if done {
				return s, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read script: %w", err)
	}
	if first {
		return s, fmt.Errorf("empty script")
	}
	return s, nil
}

// splitCommands cuts a line at "||" and "&&" and drops comments.
func splitCommands(line string) []string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ":") {
		return nil
	}
	var out []string
	for _, a := range strings.Split(line, "||") {
		for _, b := range strings.Split(a, "&&") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// command applies one command; done means the script hands over (chain or
// boot) and nothing after it runs.
func (s *Script) command(cmd string, set Settings) (done bool, err error) {
	args, err := expandFields(cmd, set)
	if err != nil || len(args) == 0 {
		return false, err
	}
	name, args := args[0], args[1:]
	// Options such as --name NAME or --autofree come before the image.
	var image string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--") || (strings.HasPrefix(a, "-") && len(a) == 2) {
			if optionTakesValue(a) {
				i++
			}
			continue
		}
		image, rest = a, args[i+1:]
		break
	}
	switch name {
	case "kernel", "imgselect", "imgload", "load":
		if image == "" {
			return false, fmt.Errorf("%s without an image", name)
		}
		s.Kernel, s.KernelArgs = image, rest
	case "initrd", "module", "imgfetch", "fetch":
		if image == "" {
			return false, fmt.Errorf("%s without an image", name)
		}
		s.Initrds = append(s.Initrds, image)
	case "imgargs":
		// imgargs IMAGE ARGS…: arguments for an image loaded before.
		if len(rest) > 0 || image != "" {
			s.KernelArgs = rest
		}
	case "chain", "imgexec", "exec":
		if image == "" {
			return false, fmt.Errorf("%s without an image", name)
		}
		if s.Kernel != "" && name != "chain" {
			s.Boot = true
			return true, nil
		}
		s.Chain = image
		return true, nil
	case "boot":
		s.Boot = true
		return true, nil
	case "sleep":
		if image == "" {
			return false, nil
		}
		n, err := strconv.Atoi(image)
		if err != nil || n < 0 {
			return false, fmt.Errorf("sleep %q: not a number of seconds", image)
		}
		s.Sleep += time.Duration(n) * time.Second
	case "echo", "set", "prompt", "dhcp", "ifopen", "ifconf", "ifstat", "isset", "iseq", "goto",
		"shell", "imgfree", "imgstat", "clear", "console", "colour", "cpair", "params", "param",
		"ntp", "sync", "route":
	case "exit", "reboot", "poweroff":
		s.Unknown = append(s.Unknown, name)
		return true, nil
	default:
		s.Unknown = append(s.Unknown, name)
	}
	return false, nil
}

// optionTakesValue tells the image commands' options that take the next
// word as their value (iPXE's --name, --timeout and their short forms)
// when it is not given with '='.
func optionTakesValue(opt string) bool {
	switch opt {
	case "--name", "-n", "--timeout", "-t":
		return true
	}
	return false
}

// expandFields splits a command into words, honouring double quotes, and
// expands ${…} in each.
func expandFields(cmd string, set Settings) ([]string, error) {
	var out []string
	var b strings.Builder
	inQuote, inWord := false, false
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case (c == ' ' || c == '\t') && !inQuote:
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		case c == '$' && i+1 < len(cmd) && cmd[i+1] == '{':
			end := strings.IndexByte(cmd[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ${ in %q", truncate(cmd, 80))
			}
			b.WriteString(expandSetting(cmd[i+2:i+2+end], set))
			i += 2 + end
			inWord = true
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unclosed quote in %q", truncate(cmd, 80))
	}
	if inWord {
		out = append(out, b.String())
	}
	return out, nil
}

// expandSetting returns the value of one setting such as net0/mac:hexhyp.
func expandSetting(ref string, set Settings) string {
	name, typ, _ := strings.Cut(ref, ":")
	v, ok := set[name]
	if !ok {
		// net0/mac and mac are the same on a one-NIC node; iPXE also
		// knows settings by scope (netX/…), so try the bare name.
		if _, bare, cut := strings.Cut(name, "/"); cut {
			v, ok = set[bare]
		}
	}
	if !ok {
		return ""
	}
	switch typ {
	case "hexhyp":
		return strings.ReplaceAll(v, ":", "-")
	case "hexraw":
		return strings.ReplaceAll(v, ":", "")
	case "uristring":
		return url.QueryEscape(v)
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
