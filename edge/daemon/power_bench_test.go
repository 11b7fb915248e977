package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power/redfishsim"
	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// BenchmarkPowerJob1000 is `herd power status` and `herd power cycle`
// across 1,000 Redfish BMCs (each request held 50 ms, as a BMC on a busy
// network answers) the whole way: the job through functions, the edge
// claiming and driving the BMCs, the results back. It reports the wall
// time per job and nodes/s; the edge runs 128 operations at once.
func BenchmarkPowerJob1000(b *testing.B) {
	const nodes = 1000
	ctx := context.Background()
	sim := redfishsim.Start(b, redfishsim.Options{BMCs: nodes, Password: "bench-secret", Latency: 50 * time.Millisecond, On: true})
	fns, ecfg := startFunctions(b)
	ecfg.PowerTimeout = 30 * time.Second
	addrs, _, _, _ := start(b, ecfg)

	user, pw, _, err := fns.Auth.EnsureFirstAdmin(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	api := client.New("http://"+addrs.HTTP.String(), "", nil)
	lr, err := api.Login(ctx, user, pw)
	if err != nil {
		b.Fatal(err)
	}
	api = api.WithToken(lr.Token)
	if _, err := api.SetSecret(ctx, "bmc", "bench-secret"); err != nil {
		b.Fatal(err)
	}
	for i := range nodes {
		n := model.Node{Name: fmt.Sprintf("node%04d", i+1), Settings: model.Settings{PowerMethod: model.PowerRedfish},
			BMC: model.BMC{Address: sim.Address(i), Username: "admin", CredentialRef: "bmc", Fingerprint: sim.Fingerprint()}}
		if _, err := api.CreateNode(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	for _, action := range []model.PowerAction{model.PowerStatus, model.PowerCycle} {
		b.Run(string(action), func(b *testing.B) {
			for b.Loop() {
				job, err := api.CreatePowerJob(ctx, model.PowerRequest{Action: action, Nodes: model.NodeSelection{"node[0001-1000]"}}, "")
				if err != nil {
					b.Fatal(err)
				}
				if job, err = api.FollowPowerJob(ctx, job.ID, func(model.PowerJob) {}); err != nil {
					b.Fatal(err)
				}
				if job.Counts.OK != nodes {
					b.Fatalf("%s: %+v", action, job.Counts)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/job")
			b.ReportMetric(float64(nodes*b.N)/b.Elapsed().Seconds(), "nodes/s")
		})
	}
}
