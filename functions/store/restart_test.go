package store_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// redisProc is a redis-server of the test's own, with AOF fsync always as
// the appliance runs it, so it can be killed and started again.
type redisProc struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *redisProc) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rdb.Close()
	for range 100 {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not start")
}

func (r *redisProc) kill() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// TestRedisRestartLeavesNoHalfWrites kills Redis while nodes are being
// created and checks afterwards that every node is whole: object, name
// index, MAC index and audit event together, or none of them; and that
// every create that was answered with success survived.
func TestRedisRestartLeavesNoHalfWrites(t *testing.T) {
	r := &redisProc{t: t, bin: testenv.RedisServer(t), dir: t.TempDir(), port: freePort(t)}
	r.start()
	t.Cleanup(r.kill)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0", r.port), Prefix: "herd"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Workers create nodes until told to stop; Redis is killed once some
	// creates went through and started again, and the workers stop only
	// once more creates succeeded after the restart, so the restart falls
	// among the writes however fast or slow this machine is.
	const workers = 4
	var mu sync.Mutex
	succeeded := map[string]bool{}
	failed := 0
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(succeeded), failed
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("n%d-%05d", w, i)
				mac := model.MAC(fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", w, i>>16&0xff, i>>8&0xff, i&0xff))
				_, err := st.CreateNode(ctx, store.Actor{User: "t"}, model.Node{Name: name, Interfaces: []model.Interface{{Name: "eth0", MAC: mac}}})
				mu.Lock()
				if err == nil {
					succeeded[name] = true
				} else {
					failed++
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	waitFor := func(what string, ok func(ok, failed int) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if n, f := count(); ok(n, f) {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				n, f := count()
				t.Fatalf("%s: not after 30s (%d succeeded, %d failed)", what, n, f)
			}
		}
	}
	waitFor("creates before the restart", func(n, _ int) bool { return n >= 100 })
	r.kill()
	waitFor("a create failing while Redis is down", func(_, f int) bool { return f > 0 })
	r.start()
	before, _ := count()
	waitFor("creates after the restart", func(n, _ int) bool { return n >= before+100 })
	close(stop)
	wg.Wait()
	n, failedN := count()
	t.Logf("%d creates succeeded, %d failed cleanly while Redis restarted", n, failedN)

	rdb, prefix := st.Redis()
	names, err := rdb.ZRange(ctx, prefix+"idx:node", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	indexed := map[string]bool{}
	for _, n := range names {
		indexed[n] = true
	}
	events, err := st.Audit(ctx, store.AuditQuery{Kind: "node", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]int{}
	for _, ev := range events.Items {
		audited[ev.Refs[0]]++
	}
	keys, err := rdb.Keys(ctx, prefix+"node:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(names) || len(events.Items) != len(names) {
		t.Errorf("%d node objects, %d indexed, %d audit events: a write was split", len(keys), len(names), len(events.Items))
	}
	for name := range succeeded {
		if !indexed[name] {
			t.Errorf("create of %s was answered with success but is gone", name)
		}
	}
	for _, name := range names {
		n, err := st.GetNode(ctx, name)
		if err != nil {
			t.Errorf("indexed node %s unreadable: %v", name, err)
			continue
		}
		owner, err := st.NodeByMAC(ctx, n.Interfaces[0].MAC)
		if err != nil || owner.Name != name {
			t.Errorf("MAC index of %s: %v %v", name, owner.Name, err)
		}
		if audited["node/"+name] != 1 {
			t.Errorf("node %s has %d audit events", name, audited["node/"+name])
		}
	}
}
