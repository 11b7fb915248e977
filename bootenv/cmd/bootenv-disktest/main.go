// Command bootenv-disktest is /init of the initramfs the disk apply tests
// boot in QEMU: it mounts /proc, /sys and /dev, loads the disk modules,
// reads a layout from the kernel command line (herd.layout=<base64 JSON>),
// runs Detect → Match → PlanLayout → Apply for real, detects again, and
// prints one "HERD-RESULT {json}" line on the console before it powers
// the machine off. It is a test program, not bootenv itself.
//
// Other command line options: herd.disks=N waits for N disks to appear;
// herd.write=PATH writes a marker file at PATH under the new root after
// mounting; herd.check=PATH[,PATH…] reports what those files hold.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/functions/model"
)

// Result is what the guest reports.
type Result struct {
	Error       string             `json:"error,omitempty"`
	Plan        *disk.Plan         `json:"plan,omitempty"`
	Changes     bool               `json:"changes"`
	Commands    [][]string         `json:"commands"`         // every command Apply ran
	Activated   [][]string         `json:"activated"`        // what Activate ran before planning: assembly only
	Before      *disk.Found        `json:"before,omitempty"` // what Detect saw, after Activate
	After       *disk.Found        `json:"after,omitempty"`
	Files       map[string]string  `json:"files,omitempty"`        // herd.check paths: content, or "" when missing
	Probe       *disk.Recording    `json:"probe,omitempty"`        // what the first Detect read, for testdata
	ProbeActive *disk.Recording    `json:"probe_active,omitempty"` // what Detect read after Activate
	Seconds     map[string]float64 `json:"seconds"`
}

// logRunner prints and records every command, then runs it.
type logRunner struct {
	r    disk.Runner
	cmds [][]string
}

func (l *logRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c := append([]string{name}, args...)
	l.cmds = append(l.cmds, c)
	fmt.Println("$", strings.Join(c, " "))
	out, err := l.r.Run(ctx, name, args...)
	if len(out) > 0 {
		fmt.Print(indent(string(out)))
	}
	return out, err
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func main() {
	res := Result{Seconds: map[string]float64{}}
	err := run(context.Background(), &res)
	if err != nil {
		res.Error = err.Error()
		fmt.Println("ERROR:", err)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("\nHERD-RESULT %s\n", b)
	syscall.Sync()
	time.Sleep(200 * time.Millisecond) // let the console drain
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

func setup() error {
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != syscall.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	for _, d := range []string{"/run/lock/lvm", "/run/lvm", "/run/mdadm", "/newroot"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	out, err := exec.Command("modprobe", append([]string{"-a"}, initramfs.DiskModules()...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe: %w: %s", err, out)
	}
	return nil
}

func cmdline() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	kv := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	return kv
}

// waitDisks waits until n disks (block devices with a device) show up.
func waitDisks(n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		names, _ := os.ReadDir("/sys/block")
		have := 0
		for _, e := range names {
			if _, err := os.Readlink("/sys/block/" + e.Name() + "/device"); err == nil {
				have++
			}
		}
		if have >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d disks appeared, want %d", have, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func run(ctx context.Context, res *Result) error {
	t0 := time.Now()
	lap := func(name string) {
		res.Seconds[name] = time.Since(t0).Seconds()
		t0 = time.Now()
	}
	if err := setup(); err != nil {
		return fmt.Errorf("set up the initramfs: %w", err)
	}
	args := cmdline()
	raw, err := base64.StdEncoding.DecodeString(args["herd.layout"])
	if err != nil {
		return fmt.Errorf("herd.layout: %w", err)
	}
	var l model.Layout
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("herd.layout: %w", err)
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("layout %q: %w", l.Name, err)
	}
	n, _ := strconv.Atoi(args["herd.disks"])
	if err := waitDisks(n); err != nil {
		return err
	}
	lap("setup")

	rec := &disk.RecordingProbe{Probe: disk.MachineProbe{}}
	found, err := disk.Detect(ctx, rec)
	if err != nil {
		return err
	}
	res.Probe = &rec.Rec
	act := &logRunner{r: disk.ExecRunner{}}
	changed, err := disk.Activate(ctx, act, found)
	res.Activated = act.cmds
	if err != nil {
		return err
	}
	if changed {
		rec := &disk.RecordingProbe{Probe: disk.MachineProbe{}}
		if found, err = disk.Detect(ctx, rec); err != nil {
			return err
		}
		res.ProbeActive = &rec.Rec
	}
	res.Before = &found
	lap("detect")
	match, err := disk.Match(&l, found.Disks)
	if err != nil {
		return fmt.Errorf("layout %q: %w", l.Name, err)
	}
	plan, err := disk.PlanLayout(&l, found, match)
	if err != nil {
		return err
	}
	res.Plan, res.Changes = &plan, plan.Changes()
	fmt.Print(plan.String())
	lap("plan")
	r := &logRunner{r: disk.ExecRunner{}}
	err = disk.Apply(ctx, plan, r)
	res.Commands = r.cmds
	lap("apply")
	if err != nil {
		return err
	}
	if w := args["herd.write"]; w != "" {
		p := path.Join(plan.Root, w)
		if err := os.WriteFile(p, []byte("written by the first boot\n"), 0o644); err != nil {
			return fmt.Errorf("write marker: %w", err)
		}
	}
	if c := args["herd.check"]; c != "" {
		res.Files = map[string]string{}
		for _, p := range strings.Split(c, ",") {
			b, _ := os.ReadFile(path.Join(plan.Root, p))
			res.Files[p] = string(b)
		}
	}
	if err := teardown(ctx, plan); err != nil {
		return err
	}
	after, err := disk.Detect(ctx, disk.MachineProbe{})
	if err != nil {
		return err
	}
	res.After = &after
	lap("after")
	// Stop what runs so the array is clean at power off: an unclean
	// mirror resyncs in full on the next boot and slows it down.
	stop := &logRunner{r: disk.ExecRunner{}}
	if _, err := stop.Run(ctx, "lvm", "vgchange", "--activate", "n"); err != nil {
		return err
	}
	if len(after.Arrays) > 0 {
		if _, err := stop.Run(ctx, "mdadm", "--stop", "--scan"); err != nil {
			return err
		}
	}
	return nil
}

// teardown unmounts what the plan mounted, children first, so every
// write reaches the disks before power off; arrays and volumes stay up
// for the second Detect.
func teardown(ctx context.Context, p disk.Plan) error {
	var mounts []string
	for _, s := range p.Steps {
		if s.Kind == disk.StepMount {
			mounts = append(mounts, s.Target)
		}
	}
	slices.Reverse(mounts)
	for _, m := range mounts {
		if err := syscall.Unmount(m, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	syscall.Sync()
	return nil
}
