package power

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// PDU is one PDU's management interface as a driver speaks it. A driver
// keeps its own login session (PDU cards allow few, often one per account)
// and must be safe for concurrent use: several nodes' tasks share one PDU.
// Outlet ids are whatever the vendor calls its outlets ("1", "A3", …).
type PDU interface {
	// OutletState reads one outlet.
	OutletState(ctx context.Context, outlet string) (model.PowerState, error)
	// Switch turns one outlet on or off.
	Switch(ctx context.Context, outlet string, on bool) error
	// Close ends the driver's session on the PDU.
	Close(ctx context.Context) error
}

// PDUConfig is how a driver reaches one PDU.
type PDUConfig struct {
	Address  string // host or host:port
	Username string
	Password string
	// Fingerprint pins the PDU's self-signed certificate ("sha256:<hex>");
	// empty verifies against the system roots.
	Fingerprint string
	// Timeout bounds each request to the PDU.
	Timeout time.Duration
}

// NewPDU connects a driver to one PDU. It should not log in yet: the first
// call does, so a PDU that is never used costs no session.
type NewPDU func(cfg PDUConfig) (PDU, error)

// PDUDrivers maps a driver name as OutletTarget.Driver carries it
// ("eaton-g4") to its constructor. main wires the drivers it ships.
type PDUDrivers map[string]NewPDU

// ErrNoPDUAction means the action cannot be done by switching outlets.
var ErrNoPDUAction = errors.New("not possible through a PDU, which can only switch outlets")

// PDUOptions say how the edge drives PDUs.
type PDUOptions struct {
	// Timeout bounds each request to a PDU (default 20s).
	Timeout time.Duration
	// CycleWait is how long a cycle keeps the outlets off when the task
	// does not say (default 5s).
	CycleWait time.Duration
}

// PDUs drives nodes' power through the PDU outlets that feed their power
// supplies. It keeps one driver, and so one login session, per PDU and
// account for as long as it lives: a PDU that allows one session per
// account refuses a second login. Close it to log out everywhere.
type PDUs struct {
	drivers PDUDrivers
	opts    PDUOptions

	mu   sync.Mutex
	open map[pduKey]*pduEntry
}

type pduKey struct{ driver, address, username string }

type pduEntry struct {
	cfg PDUConfig
	pdu PDU
}

// NewPDUs returns a PDU power driver over the given vendor drivers.
func NewPDUs(drivers PDUDrivers, opts PDUOptions) *PDUs {
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.CycleWait <= 0 {
		opts.CycleWait = 5 * time.Second
	}
	return &PDUs{drivers: drivers, opts: opts, open: map[pduKey]*pduEntry{}}
}

// pdu returns the open driver for the outlet's PDU and account, connecting
// one the first time. A changed password or fingerprint replaces it.
func (p *PDUs) pdu(ctx context.Context, o model.OutletTarget) (PDU, error) {
	cfg := PDUConfig{Address: o.Address, Username: o.Username, Password: o.Password, Fingerprint: o.Fingerprint, Timeout: p.opts.Timeout}
	key := pduKey{o.Driver, o.Address, o.Username}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.open[key]; ok {
		if e.cfg == cfg {
			return e.pdu, nil
		}
		// Log the old session out first, or the PDU may refuse the new one.
		_ = e.pdu.Close(ctx)
		delete(p.open, key)
	}
	newPDU, ok := p.drivers[o.Driver]
	if !ok {
		return nil, fmt.Errorf("PDU %s: no driver %q", o.PDU, o.Driver)
	}
	d, err := newPDU(cfg)
	if err != nil {
		return nil, fmt.Errorf("PDU %s: connect %s driver to %s: %w", o.PDU, o.Driver, o.Address, err)
	}
	p.open[key] = &pduEntry{cfg: cfg, pdu: d}
	return d, nil
}

// Close logs out of every PDU it holds a session on.
func (p *PDUs) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for key, e := range p.open {
		if err := e.pdu.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close PDU %s: %w", key.address, err))
		}
		delete(p.open, key)
	}
	return errors.Join(errs...)
}

