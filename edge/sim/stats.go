package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Outcome is how far a node got.
type Outcome string

// Outcomes of one node's boot.
const (
	OutcomeBooted    Outcome = "booted"    // known node: script with a kernel, artifacts and events done
	OutcomeWaiting   Outcome = "waiting"   // known node told to wait for what it lacks (an image) and ask again
	OutcomeDiscovery Outcome = "discovery" // unknown node: told to wait and ask again
	OutcomeStopped   Outcome = "stopped"   // reached the step the run stops at (-until)
	OutcomeFailed    Outcome = "failed"
)

// Result is one node's boot, as the runner measured it. Durations are from
// the node's first DISCOVER; zero means the step was not reached.
type Result struct {
	Node     int
	Outcome  Outcome
	Err      error
	Started  time.Time
	Lease    time.Duration // first DORA done
	TFTP     time.Duration // iPXE binary fetched
	Lease2   time.Duration // iPXE's DORA done
	Script   time.Duration // boot script received
	Finished time.Duration // everything done
	// Leases counts acknowledgements received (one per DORA).
	Leases int
	// DHCPRetries counts DHCP packets sent again after a timeout.
	DHCPRetries int
	// TFTPRetransmits counts TFTP packets (request or ACK) sent again;
	// TFTPTimeouts counts transfers given up.
	TFTPRetransmits int
	TFTPTimeouts    int
	TFTPBytes       int64
	BlockSize       int // negotiated TFTP block size
}

// Stats sums results as they come in; safe for concurrent use.
type Stats struct {
	mu       sync.Mutex
	start    time.Time
	end      time.Time
	nodes    int
	started  int
	results  []Result
	outcomes map[Outcome]int
	errors   map[Kind]int
	samples  map[Kind][]string
	leases   int
	retries  int
	retrans  int
	timeouts int
	tftp     int64
	blksize  map[int]int
}

// NewStats prepares to count a run of n nodes.
func NewStats(n int) *Stats {
	return &Stats{nodes: n, outcomes: map[Outcome]int{}, errors: map[Kind]int{}, samples: map[Kind][]string{}, blksize: map[int]int{}}
}

// Start marks a node's first DISCOVER.
func (s *Stats) Start(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start.IsZero() || at.Before(s.start) {
		s.start = at
	}
	s.started++
}

// Add records a finished node.
func (s *Stats) Add(r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, r)
	s.outcomes[r.Outcome]++
	if r.Err != nil {
		k := KindOf(r.Err)
		s.errors[k]++
		if len(s.samples[k]) < 3 {
			s.samples[k] = append(s.samples[k], fmt.Sprintf("node %d: %v", r.Node, r.Err))
		}
	}
	s.leases += r.Leases
	s.retries += r.DHCPRetries
	s.retrans += r.TFTPRetransmits
	s.timeouts += r.TFTPTimeouts
	s.tftp += r.TFTPBytes
	if r.BlockSize > 0 {
		s.blksize[r.BlockSize]++
	}
	if end := r.Started.Add(r.Finished); end.After(s.end) {
		s.end = end
	}
}

// Progress is a snapshot for the progress line.
type Progress struct {
	Elapsed  time.Duration
	Started  int
	Done     int
	Leases   int
	Failed   int
	Nodes    int
	Outcomes map[Outcome]int
}

// Progress returns the counts so far.
func (s *Stats) Progress(now time.Time) Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Progress{Started: s.started, Done: len(s.results), Leases: s.leases, Failed: s.outcomes[OutcomeFailed],
		Nodes: s.nodes, Outcomes: maps.Clone(s.outcomes)}
	if !s.start.IsZero() {
		p.Elapsed = now.Sub(s.start)
	}
	return p
}

func (p Progress) String() string {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Leases) / p.Elapsed.Seconds()
	}
	return fmt.Sprintf("%6.1fs  started %d/%d  done %d (booted %d, waiting %d, discovery %d, failed %d)  leases %d (%.0f/s)",
		p.Elapsed.Seconds(), p.Started, p.Nodes, p.Done, p.Outcomes[OutcomeBooted], p.Outcomes[OutcomeWaiting],
		p.Outcomes[OutcomeDiscovery], p.Failed, p.Leases, rate)
}

// Latency holds percentiles of one duration over all nodes that reached it.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary is a run's figures, as printed and as -json writes them.
type Summary struct {
	Label       string          `json:"label,omitempty"`
	Nodes       int             `json:"nodes"`
	Duration    float64         `json:"duration_s"` // first DISCOVER to last node done
	Leases      int             `json:"leases"`
	LeasesPerS  float64         `json:"leases_per_s"`
	NodesPerS   float64         `json:"nodes_per_s"`
	Outcomes    map[Outcome]int `json:"outcomes"`
	Lease       Latency         `json:"lease"`      // first DISCOVER → first ACK
	TFTP        Latency         `json:"tftp"`       // first DISCOVER → iPXE binary fetched
	Lease2      Latency         `json:"ipxe_lease"` // first DISCOVER → iPXE's ACK
	Script      Latency         `json:"script"`     // first DISCOVER → boot script
	Finished    Latency         `json:"finished"`   // first DISCOVER → all done
	DHCPRetries int             `json:"dhcp_retries"`
	Retransmits int             `json:"tftp_retransmits"`
	Timeouts    int             `json:"tftp_timeouts"`
	TFTPBytes   int64           `json:"tftp_bytes"`
	BlockSizes  map[int]int     `json:"tftp_block_sizes,omitempty"`
	Errors      map[Kind]int    `json:"errors"`
	Samples     []string        `json:"error_samples,omitempty"`
}

