// Package qemu runs a virtual machine with qemu-system-x86_64 under
// software emulation (TCG: no KVM is needed): direct kernel boot with an
// initramfs, virtual disks, the serial console captured. Tests use it to
// run bootenv for real; the guest reports results as console lines with a
// prefix, which Results picks out.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Disk is a virtual disk backed by a file.
type Disk struct {
	Path   string
	Format string // raw (default) or qcow2
	Serial string
	// NVMe attaches the disk as an NVMe controller instead of virtio-blk.
	NVMe bool
}

// Config is one virtual machine.
type Config struct {
	Binary   string // qemu-system-x86_64 if empty
	Kernel   string
	Initrd   string
	Append   string // the kernel command line; console=ttyS0 is added
	MemoryMB int    // 1024 if zero
	CPUs     int    // 1 if zero
	Disks    []Disk
	// Tap, when set, attaches a virtio NIC to that tap device (which must
	// exist); MAC is its address.
	Tap string
	MAC string
	// Console receives the serial console as it comes (a test log).
	Console io.Writer
}

// ErrNotInstalled is returned when the qemu binary is missing.
var ErrNotInstalled = errors.New("qemu-system-x86_64 is not installed (make deps installs it)")

// Args returns the command line for c, without the binary.
func (c Config) Args() []string {
	mem, cpus := c.MemoryMB, c.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 1
	}
	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nographic", "-nodefaults", "-no-user-config", "-serial", "stdio",
		// A guest that reboots or panics (panic=-1) ends qemu instead.
		"-no-reboot",
		"-kernel", c.Kernel,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 " + c.Append),
	}
	if c.Initrd != "" {
		args = append(args, "-initrd", c.Initrd)
	}
	for i, d := range c.Disks {
		format := d.Format
		if format == "" {
			format = "raw"
		}
		id := "d" + strconv.Itoa(i)
		// cache=unsafe: the guest's flushes are not forced to the host
		// disk; the file still holds every write once qemu exits.
		args = append(args, "-drive", "file="+d.Path+",format="+format+",if=none,cache=unsafe,id="+id)
		dev := "virtio-blk-pci,drive=" + id
		if d.NVMe {
			dev = "nvme,drive=" + id
		}
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		args = append(args, "-device", dev)
	}
	if c.Tap != "" {
		nic := "virtio-net-pci,netdev=n0"
		if c.MAC != "" {
			nic += ",mac=" + c.MAC
		}
		args = append(args, "-netdev", "tap,id=n0,ifname="+c.Tap+",script=no,downscript=no", "-device", nic)
	}
	return args
}

// Machine is a running virtual machine.
type Machine struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	mu      sync.Mutex
	console bytes.Buffer
	Started time.Time
}

// Start starts the machine. It is killed when ctx ends; Wait returns when
// it stops. Always call Stop or Wait.
func Start(ctx context.Context, c Config) (*Machine, error) {
	bin := c.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	m := &Machine{done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, path, c.Args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	m.cmd = cmd
	m.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				m.mu.Lock()
				m.console.Write(line)
				m.mu.Unlock()
				if c.Console != nil {
					c.Console.Write(line)
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		<-copied
		m.err = cmd.Wait()
		if m.err != nil && ctx.Err() != nil {
			m.err = fmt.Errorf("qemu: %w (%v)", ctx.Err(), m.err)
		}
		close(m.done)
	}()
	return m, nil
}

// Wait waits for the machine to stop and returns how qemu ended.
func (m *Machine) Wait() error {
	<-m.done
	return m.err
}

// Stop kills the machine if it still runs and waits for it.
func (m *Machine) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Kill()
	<-m.done
}

// Console returns everything the machine printed so far.
func (m *Machine) Console() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.console.Bytes())
}

// Run boots c, waits until the guest powers off or ctx ends (qemu is
// killed then), and returns the console. The error says how qemu ended.
func Run(ctx context.Context, c Config) ([]byte, error) {
	m, err := Start(ctx, c)
	if err != nil {
		return nil, err
	}
	defer m.Stop()
	err = m.Wait()
	return m.Console(), err
}

// Results returns the JSON payloads of console lines "PREFIX {json}", in
// order. Lines are cut at the first '{' after the prefix, so kernel
// messages interleaved before it do not matter.
func Results(console []byte, prefix string) []json.RawMessage {
	var out []json.RawMessage
	for _, line := range bytes.Split(console, []byte("\n")) {
		i := bytes.Index(line, []byte(prefix+" "))
		if i < 0 {
			continue
		}
		rest := bytes.TrimSpace(line[i+len(prefix)+1:])
		if json.Valid(rest) {
			out = append(out, json.RawMessage(bytes.Clone(rest)))
		}
	}
	return out
}
