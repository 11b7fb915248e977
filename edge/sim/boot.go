package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/herd-hpc/herd/functions/model"
)

// Until is the last step simulated nodes take.
type Until string

// Steps a run can stop after.
const (
	UntilDHCP   Until = "dhcp"   // the firmware's DORA
	UntilTFTP   Until = "tftp"   // … and the iPXE binary over TFTP
	UntilScript Until = "script" // … iPXE's DORA and the boot script
	UntilBoot   Until = "boot"   // … artifacts and boot events
)

// ParseUntil reads a step name.
func ParseUntil(s string) (Until, error) {
	switch u := Until(s); u {
	case UntilDHCP, UntilTFTP, UntilScript, UntilBoot:
		return u, nil
	}
	return "", fmt.Errorf("step %q: want dhcp, tftp, script or boot", s)
}

func (u Until) rank() int {
	switch u {
	case UntilDHCP:
		return 0
	case UntilTFTP:
		return 1
	case UntilScript:
		return 2
	}
	return 3
}

// Expect is what boot script the nodes should get.
type Expect string

// Expectations.
const (
	ExpectAny     Expect = "any"     // whatever script: booted, waiting or discovery all pass
	ExpectBoot    Expect = "boot"    // a script with a kernel
	ExpectKnown   Expect = "known"   // a kernel, or a wait for what the node still lacks (no image yet)
	ExpectUnknown Expect = "unknown" // the discovery script
)

// ParseExpect reads an expectation.
func ParseExpect(s string) (Expect, error) {
	switch e := Expect(s); e {
	case ExpectAny, ExpectBoot, ExpectKnown, ExpectUnknown:
		return e, nil
	}
	return "", fmt.Errorf("expectation %q: want boot, known, unknown or any", s)
}

// Artifacts says how the kernel and initrds a script names are fetched.
type Artifacts string

// Ways to fetch artifacts.
const (
	ArtifactsNone Artifacts = "none"
	ArtifactsHead Artifacts = "head"
	ArtifactsGet  Artifacts = "get"
)

// Event is one boot event a simulated node posts after its script.
type Event struct {
	Step  string
	State model.BootEventState
}

// ParseEvents reads "step:state,step:state".
func ParseEvents(s string) ([]Event, error) {
	var out []Event
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		step, state, ok := strings.Cut(f, ":")
		if !ok {
			state = string(model.EventOK)
		}
		e := model.BootEvent{Step: step, State: model.BootEventState(state)}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("event %q: %w", f, err)
		}
		out = append(out, Event{Step: step, State: e.State})
	}
	return out, nil
}

// Config is one simulated storm.
type Config struct {
	Rack     Rack
	Firmware Firmware
	// Spread is the time over which nodes start, evenly; 0: all at once.
	Spread time.Duration
	// Inflight caps the nodes booting at the same time.
	Inflight int
	// Until is the last step; Expect what the script must be.
	Until  Until
	Expect Expect
	// CheckAddr makes a lease for another address than the node's
	// reserved one a failure.
	CheckAddr bool
	// DHCPTimeouts are the waits before each DHCP retry and the last one
	// before giving up; nil means 1s, 2s, 4s, 8s.
	DHCPTimeouts []time.Duration
	// TFTP is the server's address; invalid: the lease's next-server on
	// port 69.
	TFTP       netip.AddrPort
	TFTPConfig TFTPConfig
	// Edge is where the chain script is asked for when iPXE's lease names
	// no http(s) URL: Edge + /boot/ipxe.
	Edge *url.URL
	// HTTP is the client for scripts, artifacts and events.
	HTTP *http.Client
	// Artifacts and ArtifactBytes: how kernel and initrds are fetched; a
	// GET reads at most ArtifactBytes (0: all).
	Artifacts     Artifacts
	ArtifactBytes int64
	// Events are posted, in order, by nodes that got a kernel.
	Events []Event
	// Seed makes this run's DHCP transaction ids differ from another's.
	Seed uint32
}

