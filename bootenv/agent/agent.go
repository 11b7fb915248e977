// Package agent runs bootenv's steps on one boot: network, plan, disks,
// image, plugins, bootloader, pivot, in that order, each reported to the
// boot session as an event with its duration. A failing step is reported
// with its reason and ends the run; nothing after it runs, so a node never
// pivots into a root that is not complete (sync.Complete is checked last
// thing before the pivot).
//
// Everything that touches the machine comes in through Options, so the
// same steps run for real from cmd/bootenv and in a test against a real
// server with a temporary root.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/herd-hpc/herd/bootenv/bootloader"
	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/plugins"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
)

// Server is the boot function as the node sees it, with the session's
// boot token (functions/client.Boot).
type Server interface {
	PostEvent(ctx context.Context, session string, ev model.BootEvent) (model.BootEvent, error)
	Plan(ctx context.Context, session string) (model.NodePlan, error)
	Manifest(ctx context.Context, session string, d manifest.Digest) (*manifest.Manifest, error)
	OpenBlob(ctx context.Context, session string, d manifest.Digest) (io.ReadCloser, int64, error)
	// FetchBlobs reads many blobs in one request, calling each with every
	// one in the order asked.
	FetchBlobs(ctx context.Context, session string, ds []manifest.Digest, each func(d manifest.Digest, r io.Reader, size int64) error) error
	AppendConsole(ctx context.Context, session string, seq uint64, p []byte) error
}

// Disks is the machine's disks: Detect reads them (disk.Detect over
// disk.MachineProbe), Run runs the layout's commands.
type Disks interface {
	Detect(ctx context.Context) (disk.Found, error)
	disk.Runner
}

// Step names, as the boot session and the UI show them.
const (
	StepNetwork    = "network"
	StepPlan       = "plan"
	StepDisks      = "disks"
	StepImage      = "image"
	StepPlugins    = "plugins"
	StepBootloader = "bootloader"
	StepPivot      = "pivot"
)

// Steps lists the steps in the order they run.
func Steps() []string {
	return []string{StepNetwork, StepPlan, StepDisks, StepImage, StepPlugins, StepBootloader, StepPivot}
}

// Options are the session and the machine the agent runs on. A nil
// effect turns its step off: the step is reported as skipped.
type Options struct {
	Session string
	Server  Server
	Log     *slog.Logger
	// Console receives command output; nil discards it.
	Console io.Writer
	// Network brings up the boot NIC and returns what it configured.
	Network func(ctx context.Context) (string, error)
	// OnNetwork is called once the network is up and before the first
	// event is posted: the console stream starts there.
	OnNetwork func()
	// Disks is needed by stateful nodes.
	Disks Disks
	// Root is where the new root is built; disk.DefaultRoot if empty.
	// Stateful nodes mount their filesystems there (Rebase).
	Root string
	// RAMRoot mounts a tmpfs at the root for a stateless node; nil uses
	// the directory as it is.
	RAMRoot func(ctx context.Context, dir string) error
	// UEFI says whether the machine booted through UEFI.
	UEFI bool
	// Bootloader runs efibootmgr; nil turns the bootloader step off.
	Bootloader bootloader.Runner
	// KernelArgs go onto the fallback boot entry (console=…).
	KernelArgs []string
	// MountDir is where the boot partitions of a mirror's other disks are
	// mounted while the fallback is written to them; /run/herd if empty.
	MountDir string
	// Pivot hands over to the image's init in root; it returns only on
	// failure. Before it is called the console stream has been closed
	// (CloseConsole) and the done event posted. nil turns the step off.
	Pivot func(root string) error
	// CheckPivot checks what Pivot needs before the point of no return
	// (the image has an init); nil checks nothing.
	CheckPivot func(root string) error
	// CloseConsole stops the console stream before the pivot.
	CloseConsole func(ctx context.Context) error
	// Plugins are the config plugins; plugins.Set with the layout's
	// device names when nil.
	Plugins func(fstab plugins.Fstab) []plugins.Plugin
	// Workers is how many files the image sync writes at once.
	Workers int
}

// Agent is one run of the steps.
type Agent struct {
	o    Options
	log  *slog.Logger
	plan model.NodePlan
	root string
	// Filled by the disk step for the plugins and bootloader steps.
	sources  map[string]string // layout reference → fstab source
	bootDisk string            // the fallback loader's partition
	bootPart int
	mirrors  []MirrorPart
	start    time.Time
}

// New returns an agent for o.
func New(o Options) *Agent {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	root := o.Root
	if root == "" {
		root = disk.DefaultRoot
	}
	return &Agent{o: o, log: log, root: root, sources: map[string]string{}}
}

// StepError is a step that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Plan returns the plan the run fetched.
func (a *Agent) Plan() model.NodePlan { return a.plan }

// Root returns the new root.
func (a *Agent) Root() string { return a.root }

