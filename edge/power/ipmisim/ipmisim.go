// Package ipmisim runs real IPMI-over-LAN peers for tests: each BMC is an
// OpenIPMI ipmi_sim process on a loopback UDP port, whose chassis power is
// a file that a small chassis-control script reads and writes. ipmitool
// (and so bmclib) talks to it exactly as to a BMC in a rack.
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
}

// BMC is one running ipmi_sim.
type BMC struct {
	// Address is its host:port on loopback.
	Address  string
	Port     int
	Username string
	Password string

	dir string
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

// waitListening waits until ipmi_sim holds its UDP port. It looks in
// /proc/net/udp rather than trying to bind the port itself: a probe that
// binds would, for that moment, make ipmi_sim's own bind fail.
func (b *BMC) waitListening(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	want := fmt.Sprintf(":%04X ", b.Port)
	for {
		raw, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1]+" ", want) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(b.dir, "sim.log"))
			return fmt.Errorf("not listening after %s; its output: %s", limit, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	raw, err := os.ReadFile(filepath.Join(b.dir, "power"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(raw)) == "1", nil
}

// SetOn sets the chassis power behind the BMC's back, as a button press.
func (b *BMC) SetOn(on bool) error {
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
  chassis_control "%s 0x20"
  user 1 true  ""     "unused" user  10 none md2 md5 straight
  user 2 true  %q %q admin 10 none md2 md5 straight
`, port, filepath.Join(dir, "chassis.sh"), user, password)
}

const simEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`