func (c Config) timeouts() []time.Duration {
	if len(c.DHCPTimeouts) > 0 {
		return c.DHCPTimeouts
	}
	return []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
}

// Run boots every node of cfg.Rack through dhcp, calling progress (if not
// nil) about once a second, and returns the figures. It returns early,
// with what was measured, when ctx ends.
func Run(ctx context.Context, cfg Config, dhcp *DHCPConn, progress func(Progress)) Summary {
	n := cfg.Rack.Nodes
	stats := NewStats(n)
	inflight := max(cfg.Inflight, 1)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case now := <-t.C:
					progress(stats.Progress(now))
				}
			}
		}()
	}

	start := time.Now()
launch:
	for i := range n {
		if cfg.Spread > 0 {
			at := start.Add(time.Duration(int64(cfg.Spread) * int64(i) / int64(n)))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					break launch
				case <-time.After(d):
				}
			}
		}
		select {
		case <-ctx.Done():
			break launch
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			stats.Add(bootNode(ctx, cfg, dhcp, stats, i))
		}()
	}
	wg.Wait()
	close(stopProgress)
	progressDone.Wait()
	if progress != nil {
		progress(stats.Progress(time.Now()))
	}
	return stats.Summary()
}

// bootNode plays one node's boot and returns what happened.
func bootNode(ctx context.Context, cfg Config, dhcp *DHCPConn, stats *Stats, i int) Result {
	node := cfg.Rack.Node(i)
	t0 := time.Now()
	stats.Start(t0)
	res := Result{Node: i, Started: t0}
	fail := func(err error) Result {
		res.Outcome, res.Err = OutcomeFailed, err
		res.Finished = time.Since(t0)
		return res
	}
	stopped := func() Result {
		res.Outcome = OutcomeStopped
		res.Finished = time.Since(t0)
		return res
	}

	// 1. The firmware's DORA.
	asker := Asker{MAC: node.MAC, XID: NodeXID(cfg.Seed, i, 0), Relay: dhcp.Relay(), Stage: StagePXE, Firmware: cfg.Firmware}
	lease, retries, err := DORA(ctx, dhcp, asker, cfg.timeouts())
	res.DHCPRetries += retries
	if err != nil {
		return fail(fmt.Errorf("PXE: %w", err))
	}
	res.Leases++
	res.Lease = time.Since(t0)
	if cfg.CheckAddr && node.Addr.IsValid() && lease.Addr != node.Addr {
		return fail(stepErr(KindDHCPAddr, "%s (%s) got %s, reserved %s", node.Name, node.MAC, lease.Addr, node.Addr))
	}
	if cfg.Until == UntilDHCP {
		return stopped()
	}

	// 2. The iPXE binary over TFTP.
	if lease.BootFile == "" {
		return fail(stepErr(KindDHCPReply, "lease for %s names no boot file", node.MAC))
	}
	server := cfg.TFTP
	if !server.IsValid() {
		if !lease.NextServer.IsValid() {
			return fail(stepErr(KindDHCPReply, "lease for %s names no next-server for TFTP", node.MAC))
		}
		server = netip.AddrPortFrom(lease.NextServer, 69)
	}
	tst, err := FetchTFTP(ctx, server, lease.BootFile, cfg.TFTPConfig, io.Discard)
	res.TFTPRetransmits += tst.Retransmits
	res.TFTPBytes += tst.Bytes
	res.BlockSize = tst.BlockSize
	if err != nil {
		if KindOf(err) == KindTFTPTimeout {
			res.TFTPTimeouts++
		}
		return fail(err)
	}
	res.TFTP = time.Since(t0)
	if cfg.Until == UntilTFTP {
		return stopped()
	}

	// 3. iPXE's own DORA, then the chain and the boot script.
	asker.XID, asker.Stage, asker.Since = NodeXID(cfg.Seed, i, 1), StageIPXE, time.Since(t0)
	lease2, retries, err := DORA(ctx, dhcp, asker, cfg.timeouts())
	res.DHCPRetries += retries
	if err != nil {
		return fail(fmt.Errorf("iPXE: %w", err))
	}
	res.Leases++
	res.Lease2 = time.Since(t0)
	if cfg.CheckAddr && node.Addr.IsValid() && lease2.Addr != node.Addr {
		return fail(stepErr(KindDHCPAddr, "iPXE of %s (%s) got %s, reserved %s", node.Name, node.MAC, lease2.Addr, node.Addr))
	}
	chain, err := chainURL(lease2, cfg.Edge)
	if err != nil {
		return fail(err)
	}
	set := settingsFor(node, cfg.Firmware, lease2)
	script, scriptURL, err := fetchScript(ctx, cfg.HTTP, chain, set)
	if err != nil {
		return fail(err)
	}
	res.Script = time.Since(t0)
	kind := classify(script)
	switch {
	case kind == OutcomeFailed:
		return fail(stepErr(KindScript, "%s got neither a kernel nor a wait-and-retry: %s", node.MAC, describe(script)))
	case kind == OutcomeBooted && cfg.Expect == ExpectUnknown:
		return fail(stepErr(KindScript, "%s is not registered but got a kernel (%s)", node.MAC, script.Kernel))
	case kind != OutcomeBooted && cfg.Expect == ExpectBoot:
		return fail(stepErr(KindScript, "%s (%s) got no kernel: %s", node.Name, node.MAC, describe(script)))
	case kind == OutcomeDiscovery && cfg.Expect == ExpectKnown:
		return fail(stepErr(KindScript, "%s (%s) is treated as unknown: %s", node.Name, node.MAC, describe(script)))
	case kind == OutcomeWaiting && cfg.Expect == ExpectUnknown:
		return fail(stepErr(KindScript, "%s is not registered but got a known node's wait: %s", node.MAC, describe(script)))
	case kind != OutcomeBooted:
		res.Outcome = kind
		res.Finished = time.Since(t0)
		return res
	}
	if cfg.Until == UntilScript {
		return stopped()
	}

	// 4. Artifacts and events.
	for _, a := range append([]string{script.Kernel}, script.Initrds...) {
		if err := fetchArtifact(ctx, cfg, scriptURL, a); err != nil {
			return fail(err)
		}
	}
	if err := postEvents(ctx, cfg, scriptURL, script); err != nil {
		return fail(err)
	}
	res.Outcome = OutcomeBooted
	res.Finished = time.Since(t0)
	return res
}

