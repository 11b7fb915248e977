package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bmc-toolbox/bmclib/v2/providers/ipmitool"
	"github.com/bmc-toolbox/bmclib/v2/providers/redfish"
	"github.com/go-logr/logr"
	"github.com/stmcginnis/gofish/common"

	"github.com/herd-hpc/herd/functions/model"
)

// Errors a BMC operation can wrap.
var (
	// ErrTimeout means the device did not finish within its timeout.
	ErrTimeout = errors.New("no answer within the timeout")
	// ErrRefused means the BMC or PDU refused the login.
	ErrRefused = errors.New("login refused: wrong username or password, or the account may not do this")
)

// BMCOptions say how the edge talks to BMCs.
type BMCOptions struct {
	// Timeout bounds everything one action does on one BMC (default 30s).
	Timeout time.Duration
	// CipherSuite is ipmitool's -C (default "3"). Without it bmclib tries
	// suites in turn and each ipmitool run waits ~10 s on the first.
	CipherSuite string
	// IpmitoolPath is the ipmitool binary; empty finds it in PATH.
	IpmitoolPath string
}

// BMC runs power actions on nodes' BMCs through bmclib's ipmitool and
// Redfish (gofish) providers. It is safe for concurrent use; every call
// opens its own connection.
type BMC struct {
	opts BMCOptions
}

// NewBMC returns a BMC driver with the defaults filled in.
func NewBMC(opts BMCOptions) *BMC {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.CipherSuite == "" {
		opts.CipherSuite = "3"
	}
	return &BMC{opts: opts}
}

// Do runs action on target's BMC and returns the node's power state after
// it: read from the BMC for status, soft and reset, and for on, off and
// cycle the state the BMC acknowledged switching to. A cycle of a node that
// is off powers it on, so a cycle always ends with the node on, as it does
// through a PDU.
//
// Whatever the BMC does, Do returns within the BMC timeout: a BMC that does
// not answer costs its own caller that long and nobody else.
func (b *BMC) Do(ctx context.Context, target model.BMCTarget, action model.PowerAction) (model.PowerState, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()

	type outcome struct {
		state model.PowerState
		err   error
	}
	done := make(chan outcome, 1)
	go func() {
		state, err := b.do(ctx, target, action)
		done <- outcome{state, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return model.PowerStateUnknown, fmt.Errorf("power %s via %s BMC %s: %w", action, target.Protocol, target.Address, b.explain(ctx, o.err))
		}
		return o.state, nil
	case <-ctx.Done():
		// gofish requests do not follow the context (bmclib connects with
		// context.Background and only copies the deadline into the HTTP
		// client's timeout), so the goroutine may run on a little; its
		// outcome is dropped.
		return model.PowerStateUnknown, fmt.Errorf("power %s via %s BMC %s: %w", action, target.Protocol, target.Address, b.explain(ctx, ctx.Err()))
	}
}

// explain turns what ipmitool, gofish or the context said into one of the
// package's errors where it can, keeping the original text.
func (b *BMC) explain(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (%s)", ErrTimeout, b.opts.Timeout)
	}
	var rf *common.Error
	if errors.As(err, &rf) && (rf.HTTPReturnedStatusCode == http.StatusUnauthorized || rf.HTTPReturnedStatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w (HTTP %d)", ErrRefused, rf.HTTPReturnedStatusCode)
	}
	msg := err.Error()
	// ipmitool says only this when RAKP fails on a wrong user or password;
	// an unreachable BMC ends in the timeout above instead.
	if strings.Contains(msg, "Unable to establish IPMI v2 / RMCP+ session") {
		return fmt.Errorf("%w (ipmitool: unable to establish an IPMI v2 / RMCP+ session)", ErrRefused)
	}
	return flatError{err}
}

// flatError prints a tool's multi-line message on one line, for results
// and logs, and keeps the error chain for errors.Is.
type flatError struct{ err error }

func (e flatError) Error() string { return oneLine(e.err.Error()) }
func (e flatError) Unwrap() error { return e.err }

// bmcSession is the part of a bmclib provider a power action needs.
type bmcSession interface {
	PowerStateGet(ctx context.Context) (string, error)
	PowerSet(ctx context.Context, state string) (bool, error)
	Close(ctx context.Context) error
}

