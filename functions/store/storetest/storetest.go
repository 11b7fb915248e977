// Package storetest opens herd's store on the test Redis that
// localdev/testenv finds, under a key prefix of the test's own, for tests
// outside functions/store.
package storetest

import (
	"context"
	"testing"

	"github.com/herd-hpc/herd/functions/store"
	"github.com/herd-hpc/herd/localdev/testenv"
)

// Open returns the store, closed when the test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{RedisURL: testenv.RedisURL(t), Prefix: testenv.Prefix(t)})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
