package model

import (
	"slices"
	"testing"
)

func TestSyncPolicyFrom(t *testing.T) {
	for _, c := range []struct {
		in   map[string]string
		want SyncPolicy
		ok   bool
	}{
		{nil, DefaultSyncPolicy(), true},
		{map[string]string{"verify": "never", "check_every_boot": "false"},
			SyncPolicy{Verify: "never", Preserve: DefaultSyncPolicy().Preserve}, true},
		{map[string]string{"preserve": " /srv/** ,, /root/.ssh/** "}, SyncPolicy{Verify: "unsure", Preserve: []string{"/srv/**", "/root/.ssh/**"}, CheckEveryBoot: true}, true},
		{map[string]string{"preserve": ""}, SyncPolicy{Verify: "unsure", CheckEveryBoot: true}, true},
		{map[string]string{"verify": "sometimes"}, SyncPolicy{}, false},
		{map[string]string{"preserve": "srv/**"}, SyncPolicy{}, false},
		{map[string]string{"check_every_boot": "often"}, SyncPolicy{}, false},
		{map[string]string{"speed": "fast"}, SyncPolicy{}, false},
	} {
		got, err := SyncPolicyFrom(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if c.ok && (got.Verify != c.want.Verify || got.CheckEveryBoot != c.want.CheckEveryBoot || !slices.Equal(got.Preserve, c.want.Preserve)) {
			t.Errorf("%v: %+v, want %+v", c.in, got, c.want)
		}
	}
}

// FuzzPluginSettings: any settings a client sends are judged without a
// panic, and accepted ones are one-line keys and values.
func FuzzPluginSettings(f *testing.F) {
	f.Add("limits", "nofile", "65536")
	f.Add("sync", "verify", "always")
	f.Add("sync", "preserve", "/a,b")
	f.Add("hosts", "Bad Key", "x\ny")
	f.Fuzz(func(t *testing.T, name, k, v string) {
		p := PluginSettings{Name: name, Settings: map[string]string{k: v}}
		if p.Validate() != nil {
			return
		}
		if !KnownPlugin(name) || !pluginKeyRe.MatchString(k) || len(v) > MaxPluginValue {
			t.Fatalf("accepted %+v", p)
		}
	})
}