// DORA runs one DISCOVER–OFFER–REQUEST–ACK conversation.
func DORA(ctx context.Context, c *DHCPConn, a Asker, timeouts []time.Duration) (Lease, int, error) {
	isType := func(types ...dhcpv4.MessageType) func(*dhcpv4.DHCPv4) bool {
		return func(m *dhcpv4.DHCPv4) bool {
			for _, t := range types {
				if m.MessageType() == t {
					return true
				}
			}
			return false
		}
	}
	offer, retries, err := c.Exchange(ctx, a.Discover(), timeouts, isType(dhcpv4.MessageTypeOffer))
	if err != nil {
		return Lease{}, retries, err
	}
	if err := a.CheckOffer(offer); err != nil {
		return Lease{}, retries, err
	}
	ack, r2, err := c.Exchange(ctx, a.Request(offer), timeouts, isType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	retries += r2
	if err != nil {
		return Lease{}, retries, err
	}
	lease, err := a.CheckAck(offer, ack)
	return lease, retries, err
}

// chainURL is where iPXE goes after its DORA: the http(s) URL its lease
// names, or else edge's /boot/ipxe.
func chainURL(l Lease, edge *url.URL) (*url.URL, error) {
	if strings.HasPrefix(l.BootFile, "http://") || strings.HasPrefix(l.BootFile, "https://") {
		u, err := url.Parse(l.BootFile)
		if err != nil {
			return nil, stepErr(KindDHCPReply, "boot URL %q: %w", l.BootFile, err)
		}
		return u, nil
	}
	if edge == nil {
		return nil, stepErr(KindDHCPReply, "iPXE's lease names %q, no http(s) URL, and no edge URL is set", l.BootFile)
	}
	return edge.JoinPath("boot", "ipxe"), nil
}

// settingsFor are the iPXE settings of a node after its DORA.
func settingsFor(n Node, f Firmware, l Lease) Settings {
	uuid := UUID(n.MAC)
	s := Settings{
		"mac":          n.MAC.String(),
		"buildarch":    f.BuildArch,
		"platform":     f.Platform,
		"uuid":         fmt.Sprintf("%x-%x-%x-%x-%x", uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:16]),
		"manufacturer": "herd-sim",
		"product":      "simulated node",
		"serial":       fmt.Sprintf("SIM%08d", n.Index+1),
		"asset":        n.Name,
		"user-class":   "iPXE",
		"hostname":     n.Name,
		"filename":     l.BootFile,
	}
	if l.Addr.IsValid() {
		s["ip"] = l.Addr.String()
	}
	if l.NextServer.IsValid() {
		s["next-server"] = l.NextServer.String()
	}
	if len(l.Mask) == 4 {
		s["netmask"] = netip.AddrFrom4([4]byte(l.Mask)).String()
	}
	return s
}

