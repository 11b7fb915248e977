package agent

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Cmdline is what bootenv reads from the kernel command line: the names
// functions/boot's script puts there (herd.session, herd.server,
// herd.token) and a few for people debugging a boot.
type Cmdline struct {
	Session string // herd.session
	Server  string // herd.server: base URL of the edge, no trailing slash
	Token   string // herd.token: the session's boot token
	// Debug (herd.debug) drops to a shell instead of rebooting when a
	// step fails.
	Debug bool
	// Init (herd.init) is the image's init to exec instead of
	// /sbin/init. Not the kernel's init=: that one picks bootenv itself.
	Init string
	// Args holds every key=value (and bare key, with "") as given.
	Args map[string]string
}

// ErrCmdline is returned for a command line bootenv cannot boot from.
var ErrCmdline = errors.New("kernel command line")

// SplitCmdline splits a kernel command line into words as the kernel
// does: blanks separate, double quotes group (and are dropped).
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	in, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			in, have = !in, true
		case !in && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ParseCmdline reads /proc/cmdline's content and checks that herd's part
// is there and well formed.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Args: map[string]string{}}
	for _, w := range SplitCmdline(s) {
		k, v, _ := strings.Cut(w, "=")
		c.Args[k] = v
	}
	c.Session, c.Server, c.Token, c.Init = c.Args["herd.session"], strings.TrimRight(c.Args["herd.server"], "/"), c.Args["herd.token"], c.Args["herd.init"]
	if v, ok := c.Args["herd.debug"]; ok {
		c.Debug = v == "" || v == "1" || v == "true" || v == "yes"
	}
	var missing []string
	for _, k := range []string{"herd.session", "herd.server", "herd.token"} {
		if c.Args[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("%w: %s missing (was this machine booted by herd?)", ErrCmdline, strings.Join(missing, ", "))
	}
	if !model.ValidBootSessionID(c.Session) {
		return c, fmt.Errorf("%w: herd.session=%q is not a session id", ErrCmdline, c.Session)
	}
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("%w: herd.server=%q is not an http(s) URL", ErrCmdline, c.Server)
	}
	if c.Init != "" && !path.IsAbs(c.Init) {
		return c, fmt.Errorf("%w: herd.init=%q is not an absolute path", ErrCmdline, c.Init)
	}
	return c, nil
}
