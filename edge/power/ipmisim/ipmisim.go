// Package ipmisim runs real IPMI-over-LAN peers for tests: each BMC is an
// OpenIPMI ipmi_sim process on a loopback UDP port, whose chassis power is
// a file that a small chassis-control script reads and writes. ipmitool
// (and so bmclib) talks to it exactly as to a BMC in a rack.
//
// With Options.VM a BMC drives a virtual machine instead, through
// ipmi_sim's own VM support: power on starts the machine's command, the
// chassis is on while that process lives, and power off asks the machine
// to shut down over its VM connection (QEMU's ipmi-bmc-extern) before
// ipmi_sim kills it.
//
// The tests that use it skip when ipmi_sim is not installed (Debian package
// openipmi; ipmitool comes from package ipmitool).
package ipmisim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options describe the BMCs to start.
type Options struct {
	// Username and Password are the BMC's admin account (default admin /
	// herd-secret).
	Username string
	Password string
	// Delay makes every chassis command (power status included) wait this
	// long before answering, as a slow BMC does. Keep it under ipmitool's
	// 5 s retransmit timeout, or ipmitool retries.
	Delay time.Duration
	// On starts the BMCs' chassis powered on.
	On bool
	// VM, when set, makes each BMC a virtual machine's; the chassis
	// script and so Delay, On and the BMC's On, SetOn, Commands and
	// WaitOn do not apply then.
	VM *VM
}

// VM is a virtual machine a BMC powers (ipmi_sim's startcmd, startnow,
// poweroff_wait and kill_wait, and a VM serial interface).
type VM struct {
	// Command is what power on runs, through /bin/sh ("exec " is put in
	// front of it by ipmi_sim): a script that execs the machine, so that
	// the process ipmi_sim watches, and whose life is the chassis power,
	// is the machine itself. It may not hold a double quote.
	Command string
	// PoweroffWait is how long a power off waits for a connected machine
	// to shut down before ipmi_sim sends it SIGTERM; a machine that is not
	// connected gets SIGTERM at once. KillWait is how long SIGTERM has
	// before SIGKILL. ipmi_sim counts whole seconds; the defaults are 10s
	// and 3s.
	PoweroffWait time.Duration
	KillWait     time.Duration
}

// ErrVM is returned by the chassis-script accessors of a BMC that drives
// a virtual machine: its power is the machine's process, read over IPMI.
var ErrVM = errors.New("the BMC powers a virtual machine: ask it over IPMI")

// BMC is one running ipmi_sim.
type BMC struct {
	// Address is its host:port on loopback.
	Address  string
	Port     int
	Username string
	Password string
	// VMAddress is where, with Options.VM, the machine connects to its
	// BMC: ipmi_sim's TCP listener (loopback host:port) speaking the VM
	// codec, for QEMU's `-chardev socket,host=…,port=…,reconnect=N
	// -device ipmi-bmc-extern,chardev=… -device isa-ipmi-bt,bmc=…`.
	VMAddress string

	dir string
	vm  bool
	cmd *exec.Cmd
}

// Start starts n ipmi_sim BMCs, stopped when the test ends. It skips the
// test when ipmi_sim is not installed.
func Start(t testing.TB, n int, opts Options) []*BMC {
	t.Helper()
	if _, err := exec.LookPath("ipmi_sim"); err != nil {
		t.Skip("ipmi_sim not installed (Debian package openipmi); the IPMI tests need it")
	}
	if opts.Username == "" {
		opts.Username = "admin"
	}
	if opts.Password == "" {
		opts.Password = "herd-secret"
	}
	if opts.VM != nil && strings.Contains(opts.VM.Command, `"`) {
		t.Fatalf("ipmisim: the VM command %q holds a double quote, which lan.conf cannot carry", opts.VM.Command)
	}
	root := t.TempDir()
	bmcs := make([]*BMC, 0, n)
	t.Cleanup(func() {
		for _, b := range bmcs {
			b.stop()
		}
	})
	for i := range n {
		b, err := start(filepath.Join(root, strconv.Itoa(i)), opts)
		if err != nil {
			t.Fatalf("start ipmi_sim %d of %d: %v", i+1, n, err)
		}
		bmcs = append(bmcs, b)
	}
	for i, b := range bmcs {
		err := b.waitListening(10 * time.Second)
		// The port was free when picked, but another process may have
		// taken it before ipmi_sim bound it: try another.
		for attempt := 0; err != nil && attempt < 3; attempt++ {
			b.stop()
			if b, err = start(b.dir, opts); err != nil {
				break
			}
			bmcs[i] = b
			err = b.waitListening(10 * time.Second)
		}
		if err != nil {
			t.Fatalf("ipmi_sim on %s: %v", b.Address, err)
		}
	}
	return bmcs
}

