package sim

import (
	"context"
	"fmt"
	"time"
)

// WaitReserved asks for a lease for node i, again every interval, until it
// gets the node's reserved address or timeout passes. The edge learns new
// reservations from functions after a short cache time; a storm that starts
// before then would meet registered nodes as unknown ones.
func WaitReserved(ctx context.Context, dhcp *DHCPConn, cfg Config, i int, timeout, interval time.Duration) error {
	node := cfg.Rack.Node(i)
	if !node.Addr.IsValid() {
		return nil
	}
	deadline := time.Now().Add(timeout)
	// Transaction ids past the ones the storm uses (0 and 1 per node).
	for n := 2; ; n++ {
		a := Asker{MAC: node.MAC, XID: NodeXID(cfg.Seed, i, n), Relay: dhcp.Relay(), Stage: StagePXE, Firmware: cfg.Firmware}
		lease, _, err := DORA(ctx, dhcp, a, []time.Duration{interval})
		if err == nil && lease.Addr == node.Addr {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s (%s) did not get its reserved %s within %s: %w", node.Name, node.MAC, node.Addr, timeout, err)
			}
			return fmt.Errorf("%s (%s) got %s, not its reserved %s, within %s", node.Name, node.MAC, lease.Addr, node.Addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
