package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
)

// BenchmarkHosts10k measures the /etc/hosts part of a node plan on a
// cluster of 10,000 nodes: reading every node, and the shared memo.
func BenchmarkHosts10k(b *testing.B) {
	s, _ := openTest(b)
	ctx := context.Background()
	const n = 10000
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			node := model.Node{Name: fmt.Sprintf("node%05d", i), Group: "compute",
				Interfaces: []model.Interface{{Name: "eth0", MAC: testMAC(i), Address: fmt.Sprintf("10.%d.%d.%d/8", i>>16&255, i>>8&255, i&255), Boot: true}},
				Tags:       []string{"rack1"}}
			p.Set(ctx, s.nodeKey(node.Name), mustJSON(node), 0)
			p.ZAdd(ctx, s.key("idx", "node"), redis.Z{Member: node.Name})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			hosts, err := s.hosts(ctx)
			if err != nil || len(hosts) != n {
				b.Fatalf("%d hosts: %v", len(hosts), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/plan")
	})
	b.Run("memo", func(b *testing.B) {
		for b.Loop() {
			hosts, err := s.Hosts(ctx)
			if err != nil || len(hosts) != n {
				b.Fatalf("%d hosts: %v", len(hosts), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/plan")
	})
}