func start(dir string, opts Options) (*BMC, error) {
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		return nil, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	b := &BMC{Address: "127.0.0.1:" + strconv.Itoa(port), Port: port, Username: opts.Username, Password: opts.Password, dir: dir}
	power := "0"
	if opts.On {
		power = "1"
	}
	files := map[string]string{
		"power":      power + "\n",
		"chassis.sh": chassisScript(dir, opts.Delay),
		"lan.conf":   lanConf(dir, port, opts.Username, opts.Password),
		"sim.emu":    simEmu,
	}
	if opts.VM != nil {
		vmPort, err := freeTCPPort()
		if err != nil {
			return nil, err
		}
		b.vm, b.VMAddress = true, "127.0.0.1:"+strconv.Itoa(vmPort)
		files["lan.conf"] = vmLanConf(port, vmPort, opts.Username, opts.Password, *opts.VM)
		delete(files, "power")
		delete(files, "chassis.sh")
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if name == "chassis.sh" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			return nil, err
		}
	}
	b.cmd = exec.Command("ipmi_sim", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-n", "-s", filepath.Join(dir, "state"))
	b.cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child keeps its own descriptor
	b.cmd.Stdout, b.cmd.Stderr = out, out
	b.cmd.SysProcAttr = sysProcAttr()
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

// waitListening waits until ipmi_sim holds its UDP port, and with a VM its
// TCP port too. It looks in /proc/net rather than trying to bind the
// ports itself: a probe that binds would, for that moment, make
// ipmi_sim's own bind fail. It reads the calling thread's tables, not
// /proc/self's: in a test that entered a network namespace on a locked
// thread, that thread may have been the process's main one.
func (b *BMC) waitListening(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		up, err := listening("/proc/thread-self/net/udp", b.Port, "")
		if err != nil {
			return err
		}
		if up && b.VMAddress != "" {
			_, port, _ := net.SplitHostPort(b.VMAddress)
			n, _ := strconv.Atoi(port)
			// 0A is TCP_LISTEN.
			if up, err = listening("/proc/thread-self/net/tcp", n, "0A"); err != nil {
				return err
			}
		}
		if up {
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(b.dir, "sim.log"))
			return fmt.Errorf("not listening after %s; its output: %s", limit, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening reports whether table (/proc/…/net/udp or tcp) has a socket on
// local port, in state when state is not empty.
func listening(table string, port int, state string) (bool, error) {
	raw, err := os.ReadFile(table)
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && (state == "" || f[3] == state) {
			return true, nil
		}
	}
	return false, nil
}

func (b *BMC) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// PID is the ipmi_sim process's id, for measuring what simulators cost.
func (b *BMC) PID() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Kill stops this BMC now, as a BMC that loses power does.
func (b *BMC) Kill() { b.stop() }

// On reports the chassis power as the BMC holds it.
func (b *BMC) On() (bool, error) {
	if b.vm {
		return false, ErrVM
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, "power"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(raw)) == "1", nil
}

// SetOn sets the chassis power behind the BMC's back, as a button press.
func (b *BMC) SetOn(on bool) error {
	if b.vm {
		return ErrVM
	}
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile(filepath.Join(b.dir, "power"), []byte(v), 0o644)
}

// Commands lists the chassis-control commands the BMC received, oldest
// first, e.g. "get power", "set power 0", "set reset 1".
func (b *BMC) Commands() []string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "calls"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(l, "0x20 ")); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// WaitOn waits until the chassis power is on (or off), for actions such as
// cycle that finish after ipmitool returns.
func (b *BMC) WaitOn(ctx context.Context, on bool) error {
	if b.vm {
		return ErrVM
	}
	for {
		got, err := b.On()
		if err == nil && got == on {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("BMC %s power never became %t: %w", b.Address, on, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// UnusedAddress returns a loopback UDP address with nothing listening, for
// an unreachable BMC.
func UnusedAddress() (string, error) {
	port, err := freeUDPPort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// freeTCPPort asks the kernel for a free loopback TCP port, with the same
// race as freeUDPPort.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}

// freeUDPPort asks the kernel for a free loopback UDP port. Another process
// could take it before ipmi_sim binds it; waitListening would then time
// out, which has not been seen on loopback.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	addr, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return 0, errors.New("not a UDP address")
	}
	return addr.Port, nil
}

// chassisScript answers ipmi_sim's chassis_control calls:
// "0x20 get power [boot]" → "power:0|1 boot:…"; "0x20 set power 0|1",
// "set reset 1", "set shutdown 1" (soft off) and "set boot …". The power
// state lives in the file "power" beside it.
func chassisScript(dir string, delay time.Duration) string {
	sleep := ""
	if delay > 0 {
		sleep = fmt.Sprintf("sleep %.3f\n", delay.Seconds())
	}
	return `#!/bin/sh
dir='` + dir + `'
echo "$*" >> "$dir/calls"
` + sleep + `shift
op=$1
shift
case "$op" in
get)
	out=""
	for p in "$@"; do
		case "$p" in
		power) out="$out power:$(cat "$dir/power" 2>/dev/null || echo 0)" ;;
		boot) out="$out boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
		esac
	done
	echo $out
	;;
set)
	while [ $# -gt 0 ]; do
		case "$1" in
		power) echo "$2" > "$dir/power"; shift 2 ;;
		shutdown) [ "$2" = 1 ] && echo 0 > "$dir/power"; shift 2 ;;
		reset) shift 2 ;;
		boot) echo "$2" > "$dir/boot"; shift 2 ;;
		*) shift ;;
		esac
	done
	;;
esac
`
}

func lanConf(dir string, port int, user, password string) string {
	return lanBase(port, fmt.Sprintf("  chassis_control \"%s 0x20\"\n", filepath.Join(dir, "chassis.sh")), user, password)
}

// lanBase is lan.conf: the LAN interface on port, then more (the power
// control), then the users.
func lanBase(port int, more, user, password string) string {
	return fmt.Sprintf(`name "herd-ipmisim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
%s  user 1 true  ""     "unused" user  10 none md2 md5 straight
  user 2 true  %q %q admin 10 none md2 md5 straight
`, port, more, user, password)
}

// vmLanConf is lanConf for a BMC that powers a virtual machine: no
// chassis script; startcmd is the machine, not started with ipmi_sim;
// the machine connects to the VM serial interface on vmPort.
func vmLanConf(port, vmPort int, user, password string, vm VM) string {
	secs := func(d, def time.Duration) int {
		if d <= 0 {
			d = def
		}
		return int(max(1, (d+time.Second-1)/time.Second))
	}
	more := fmt.Sprintf("  serial 15 127.0.0.1 %d codec VM\n  startcmd \"%s\"\n  startnow false\n  poweroff_wait %d\n  kill_wait %d\n",
		vmPort, vm.Command, secs(vm.PoweroffWait, 10*time.Second), secs(vm.KillWait, 3*time.Second))
	return lanBase(port, more, user, password)
}

const simEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`
