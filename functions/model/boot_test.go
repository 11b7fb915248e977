package model

import (
	"strings"
	"testing"
	"time"
)

func TestNextBootState(t *testing.T) {
	for _, c := range []struct {
		cur  BootState
		ev   BootEvent
		want BootState
	}{
		{BootScriptSent, BootEvent{Step: "console", State: EventStart}, BootRunning},
		{BootScriptSent, BootEvent{Step: "ipxe", State: EventInfo}, BootScriptSent},
		{BootRunning, BootEvent{Step: "disks", State: EventOK}, BootRunning},
		{BootRunning, BootEvent{Step: "disks", State: EventFail}, BootFailed},
		{BootFailed, BootEvent{Step: "disks", State: EventInfo}, BootFailed},
		{BootFailed, BootEvent{Step: "disks", State: EventStart}, BootRunning}, // retried
		{BootRunning, BootEvent{Step: StepDone, State: EventOK}, BootDone},
		{BootRunning, BootEvent{Step: StepDone, State: EventStart}, BootRunning},
		{BootWaiting, BootEvent{Step: "ipxe", State: EventInfo}, BootWaiting},
	} {
		if got := NextBootState(c.cur, c.ev); got != c.want {
			t.Errorf("%s + %s/%s = %s, want %s", c.cur, c.ev.Step, c.ev.State, got, c.want)
		}
	}
}

func TestBootInterface(t *testing.T) {
	for _, c := range []struct {
		name        string
		ifaces      []Interface
		want        string
		isNew, boot bool
	}{
		{"no interfaces", nil, "eth0", true, true},
		{"boot interface free", []Interface{{Name: "eth0", MAC: "52:54:00:00:00:01"}, {Name: "eth1", Boot: true}}, "eth1", false, true},
		{"boot interface taken", []Interface{{Name: "eth0", MAC: "52:54:00:00:00:01", Boot: true}, {Name: "ib0"}}, "eth1", true, false},
		{"no boot interface, one free", []Interface{{Name: "eth0", MAC: "52:54:00:00:00:01"}, {Name: "eno2"}}, "eno2", false, true},
		{"no boot interface, none free", []Interface{{Name: "eth0", MAC: "52:54:00:00:00:01"}, {Name: "eth1", MAC: "52:54:00:00:00:02"}}, "eth2", true, true},
		{"gaps", []Interface{{Name: "eth1", MAC: "52:54:00:00:00:01", Boot: true}}, "eth0", true, false},
	} {
		name, isNew, boot := BootInterface(Node{Name: "n", Interfaces: c.ifaces})
		if name != c.want || isNew != c.isNew || boot != c.boot {
			t.Errorf("%s: %s new=%v boot=%v, want %s new=%v boot=%v", c.name, name, isNew, boot, c.want, c.isNew, c.boot)
		}
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"  Dell Inc.  ":            "Dell Inc.",
		"a\x00b\x1b[2Jc\nd\u0085e": "ab[2Jcde",
		"bad \xff utf8":            "bad  utf8",
		strings.Repeat("é", 10):    "éééé", // 8 bytes fit in 9, never half a character
	} {
		if got := CleanText(in, 9); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBootEventValidate(t *testing.T) {
	ok := BootEvent{Step: "disks", State: EventOK, Message: "fine", DurationMS: 3, Extras: map[string]string{"k": "v"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []BootEvent{
		{Step: "", State: EventOK},
		{Step: "Disks", State: EventOK},
		{Step: "-x", State: EventOK},
		{Step: strings.Repeat("a", 65), State: EventOK},
		{Step: "disks"},
		{Step: "disks", State: "maybe"},
		{Step: "disks", State: EventOK, Message: strings.Repeat("m", 4097)},
		{Step: "disks", State: EventOK, DurationMS: -1},
		{Step: "disks", State: EventOK, Extras: map[string]string{"": "v"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v passed", bad)
		}
	}
}

func TestAssignRequestValidate(t *testing.T) {
	for _, c := range []struct {
		req AssignRequest
		ok  bool
	}{
		{AssignRequest{Node: "node001"}, true},
		{AssignRequest{Node: "node042", Create: true, Group: "compute"}, true},
		{AssignRequest{Node: ""}, false},
		{AssignRequest{Node: "node001", Group: "compute"}, false},
		{AssignRequest{Node: "node001", Create: true, Group: "bad group"}, false},
	} {
		if err := c.req.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.req, err)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "", -time.Second: "", 340 * time.Millisecond: "340ms", 4240 * time.Millisecond: "4.2s", 45 * time.Second: "45s",
		125 * time.Second: "2m05s", 62 * time.Minute: "1h02m",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBootSessionTook(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := BootSession{Started: start, Updated: start.Add(40 * time.Second), State: BootRunning}
	if got := s.Took(start.Add(time.Minute)); got != time.Minute {
		t.Errorf("running session took %v", got)
	}
	s.State = BootDone
	if !s.Ended() || s.Took(start.Add(time.Hour)) != 40*time.Second {
		t.Errorf("done session: ended %v took %v", s.Ended(), s.Took(start.Add(time.Hour)))
	}
}
