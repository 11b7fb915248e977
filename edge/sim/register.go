package sim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/herd-hpc/herd/functions/client"
	"github.com/herd-hpc/herd/functions/model"
)

// Inventory is the part of herd's API client that registering needs.
type Inventory interface {
	CreateNode(ctx context.Context, n model.Node) (model.Node, error)
	GetNode(ctx context.Context, name string) (model.Node, error)
}

// Registration is what registered nodes get besides their MAC and
// address.
type Registration struct {
	Group string // "" for none
	Image string // "" to inherit the group's
}

// Registered counts what Register did.
type Registered struct {
	Created int
	Existed int
}

// Register makes every node of the rack a node of herd's inventory, with
// its MAC on a boot interface and its reserved address, parallel requests
// at a time. A node that exists already with the same MAC is left as it
// is; one with another MAC is an error, as is a MAC another node has.
func Register(ctx context.Context, inv Inventory, rack Rack, reg Registration, parallel int) (Registered, error) {
	if err := rack.Check(); err != nil {
		return Registered{}, err
	}
	var (
		next, created, existed atomic.Int64
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		firstErr               error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= rack.Nodes || ctx.Err() != nil {
					return
				}
				fresh, err := registerOne(ctx, inv, rack.Node(i), reg)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				if fresh {
					created.Add(1)
				} else {
					existed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return Registered{Created: int(created.Load()), Existed: int(existed.Load())}, firstErr
}

func registerOne(ctx context.Context, inv Inventory, n Node, reg Registration) (created bool, err error) {
	_, err = inv.CreateNode(ctx, n.Model(reg))
	if err == nil {
		return true, nil
	}
	if !client.IsStatus(err, http.StatusConflict) {
		return false, fmt.Errorf("register %s (%s): %w", n.Name, n.MAC, err)
	}
	have, gerr := inv.GetNode(ctx, n.Name)
	if gerr != nil {
		// The conflict is not the name: the MAC belongs to another node.
		return false, fmt.Errorf("register %s (%s): %w", n.Name, n.MAC, err)
	}
	for _, i := range have.Interfaces {
		if strings.EqualFold(string(i.MAC), n.MAC.String()) {
			return false, nil
		}
	}
	return false, fmt.Errorf("register %s: a node of that name exists with other MACs; remove it or pick another -name-prefix", n.Name)
}