// maxChains bounds how often one script may chain to another before a
// kernel or a wait shows up.
const maxChains = 4

// fetchScript follows chains from u until a script loads a kernel or
// waits; it returns that script and its URL.
func fetchScript(ctx context.Context, hc *http.Client, u *url.URL, set Settings) (Script, *url.URL, error) {
	for range maxChains {
		body, err := get(ctx, hc, u, 1<<20)
		if err != nil {
			return Script{}, u, err
		}
		s, err := ParseScript(string(body), set)
		if err != nil {
			return s, u, stepErr(KindScript, "%s: %w", redact(u), err)
		}
		if s.Kernel != "" || s.Sleep > 0 || s.Chain == "" {
			return s, u, nil
		}
		next, err := u.Parse(s.Chain)
		if err != nil {
			return s, u, stepErr(KindScript, "%s: chain %q: %w", redact(u), s.Chain, err)
		}
		u = next
	}
	return Script{}, u, stepErr(KindScript, "more than %d chained scripts without a kernel", maxChains)
}

// classify tells a boot script (a kernel) from herd's two wait-and-retry
// scripts: a known node that cannot boot yet is sent back with its session
// in the retry URL, an unknown machine without one.
func classify(s Script) Outcome {
	switch {
	case s.Kernel != "":
		return OutcomeBooted
	case s.Chain == "" || s.Sleep == 0:
		return OutcomeFailed
	}
	if u, err := url.Parse(s.Chain); err == nil && u.Query().Get("session") != "" {
		return OutcomeWaiting
	}
	return OutcomeDiscovery
}

func describe(s Script) string {
	switch {
	case s.Chain != "" && s.Sleep > 0:
		return fmt.Sprintf("sleep %s and chain %s", s.Sleep, s.Chain)
	case s.Chain != "":
		return "chain " + s.Chain
	case len(s.Unknown) > 0:
		return "commands " + strings.Join(s.Unknown, ", ")
	}
	return "nothing to boot"
}

// UserAgent is what simulated nodes send: iPXE's, which herd answers as
// it answers iPXE, and the simulator's name.
const UserAgent = "iPXE/1.21.1 (herd-sim)"

func newRequest(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err == nil {
		req.Header.Set("User-Agent", UserAgent)
	}
	return req, err
}

