package model

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestNodeSelection(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`"node[001-004]"`, []string{"node[001-004]"}, true},
		{`["node001", "@gpu"]`, []string{"node001", "@gpu"}, true},
		{`42`, nil, false},
		{`{"a": 1}`, nil, false},
	} {
		var s NodeSelection
		err := json.Unmarshal([]byte(tc.in), &s)
		if (err == nil) != tc.ok || !slices.Equal(s, tc.want) {
			t.Errorf("%s: %v, %v", tc.in, s, err)
		}
	}
}

func TestPowerRequestValidate(t *testing.T) {
	good := PowerRequest{Action: PowerCycle, Nodes: NodeSelection{"n1"}, Method: PowerPDU, CycleWait: "10s"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := PowerRequest{Action: "explode", Method: "smoke", CycleWait: "1h"}
	err := bad.Validate()
	for _, f := range []string{"action", "method", "nodes", "cycle_wait"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("no problem with %s: %v", f, err)
		}
	}
	if err := (SecretValue{Value: strings.Repeat("s3cr3t", 1000)}).Validate(); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("long secret: %v", err)
	}
}

func FuzzPowerRequest(f *testing.F) {
	f.Add(`{"action": "on", "nodes": "node[1-4]", "method": "pdu", "force": true, "cycle_wait": "5s"}`)
	f.Add(`{"action": "off", "nodes": ["a", "b"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var r PowerRequest
		if json.Unmarshal([]byte(s), &r) != nil {
			return
		}
		if r.Validate() == nil {
			if len(r.Nodes) == 0 {
				t.Fatalf("valid without nodes: %+v", r)
			}
			if d, err := r.CycleWaitDuration(); err != nil || d < 0 || d > MaxCycleWait {
				t.Fatalf("valid with cycle wait %v %v", d, err)
			}
		}
	})
}
