package power_test

import (
	"strings"
	"testing"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/functions/model"
)

func TestParseState(t *testing.T) {
	for in, want := range map[string]model.PowerState{
		"Chassis Power is on\n":  model.PowerStateOn,
		"Chassis Power is off\n": model.PowerStateOff,
		"On":                     model.PowerStateOn,
		"Off":                    model.PowerStateOff,
		"PoweringOn":             model.PowerStateOn,
		"PoweringOff":            model.PowerStateOff,
		"1":                      model.PowerStateOn,
		"0":                      model.PowerStateOff,
		"":                       model.PowerStateUnknown,
		"Paused":                 model.PowerStateUnknown,
		"Error: Unable to establish IPMI v2 / RMCP+ session": model.PowerStateUnknown,
	} {
		if got := power.ParseState(in); got != want {
			t.Errorf("ParseState(%q) = %q; want %q", in, got, want)
		}
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"Chassis Power is on", "Off", "PoweringOn", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch power.ParseState(s) {
		case model.PowerStateOn, model.PowerStateOff, model.PowerStateUnknown:
		default:
			t.Fatalf("ParseState(%q) left the three states", s)
		}
	})
}

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, in := range []string{"sha256:" + hex, hex, "SHA256:" + strings.ToUpper(hex), colons, "sha256:" + colons} {
		got, err := power.ParseFingerprint(in)
		if err != nil || len(got) != 32 || got[0] != 0xab {
			t.Errorf("ParseFingerprint(%q) = %x, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "sha256:", "sha1:" + hex, hex[:40], strings.Repeat("zz", 32), "md5:abcd"} {
		if _, err := power.ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted a value that is not a SHA-256", in)
		}
	}
	if _, err := power.TLSConfig("sha256:nope"); err == nil {
		t.Error("TLSConfig accepted a malformed pin")
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add(strings.Repeat("AB:", 31) + "AB")
	f.Fuzz(func(t *testing.T, s string) {
		if sum, err := power.ParseFingerprint(s); err == nil && len(sum) != 32 {
			t.Fatalf("ParseFingerprint(%q) returned %d bytes", s, len(sum))
		}
	})
}
