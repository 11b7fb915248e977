// Package console is bootenv's output: everything it prints goes to the
// machine's own console at once and, live, to the boot session's console
// on the server, in numbered chunks. The server side never slows the
// boot: chunks are sent from a goroutine, and when the server cannot keep
// up the oldest unsent output is dropped and a marker says how much.
package console

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Sink receives the console: AppendConsole appends chunk seq (1, 2, …) of
// the session's console. A chunk sent again with the same seq is not
// appended twice, so a post whose answer was lost can be retried.
type Sink interface {
	AppendConsole(ctx context.Context, session string, seq uint64, p []byte) error
}

// Options tune a Stream. The zero value takes the defaults.
type Options struct {
	// FlushEvery is how long output waits before it is sent; 200 ms.
	FlushEvery time.Duration
	// ChunkSize is the most one post carries, and the amount that is sent
	// at once without waiting for FlushEvery; 32 KiB.
	ChunkSize int
	// MaxBuffer bounds the output waiting to be sent; beyond it the
	// oldest is dropped. 4 MiB.
	MaxBuffer int
	// Attempts is how often one chunk is posted before it is given up
	// (and counted as dropped); 5.
	Attempts int
	// Backoff is the wait after the first failed post, doubled after each
	// next one up to 5 s; 250 ms.
	Backoff time.Duration
	// PostTimeout bounds one post; 10 s.
	PostTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.FlushEvery <= 0 {
		o.FlushEvery = 200 * time.Millisecond
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = 32 << 10
	}
	if o.MaxBuffer <= 0 {
		o.MaxBuffer = 4 << 20
	}
	if o.MaxBuffer < o.ChunkSize {
		o.MaxBuffer = o.ChunkSize
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.PostTimeout <= 0 {
		o.PostTimeout = 10 * time.Second
	}
	return o
}

// Stats counts what a Stream did.
type Stats struct {
	Written uint64 // bytes written to the stream
	Sent    uint64 // bytes of output the sink accepted
	Dropped uint64 // bytes of output never sent
	Chunks  uint64 // chunks the sink accepted
	Retries uint64 // failed posts
}

// Stream is an io.Writer that copies to a local writer and to a Sink. It
// is safe for concurrent use; writes never wait for the sink.
type Stream struct {
	local   io.Writer
	sink    Sink
	session string
	opt     Options

	mu      sync.Mutex
	pending []byte
	dropped int // bytes dropped from the front of pending since the last chunk
	closed  bool
	stats   Stats
	wake    chan struct{} // a full chunk is waiting
	stop    chan struct{} // Close: flush what is left and end
	done    chan struct{} // the sender ended
	lastErr error
}

// New returns a console stream: output goes to local (nil for none) at
// once, and is kept (within MaxBuffer) for the server until Start
// connects it, so what is printed before the network is up is sent too.
func New(local io.Writer, opt Options) *Stream {
	return &Stream{
		local: local, opt: opt.withDefaults(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start begins sending to sink as session's console. It is called once;
// a stream closed first sends nothing.
func (s *Stream) Start(sink Sink, session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil || s.closed {
		return
	}
	s.sink, s.session = sink, session
	go s.send()
}

// Write writes p to the local console and queues it for the sink. It
// fails only when the local console does; after Close only the local
// console gets the output.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.local != nil {
		// Under the lock: output of concurrent writers stays whole and in
		// the same order on both sides.
		_, err = s.local.Write(p)
	}
	s.stats.Written += uint64(len(p))
	if s.closed {
		return len(p), err
	}
	s.pending = append(s.pending, p...)
	if over := len(s.pending) - s.opt.MaxBuffer; over > 0 {
		s.drop(over)
	}
	if s.sink != nil && len(s.pending) >= s.opt.ChunkSize {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return len(p), err
}

// drop forgets the oldest n pending bytes. Caller holds mu.
func (s *Stream) drop(n int) {
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.dropped += n
	s.stats.Dropped += uint64(n)
}

// DropMarker is the line that stands for n bytes of output never sent.
func DropMarker(n int) string { return fmt.Sprintf("\r\n[… %d bytes dropped …]\r\n", n) }

// next takes the next chunk: the drop marker if output was dropped, then
// up to ChunkSize bytes. Caller holds mu.
func (s *Stream) next() []byte {
	var c []byte
	if s.dropped > 0 {
		c = append(c, DropMarker(s.dropped)...)
		s.dropped = 0
	}
	n := min(len(s.pending), max(s.opt.ChunkSize-len(c), 0))
	c = append(c, s.pending[:n]...)
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return c
}

// send posts chunks until Close, then what is left.
func (s *Stream) send() {
	defer close(s.done)
	tick := time.NewTicker(s.opt.FlushEvery)
	defer tick.Stop()
	var seq uint64 = 1
	stopping := false
	for {
		if !stopping {
			select {
			case <-tick.C:
			case <-s.wake:
			case <-s.stop:
				stopping = true
			}
		}
		for {
			s.mu.Lock()
			if len(s.pending) == 0 && s.dropped == 0 {
				s.mu.Unlock()
				break
			}
			c := s.next()
			s.mu.Unlock()
			if !s.post(seq, c) {
				if stopping {
					return
				}
				// Sending failed: keep the rest for the next tick rather
				// than hammering a server that is down.
				seq++
				break
			}
			seq++
			if !stopping && len(c) < s.opt.ChunkSize {
				break
			}
		}
		if stopping {
			return
		}
	}
}

// post sends one chunk, retrying with backoff. A chunk given up counts as
// dropped; the next chunk takes the next number anyway, since the server
// may have appended this one and only the answer was lost.
func (s *Stream) post(seq uint64, c []byte) bool {
	wait := s.opt.Backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.opt.PostTimeout)
		err := s.sink.AppendConsole(ctx, s.session, seq, c)
		cancel()
		s.mu.Lock()
		if err == nil {
			s.stats.Sent += uint64(len(c))
			s.stats.Chunks++
			s.mu.Unlock()
			return true
		}
		s.stats.Retries++
		s.lastErr = err
		if attempt >= s.opt.Attempts {
			s.dropped += len(c)
			s.stats.Dropped += uint64(len(c))
			s.mu.Unlock()
			return false
		}
		s.mu.Unlock()
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
}

// Close stops the stream: what is pending is sent until ctx ends, and
// later writes go only to the local console. It returns the last error of
// the sink when output was lost.
func (s *Stream) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		if s.sink == nil {
			close(s.done) // never started: nothing to send to
		}
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("close console stream of session %s: %w", s.session, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats.Dropped > 0 && s.lastErr != nil {
		return fmt.Errorf("console stream of session %s lost %d bytes: %w", s.session, s.stats.Dropped, s.lastErr)
	}
	return nil
}

// Stats returns what the stream did so far.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
