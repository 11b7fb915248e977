package testenv

import (
	"bytes"
	"sync"
)

// Logs collects log output written from many goroutines, for tests that
// check what a server logged (pass it to slog.NewJSONHandler).
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