// Failures is the number of nodes that failed.
func (s Summary) Failures() int { return s.Outcomes[OutcomeFailed] }

// Summary computes the figures of the results so far.
func (s *Stats) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{
		Nodes: s.nodes, Leases: s.leases, Outcomes: maps.Clone(s.outcomes), Errors: maps.Clone(s.errors),
		DHCPRetries: s.retries, Retransmits: s.retrans, Timeouts: s.timeouts, TFTPBytes: s.tftp,
		BlockSizes: maps.Clone(s.blksize),
	}
	if !s.start.IsZero() && s.end.After(s.start) {
		d := s.end.Sub(s.start)
		sum.Duration = d.Seconds()
		sum.LeasesPerS = float64(s.leases) / d.Seconds()
		sum.NodesPerS = float64(len(s.results)-s.outcomes[OutcomeFailed]) / d.Seconds()
	}
	pick := func(f func(Result) time.Duration) Latency {
		var ds []time.Duration
		for _, r := range s.results {
			if d := f(r); d > 0 {
				ds = append(ds, d)
			}
		}
		return Percentiles(ds)
	}
	sum.Lease = pick(func(r Result) time.Duration { return r.Lease })
	sum.TFTP = pick(func(r Result) time.Duration { return r.TFTP })
	sum.Lease2 = pick(func(r Result) time.Duration { return r.Lease2 })
	sum.Script = pick(func(r Result) time.Duration { return r.Script })
	sum.Finished = pick(func(r Result) time.Duration {
		if r.Err != nil {
			return 0
		}
		return r.Finished
	})
	for _, k := range slices.Sorted(maps.Keys(s.samples)) {
		sum.Samples = append(sum.Samples, s.samples[k]...)
	}
	return sum
}

// Percentiles sorts ds and returns its nearest-rank percentiles in
// milliseconds.
func Percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		i = max(0, min(i, len(ds)-1))
		return ms(ds[i])
	}
	return Latency{Count: len(ds), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Write prints the summary for people.
func (s Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "%s%d nodes in %.2fs: %d leases, %.0f leases/s, %.0f nodes/s\n",
		labelPrefix(s.Label), s.Nodes, s.Duration, s.Leases, s.LeasesPerS, s.NodesPerS)
	var outs []string
	for _, o := range []Outcome{OutcomeBooted, OutcomeWaiting, OutcomeDiscovery, OutcomeStopped, OutcomeFailed} {
		if n := s.Outcomes[o]; n > 0 || o == OutcomeFailed {
			outs = append(outs, fmt.Sprintf("%s %d", o, n))
		}
	}
	fmt.Fprintf(w, "  outcomes: %s\n", strings.Join(outs, ", "))
	fmt.Fprintf(w, "  %-22s %8s %9s %9s %9s %9s\n", "from first DISCOVER to", "count", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, row := range []struct {
		name string
		l    Latency
	}{{"lease (PXE)", s.Lease}, {"iPXE binary (TFTP)", s.TFTP}, {"lease (iPXE)", s.Lease2}, {"boot script", s.Script}, {"done", s.Finished}} {
		if row.l.Count == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-22s %8d %9.1f %9.1f %9.1f %9.1f\n", row.name, row.l.Count, row.l.P50, row.l.P90, row.l.P99, row.l.Max)
	}
	var sizes []string
	for _, b := range slices.Sorted(maps.Keys(s.BlockSizes)) {
		sizes = append(sizes, fmt.Sprintf("%d×%d", b, s.BlockSizes[b]))
	}
	fmt.Fprintf(w, "  DHCP retries %d; TFTP retransmits %d, timeouts %d, %d bytes", s.DHCPRetries, s.Retransmits, s.Timeouts, s.TFTPBytes)
	if len(sizes) > 0 {
		fmt.Fprintf(w, ", block size %s", strings.Join(sizes, " "))
	}
	fmt.Fprintln(w)
	if len(s.Errors) == 0 {
		fmt.Fprintln(w, "  errors: none")
		return
	}
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		errs = append(errs, fmt.Sprintf("%s %d", k, s.Errors[k]))
	}
	fmt.Fprintf(w, "  errors: %s\n", strings.Join(errs, ", "))
	for _, e := range s.Samples {
		fmt.Fprintf(w, "    %s\n", e)
	}
}

func labelPrefix(l string) string {
	if l == "" {
		return ""
	}
	return l + ": "
}

// JSON writes the summary as one JSON object.
func (s Summary) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