// Run runs the steps. It returns after the pivot only if the pivot
// failed or was turned off; the error of a failed step is a *StepError
// that was already reported to the session.
func (a *Agent) Run(ctx context.Context) error {
	a.start = time.Now()
	steps := []struct {
		name string
		run  func(context.Context) (string, map[string]string, error)
		off  bool
	}{
		{StepNetwork, a.network, a.o.Network == nil},
		{StepPlan, a.fetchPlan, false},
		{StepDisks, a.disks, false},
		{StepImage, a.image, false},
		{StepPlugins, a.plugins, false},
		{StepBootloader, a.bootloader, a.o.Bootloader == nil},
		{StepPivot, a.pivot, a.o.Pivot == nil},
	}
	for _, s := range steps {
		if s.off {
			a.log.Info("step turned off", "step", s.name)
			a.event(ctx, model.BootEvent{Step: s.name, State: model.EventInfo, Message: "skipped: turned off in this bootenv"})
			if s.name == StepNetwork && a.o.OnNetwork != nil {
				a.o.OnNetwork()
			}
			continue
		}
		if err := a.step(ctx, s.name, s.run); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step between its start and end events. The network step
// cannot announce its start (there is no network yet): its end event
// carries the duration.
func (a *Agent) step(ctx context.Context, name string, run func(context.Context) (string, map[string]string, error)) error {
	a.log.Info("step", "step", name)
	if name != StepNetwork {
		a.event(ctx, model.BootEvent{Step: name, State: model.EventStart})
	}
	t0 := time.Now()
	msg, extras, err := run(ctx)
	took := time.Since(t0)
	if err != nil {
		a.log.Error("step failed", "step", name, "took", took.Round(time.Millisecond), "err", err)
		a.event(ctx, model.BootEvent{Step: name, State: model.EventFail, Message: clip(err.Error()), DurationMS: took.Milliseconds()})
		return &StepError{Step: name, Err: err}
	}
	if msg != "" {
		a.log.Info("step done", "step", name, "took", took.Round(time.Millisecond), "result", msg)
	}
	a.event(ctx, model.BootEvent{Step: name, State: model.EventOK, Message: clip(msg), DurationMS: took.Milliseconds(), Extras: extras})
	return nil
}

// clip keeps a message within what the server takes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= 4000 {
		return s
	}
	cut := 4000
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + " …"
}

// event posts ev, retrying briefly: a lost event must not stop a boot
// that can go on, and a server that is really gone fails the next step.
func (a *Agent) event(ctx context.Context, ev model.BootEvent) {
	if a.o.Server == nil {
		return
	}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		if _, err = a.o.Server.PostEvent(ctx, a.o.Session, ev); err == nil {
			return
		}
	}
	a.log.Warn("event not posted", "step", ev.Step, "state", ev.State, "err", err)
}

func (a *Agent) network(ctx context.Context) (string, map[string]string, error) {
	msg, err := a.o.Network(ctx)
	if err != nil {
		return "", nil, err
	}
	if a.o.OnNetwork != nil {
		a.o.OnNetwork()
	}
	return msg, nil, nil
}

func (a *Agent) fetchPlan(ctx context.Context) (string, map[string]string, error) {
	p, err := a.o.Server.Plan(ctx, a.o.Session)
	if err != nil {
		return "", nil, fmt.Errorf("fetch the node plan: %w", err)
	}
	if err := CheckPlan(p); err != nil {
		return "", nil, err
	}
	a.plan = p
	mode := "stateful, layout " + layoutName(p.Layout)
	if p.Stateless {
		mode = "stateless (RAM root)"
	}
	var names []string
	for _, pc := range p.Plugins {
		names = append(names, pc.Name)
	}
	msg := fmt.Sprintf("node %s: image %s branch %s version %s, %s, verify %s, plugins %s",
		p.Node, p.Image, p.Branch, short(p.Version), mode, p.Sync.Verify, orNone(strings.Join(names, ",")))
	return msg, map[string]string{"node": p.Node, "image": p.Image, "branch": p.Branch, "version": p.Version}, nil
}

// CheckPlan refuses a plan the steps cannot carry out as it stands: no
// image version, a stateful node without a layout, a layout that is not
// valid (the steps expand and plan it, which assumes a valid one).
func CheckPlan(p model.NodePlan) error {
	if p.Version == "" {
		return fmt.Errorf("the plan names no image version for %s", p.Node)
	}
	if _, err := manifest.ParseDigest(p.Version); err != nil {
		return fmt.Errorf("the plan's image version: %w", err)
	}
	if p.Stateless {
		return nil
	}
	if p.Layout == nil {
		return fmt.Errorf("node %s is stateful but has no disk layout", p.Node)
	}
	if err := p.Layout.Validate(); err != nil {
		return fmt.Errorf("the plan's disk layout %q: %w", model.CleanText(p.Layout.Name, 64), err)
	}
	return nil
}

func layoutName(l *model.Layout) string {
	if l == nil {
		return "none"
	}
	return l.Name
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// ErrNoDisks is returned for a stateful plan on a bootenv without disks.
var ErrNoDisks = errors.New("this bootenv has no disk access")