func (b *BMC) do(ctx context.Context, target model.BMCTarget, action model.PowerAction) (model.PowerState, error) {
	s, err := b.open(ctx, target)
	if err != nil {
		return model.PowerStateUnknown, err
	}
	defer s.Close(context.WithoutCancel(ctx)) //nolint:errcheck // logging out is best effort

	state := func() (model.PowerState, error) {
		raw, err := s.PowerStateGet(ctx)
		if err != nil {
			return model.PowerStateUnknown, err
		}
		return ParseState(raw), nil
	}

	// After a change the BMC acknowledged, the result is the state the
	// action leaves the node in, not a read: right after a cycle a read
	// can catch the node in its off phase, and every read is one more
	// ipmitool run. Only soft reads, since the operating system decides
	// when it is off; reset reads, since it leaves an off node off.
	switch action {
	case model.PowerStatus:
		return state()
	case model.PowerOn:
		return model.PowerStateOn, set(ctx, s, "on")
	case model.PowerOff:
		return model.PowerStateOff, set(ctx, s, "off")
	case model.PowerSoft, model.PowerReset:
		if err := set(ctx, s, string(action)); err != nil {
			return model.PowerStateUnknown, err
		}
		return state()
	case model.PowerCycle:
		now, err := state()
		if err != nil {
			return model.PowerStateUnknown, err
		}
		// A BMC refuses or ignores a cycle of a node that is off (IPMI
		// leaves it off, Redfish errors); herd's cycle ends with it on.
		verb := "cycle"
		if now == model.PowerStateOff {
			verb = "on"
		}
		return model.PowerStateOn, set(ctx, s, verb)
	}
	return model.PowerStateUnknown, fmt.Errorf("unknown power action %q", action)
}

// set asks the provider for a power change. bmclib's providers answer
// (false, nil) where the request was accepted but not yet complete (Redfish
// GracefulShutdown), so only an error counts as failure.
func set(ctx context.Context, s bmcSession, verb string) error {
	if _, err := s.PowerSet(ctx, verb); err != nil {
		return err
	}
	return nil
}

// open reaches one BMC through the bmclib provider for its protocol. The
// provider is used directly rather than through bmclib.Client, which would
// register and try every provider bmclib has on each address.
func (b *BMC) open(ctx context.Context, target model.BMCTarget) (bmcSession, error) {
	protocol := target.Protocol
	switch protocol {
	case model.PowerIPMI:
		host, port := splitAddress(target.Address, "623")
		conn, err := ipmitool.New(host, target.Username, target.Password,
			ipmitool.WithPort(port),
			ipmitool.WithCipherSuite(b.opts.CipherSuite),
			ipmitool.WithIpmitoolPath(b.opts.IpmitoolPath),
			// bmclib's own logs print ipmitool's options; herd logs what
			// it did itself, and never the credentials.
			ipmitool.WithLogger(logr.Discard()),
		)
		if err != nil {
			return nil, fmt.Errorf("set up ipmitool: %w", err)
		}
		// The provider's Open only runs `power status`; each call runs
		// ipmitool afresh anyway, so it is skipped to save one run.
		return conn, nil
	case model.PowerRedfish:
		host, port := splitAddress(target.Address, "443")
		tlsConfig, err := TLSConfig(target.Fingerprint)
		if err != nil {
			return nil, err
		}
		client := &http.Client{
			Transport: keepAlive{&http.Transport{
				TLSClientConfig:     tlsConfig,
				DialContext:         (&net.Dialer{Timeout: b.opts.Timeout}).DialContext,
				TLSHandshakeTimeout: b.opts.Timeout,
				MaxIdleConnsPerHost: 1,
			}},
			Timeout: b.opts.Timeout,
		}
		conn := redfish.New(host, target.Username, target.Password, logr.Discard(),
			redfish.WithHttpClient(client),
			redfish.WithPort(port),
		)
		if err := conn.Open(ctx); err != nil {
			client.CloseIdleConnections()
			return nil, fmt.Errorf("open Redfish session: %w", err)
		}
		return conn, nil
	}
	return nil, fmt.Errorf("unknown BMC protocol %q", protocol)
}

// keepAlive lets one action's Redfish requests share a connection.
// gofish marks every request Connection: close unless told to reuse
// connections, which bmclib never tells it, so each of an action's five to
// ten requests would pay a TLS handshake: costly for the edge at a
// thousand BMCs and slow on a BMC's small CPU. The connection ends at
// logout, when gofish closes idle connections.
type keepAlive struct{ rt *http.Transport }

func (k keepAlive) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Close {
		req = req.Clone(req.Context())
		req.Close = false
	}
	return k.rt.RoundTrip(req)
}

// CloseIdleConnections passes on http.Client.CloseIdleConnections.
func (k keepAlive) CloseIdleConnections() { k.rt.CloseIdleConnections() }

// splitAddress splits "host", "host:port", "[v6]:port" or a bare IPv6
// address into a host bmclib can join with ":"+port again.
func splitAddress(address, defaultPort string) (host, port string) {
	if h, p, err := net.SplitHostPort(address); err == nil {
		host, port = h, p
	} else {
		host, port = strings.Trim(address, "[]"), defaultPort
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host, port
}

// oneLine folds a multi-line tool message into one line for results and
// logs.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
