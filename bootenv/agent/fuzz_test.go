package agent

import (
	"strings"
	"testing"
)

// FuzzParseCmdline checks that any command line parses without a panic
// and that an accepted one names a valid session and an http(s) server.
func FuzzParseCmdline(f *testing.F) {
	f.Add("herd.session=" + sid + " herd.server=http://10.0.0.1:8080 herd.token=t herd.debug")
	f.Add(`a="b c" "d`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCmdline(s)
		if err != nil {
			return
		}
		if len(c.Session) != 32 || !strings.HasPrefix(c.Server, "http") || c.Token == "" {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}
