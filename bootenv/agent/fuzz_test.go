package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/plugins"
	"github.com/herd-hpc/herd/functions/model"
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

// FuzzPlan feeds any JSON to the plan decoder and CheckPlan: no panic,
// and a plan it accepts can be expanded, named and written to fstab, its
// layout's expansion being a valid advanced layout.
func FuzzPlan(f *testing.F) {
	version := "sha256:" + strings.Repeat("ab", 32)
	f.Add(`{"node":"n1","version":"` + version + `","stateless":false,"layout":{"name":"m","mode":"simple","disks":[{"name":"disk0"},{"name":"disk1"}],` +
		`"simple":{"mirror":true,"firmware":"bios","filesystems":[{"mount":"/","type":"ext4","size":"rest"},{"type":"swap","size":"1GiB"}]}}}`)
	f.Add(`{"node":"n1","version":"` + version + `","layout":{"name":"a","mode":"advanced","disks":[{"name":"disk0"}],"advanced":{` +
		`"partitions":[{"disk":"disk0","number":1,"type":"esp","size":"512MiB"},{"disk":"disk0","number":2,"type":"linux","size":"rest"}],` +
		`"filesystems":[{"device":"disk0p1","type":"vfat","mount":"/boot/efi"},{"device":"disk0p2","type":"xfs","mount":"/"}]}}}`)
	f.Add(`{"node":"n1","version":"` + version + `","layout":{"name":"x","mode":"simple","disks":[{"name":"disk0"}]}}`)
	f.Add(`{"version":"sha256:zz","stateless":true}`)
	f.Fuzz(func(t *testing.T, s string) {
		var p model.NodePlan
		if json.Unmarshal([]byte(s), &p) != nil || CheckPlan(p) != nil || p.Stateless {
			return
		}
		a := p.Layout.Expand()
		adv := model.Layout{Name: "expanded", Mode: model.LayoutAdvanced, Disks: p.Layout.Disks, Advanced: a}
		if err := adv.Validate(); err != nil {
			t.Fatalf("layout %s expands to an invalid advanced layout: %v", s, err)
		}
		DeviceNames(a, map[string]string{"disk0": "vda"}, disk.Found{Disks: []disk.Detected{{Name: "vda"}}}, "/boot/herd")
		_, _ = (plugins.Fstab{}).FstabLines(p, nil)
	})
}
