package plugins

import (
	"context"
	"testing"

	"github.com/herd-hpc/herd/functions/model"
)

// BenchmarkRunUnchanged is the cost of every boot after the first: all
// plugins on a root that already matches (reads and compares only).
func BenchmarkRunUnchanged(b *testing.B) {
	root := b.TempDir()
	plan := testPlan()
	for i := range 1000 {
		plan.Hosts = append(plan.Hosts, model.HostEntry{Name: "n" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)), Address: "10.1.0.1"})
	}
	plan.Plugins = []model.PluginConfig{
		{Name: "hostname"}, {Name: "hosts"}, {Name: "interfaces"},
		{Name: "fstab", Settings: map[string]string{"mounts": "nas:/home /home nfs rw"}},
		{Name: "limits", Settings: map[string]string{"memlock": "unlimited"}},
	}
	set := Set(Fstab{})
	if _, err := Run(context.Background(), root, plan, set, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := Run(context.Background(), root, plan, set, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if len(r.Changed) > 0 {
				b.Fatalf("%s changed %v", r.Plugin, r.Changed)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}
