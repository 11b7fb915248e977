package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Sink that keeps chunks by sequence number, like the
// server does, and can be made to fail or stall.
type recorder struct {
	mu     sync.Mutex
	chunks map[uint64][]byte
	order  []uint64
	fail   int           // fail this many posts first
	block  chan struct{} // when set, posts wait on it
}

func (r *recorder) AppendConsole(ctx context.Context, session string, seq uint64, p []byte) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("server down")
	}
	if r.chunks == nil {
		r.chunks = map[uint64][]byte{}
	}
	if _, seen := r.chunks[seq]; !seen {
		r.chunks[seq] = bytes.Clone(p)
		r.order = append(r.order, seq)
	}
	return nil
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, s := range r.order {
		if i > 0 && s <= r.order[i-1] {
			return "out of order"
		}
		b.Write(r.chunks[s])
	}
	return b.String()
}

func TestStreamDeliversInOrder(t *testing.T) {
	var local bytes.Buffer
	rec := &recorder{fail: 2}
	s := start(New(&local, Options{FlushEvery: 5 * time.Millisecond, ChunkSize: 64, Backoff: time.Millisecond}), rec)
	var want strings.Builder
	for i := range 200 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := s.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if local.String() != want.String() {
		t.Error("local console differs from what was written")
	}
	if got := rec.text(); got != want.String() {
		t.Errorf("server got %q…, want every line in order", got[:min(len(got), 80)])
	}
	st := s.Stats()
	if st.Retries != 2 || st.Dropped != 0 || st.Chunks < 2 {
		t.Errorf("stats %+v", st)
	}
	for _, seq := range rec.order {
		if len(rec.chunks[seq]) > 64 {
			t.Errorf("chunk %d has %d bytes, more than ChunkSize", seq, len(rec.chunks[seq]))
		}
	}
	if rec.order[0] != 1 {
		t.Errorf("first chunk is %d, want 1", rec.order[0])
	}
	// After Close, output still reaches the local console only.
	s.Write([]byte("after\n"))
	if !strings.HasSuffix(local.String(), "after\n") || strings.Contains(rec.text(), "after") {
		t.Error("write after Close went to the wrong place")
	}
}

// TestStreamDropsOldestWhenServerStalls checks that writes do not wait for
// a stalled server and that the oldest output gives way, with a marker.
func TestStreamDropsOldestWhenServerStalls(t *testing.T) {
	rec := &recorder{block: make(chan struct{})}
	s := start(New(nil, Options{FlushEvery: time.Millisecond, ChunkSize: 100, MaxBuffer: 1000}), rec)
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			fmt.Fprintf(s, "%04d\n", i) // 5000 bytes in all
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked on a stalled server")
	}
	close(rec.block)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.text()
	if !strings.Contains(got, "bytes dropped") {
		t.Fatalf("no drop marker in %q", got)
	}
	if !strings.HasSuffix(got, "0999\n") {
		t.Errorf("the newest output was lost: ends %q", got[max(0, len(got)-20):])
	}
	st := s.Stats()
	if st.Dropped == 0 || st.Written != 5000 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamGivesUpOnDeadServer(t *testing.T) {
	rec := &recorder{fail: 1 << 30}
	s := start(New(nil, Options{FlushEvery: time.Millisecond, Attempts: 2, Backoff: time.Millisecond}), rec)
	s.Write([]byte("hello\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err == nil {
		t.Error("Close hid that output was lost")
	}
	if s.Stats().Dropped == 0 {
		t.Error("nothing counted as dropped")
	}
}

func BenchmarkStreamWrite(b *testing.B) {
	rec := &recorder{}
	s := start(New(nil, Options{}), rec)
	line := []byte(strings.Repeat("x", 79) + "\n")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		s.Write(line)
	}
	s.Close(context.Background())
}

func start(s *Stream, sink Sink) *Stream {
	s.Start(sink, "sess")
	return s
}

// TestStreamSendsWhatCameBeforeStart checks that output printed before the
// network is up reaches the server once the stream starts.
func TestStreamSendsWhatCameBeforeStart(t *testing.T) {
	var local bytes.Buffer
	s := New(&local, Options{FlushEvery: time.Millisecond})
	s.Write([]byte("early\n"))
	rec := &recorder{}
	s.Start(rec, "sess")
	s.Write([]byte("late\n"))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.text() != "early\nlate\n" || local.String() != "early\nlate\n" {
		t.Errorf("server %q, local %q", rec.text(), local.String())
	}
}