// get reads at most limit bytes of u's body; an answer other than 2xx is
// a KindHTTP error.
func get(ctx context.Context, hc *http.Client, u *url.URL, limit int64) ([]byte, error) {
	req, err := newRequest(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, stepErr(KindHTTP, "GET %s: %w", redact(u), err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, httpErr("GET", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, httpErr("GET", u, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, stepErr(KindHTTP, "GET %s: %s: %s", redact(u), resp.Status, truncate(strings.TrimSpace(string(body)), 200))
	}
	return body, nil
}

func httpErr(method string, u *url.URL, err error) error {
	if errors.Is(err, context.Canceled) {
		return &StepError{Kind: KindCanceled, Err: err}
	}
	return stepErr(KindHTTP, "%s %s: %w", method, redact(u), err)
}

// redact hides query values (boot tokens) in errors.
func redact(u *url.URL) string {
	if u.RawQuery == "" {
		return u.String()
	}
	c := *u
	q := c.Query()
	for k := range q {
		if k == "token" {
			q.Set(k, "…")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// fetchArtifact asks for one kernel or initrd the way cfg says.
func fetchArtifact(ctx context.Context, cfg Config, base *url.URL, ref string) error {
	if cfg.Artifacts == ArtifactsNone || cfg.Artifacts == "" {
		return nil
	}
	u, err := base.Parse(ref)
	if err != nil {
		return stepErr(KindArtifact, "artifact %q: %w", ref, err)
	}
	method := http.MethodHead
	if cfg.Artifacts == ArtifactsGet {
		method = http.MethodGet
	}
	req, err := newRequest(ctx, method, u.String(), nil)
	if err != nil {
		return stepErr(KindArtifact, "%s %s: %w", method, redact(u), err)
	}
	if method == http.MethodGet && cfg.ArtifactBytes > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", cfg.ArtifactBytes-1))
	}
	resp, err := cfg.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return &StepError{Kind: KindCanceled, Err: err}
		}
		return stepErr(KindArtifact, "%s %s: %w", method, redact(u), err)
	}
	defer resp.Body.Close()
	limit := cfg.ArtifactBytes
	if limit <= 0 {
		limit = 1 << 62
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, limit)); err != nil {
		return stepErr(KindArtifact, "%s %s: %w", method, redact(u), err)
	}
	if resp.StatusCode/100 != 2 {
		return stepErr(KindArtifact, "%s %s: %s", method, redact(u), resp.Status)
	}
	return nil
}

// postEvents posts cfg.Events to the script's session with its boot token.
func postEvents(ctx context.Context, cfg Config, base *url.URL, s Script) error {
	if len(cfg.Events) == 0 {
		return nil
	}
	session, ok1 := s.Param(ParamSession)
	token, ok2 := s.Param(ParamToken)
	if !ok1 || !ok2 || session == "" || token == "" {
		return stepErr(KindScript, "kernel command line lacks %s or %s", ParamSession, ParamToken)
	}
	server := base.ResolveReference(&url.URL{Path: "/"})
	if v, ok := s.Param(ParamServer); ok && v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return stepErr(KindScript, "%s=%q is no http(s) URL", ParamServer, v)
		}
		server = u
	}
	target := server.JoinPath("boot", "sessions", session, "events")
	for _, e := range cfg.Events {
		body, _ := json.Marshal(model.BootEvent{Step: e.Step, State: e.State, Message: "herd-sim",
			Extras: map[string]string{"simulated": "true"}})
		req, err := newRequest(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
		if err != nil {
			return stepErr(KindEvent, "POST %s: %w", target, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := cfg.HTTP.Do(req)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return &StepError{Kind: KindCanceled, Err: err}
			}
			return stepErr(KindEvent, "POST %s: %w", target, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return stepErr(KindEvent, "POST %s (%s %s): %s: %s", target, e.Step, e.State, resp.Status, strings.TrimSpace(string(msg)))
		}
	}
	return nil
}