// Do runs action on a node fed by outlets: it is on when any of its
// supplies' outlets is on; off switches all of them off; on switches all
// of them on; cycle switches all off, waits cycleWait (the default when
// zero), then switches all on. It returns the state it reads afterwards.
func (p *PDUs) Do(ctx context.Context, outlets []model.OutletTarget, action model.PowerAction, cycleWait time.Duration) (model.PowerState, error) {
	if len(outlets) == 0 {
		return model.PowerStateUnknown, errors.New("no PDU outlets feed this node")
	}
	if cycleWait <= 0 {
		cycleWait = p.opts.CycleWait
	}
	switch action {
	case model.PowerStatus:
	case model.PowerOn, model.PowerOff:
		if err := p.switchAll(ctx, outlets, action == model.PowerOn); err != nil {
			return model.PowerStateUnknown, err
		}
	case model.PowerCycle:
		if err := p.switchAll(ctx, outlets, false); err != nil {
			// Some supplies may be off now: put them back on rather than
			// leave the node half fed, and report the failure.
			if onErr := p.switchAll(context.WithoutCancel(ctx), outlets, true); onErr != nil {
				err = errors.Join(err, onErr)
			}
			return model.PowerStateUnknown, err
		}
		t := time.NewTimer(cycleWait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			// Stopped mid-cycle: the outlets go back on so the node is not
			// left off by an interrupted cycle.
			if err := p.switchAll(context.WithoutCancel(ctx), outlets, true); err != nil {
				return model.PowerStateUnknown, errors.Join(ctx.Err(), err)
			}
			return model.PowerStateUnknown, fmt.Errorf("cycle interrupted while the outlets were off (they are on again): %w", ctx.Err())
		}
		if err := p.switchAll(ctx, outlets, true); err != nil {
			return model.PowerStateUnknown, err
		}
	case model.PowerReset, model.PowerSoft:
		return model.PowerStateUnknown, fmt.Errorf("power %s: %w", action, ErrNoPDUAction)
	default:
		return model.PowerStateUnknown, fmt.Errorf("unknown power action %q", action)
	}
	return p.status(ctx, outlets)
}

// switchAll switches every outlet at once; one PDU's failure does not stop
// the others.
func (p *PDUs) switchAll(ctx context.Context, outlets []model.OutletTarget, on bool) error {
	errs := make([]error, len(outlets))
	var wg sync.WaitGroup
	for i, o := range outlets {
		wg.Go(func() {
			d, err := p.pdu(ctx, o)
			if err == nil {
				err = d.Switch(ctx, o.Outlet, on)
			}
			if err != nil {
				errs[i] = fmt.Errorf("switch %s outlet %s of PDU %s (supply %s): %w", onOff(on), o.Outlet, o.PDU, o.Supply, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// status reads every outlet and combines them with NodeState.
func (p *PDUs) status(ctx context.Context, outlets []model.OutletTarget) (model.PowerState, error) {
	states := make([]model.PowerState, len(outlets))
	errs := make([]error, len(outlets))
	var wg sync.WaitGroup
	for i, o := range outlets {
		wg.Go(func() {
			d, err := p.pdu(ctx, o)
			if err == nil {
				states[i], err = d.OutletState(ctx, o.Outlet)
			}
			if err != nil {
				states[i] = model.PowerStateUnknown
				errs[i] = fmt.Errorf("read outlet %s of PDU %s (supply %s): %w", o.Outlet, o.PDU, o.Supply, err)
			}
		})
	}
	wg.Wait()
	state := NodeState(states)
	if state == model.PowerStateOn {
		// One live supply is enough to know the node is on.
		return state, nil
	}
	if err := errors.Join(errs...); err != nil {
		return model.PowerStateUnknown, err
	}
	return state, nil
}

// NodeState combines the states of the outlets feeding a node's supplies:
// on when any is on, off when all are off, unknown otherwise.
func NodeState(outlets []model.PowerState) model.PowerState {
	if len(outlets) == 0 {
		return model.PowerStateUnknown
	}
	off := 0
	for _, s := range outlets {
		switch s {
		case model.PowerStateOn:
			return model.PowerStateOn
		case model.PowerStateOff:
			off++
		}
	}
	if off == len(outlets) {
		return model.PowerStateOff
	}
	return model.PowerStateUnknown
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
