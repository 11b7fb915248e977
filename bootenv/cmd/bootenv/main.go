// Command bootenv is /init of herd's provisioner initramfs. On every boot
// of every node it mounts the API filesystems, loads the kernel modules
// the boot script appended (lib/modules/<version>/ of the image's
// kernel), reads herd.session, herd.server and herd.token from the kernel
// command line and runs the agent's steps: network, plan, disks, image,
// plugins, bootloader, pivot. Everything it prints goes to the console
// and, once the network is up, to the boot session's console on the
// server.
//
// When a step fails, the reason is on the console and in the session;
// bootenv then reboots after a minute to try again, or, with herd.debug
// on the command line, starts a shell (/bin/sh) on the console and
// reboots when it exits.
//
// The cluster's TLS files, when the initramfs carries them (herd bootenv
// build puts them there from herd pki init), are in /etc/herd/pki: the CA
// the edge's certificate is checked against and the node's client
// certificate and key.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/herd-hpc/herd/bootenv/initramfs"
	"github.com/herd-hpc/herd/edge/pki"

	"golang.org/x/sys/unix"

	"github.com/herd-hpc/herd/bootenv/agent"
	"github.com/herd-hpc/herd/bootenv/console"
	"github.com/herd-hpc/herd/bootenv/disk"
	"github.com/herd-hpc/herd/bootenv/netup"
	"github.com/herd-hpc/herd/bootenv/pivot"
	"github.com/herd-hpc/herd/functions/client"
)

// retryDelay is how long a failed boot waits before it reboots.
const retryDelay = 60 * time.Second

func main() {
	stream := console.New(os.Stdout, console.Options{})
	log := slog.New(slog.NewTextHandler(stream, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("15:04:05.000"))
			}
			return a
		},
	}))
	cmd, err := run(stream, log)
	fmt.Fprintf(stream, "\nbootenv: %v\n", err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	stream.Close(ctx)
	cancel()
	if cmd.Debug {
		fmt.Fprintln(os.Stdout, "bootenv: herd.debug is set: starting a shell; the machine reboots when it exits")
		sh := exec.Command("/bin/sh")
		sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := sh.Run(); err != nil {
			fmt.Fprintf(os.Stdout, "bootenv: shell: %v\n", err)
			time.Sleep(retryDelay)
		}
	} else {
		fmt.Fprintf(os.Stdout, "bootenv: rebooting in %s to try again (herd.debug on the kernel command line gives a shell instead)\n", retryDelay)
		time.Sleep(retryDelay)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	os.Exit(1) // not PID 1 (a test run): just end
}

// run returns only when the boot cannot go on.
func run(stream *console.Stream, log *slog.Logger) (agent.Cmdline, error) {
	ctx := context.Background()
	if err := mountAPI(); err != nil {
		return agent.Cmdline{}, err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return agent.Cmdline{}, err
	}
	cmd, err := agent.ParseCmdline(string(raw))
	if err != nil {
		return cmd, err
	}
	log.Info("bootenv", "session", cmd.Session, "server", cmd.Server)
	if err := repairUsrMerge("/"); err != nil {
		log.Warn("repair the usr-merge links", "err", err)
	}
	loadModules(ctx, stream, log)
	warnEntropy(log)
	hc, err := httpClient()
	if err != nil {
		return cmd, err
	}
	srv := client.NewBoot(cmd.Server, cmd.Token, hc)
	mac, err := netup.BootMAC(cmd.Args)
	if err != nil {
		return cmd, err
	}
	_, efiErr := os.Stat("/sys/firmware/efi")
	uefi := efiErr == nil
	if uefi {
		// efibootmgr reads and writes the boot variables here.
		unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, "")
	}
	runner := &logRunner{out: stream}
	a := agent.New(agent.Options{
		Session: cmd.Session,
		Server:  srv,
		Log:     log,
		Console: stream,
		Network: func(ctx context.Context) (string, error) {
			c, err := netup.Up(ctx, netup.Options{MAC: mac, Log: log})
			return c.String(), err
		},
		OnNetwork:  func() { stream.Start(srv, cmd.Session) },
		Disks:      machineDisks{runner},
		Root:       disk.DefaultRoot,
		RAMRoot:    mountRAMRoot,
		UEFI:       uefi,
		Bootloader: runner,
		KernelArgs: consoleArgs(cmd.Args),
		CheckPivot: func(root string) error {
			_, err := pivot.ChooseInit(root, cmd.Init)
			return err
		},
		CloseConsole: stream.Close,
		Pivot: func(root string) error {
			return pivot.Pivot(pivot.Options{NewRoot: root, Init: cmd.Init, Args: os.Args[1:], Env: os.Environ()})
		},
	})
	err = a.Run(ctx)
	if err == nil {
		err = errors.New("the pivot returned")
	}
	return cmd, err
}

// consoleArgs keeps the console= settings of this boot for the fallback
// entry, so the local OS prints where bootenv did.
func consoleArgs(args map[string]string) []string {
	if c := args["console"]; c != "" {
		return []string{"console=" + c}
	}
	return nil
}

// mountAPI mounts /proc, /sys, /dev and /run and makes the directories
// the disk tools expect.
func mountAPI() error {
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	for _, d := range []string{"/run/lock/lvm", "/run/lvm", "/run/mdadm", disk.DefaultRoot, "/etc"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// loadModules loads every module the boot script appended for this
// kernel. A module that does not load is printed, not fatal: the step
// that needs it says what is missing.
func loadModules(ctx context.Context, out io.Writer, log *slog.Logger) {
	var uts unix.Utsname
	unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	dir := "/lib/modules/" + release
	var files []string
	// The boot script's archive unpacks to lib/modules, bootenv's own
	// modules may sit in usr/lib/modules: take both (ModuleNames merges).
	for _, d := range []string{dir, "/usr/lib/modules/" + release} {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, p)
			}
			return nil
		})
	}
	names := agent.ModuleNames(files)
	if len(names) == 0 {
		log.Warn("no kernel modules for this kernel", "dir", dir)
		return
	}
	c := exec.CommandContext(ctx, "modprobe", append([]string{"-a", "-b"}, names...)...)
	c.Stdout, c.Stderr = out, out
	if err := c.Run(); err != nil {
		log.Warn("modprobe", "modules", len(names), "err", err)
		return
	}
	log.Info("modules loaded", "kernel", release, "modules", len(names))
}

// warnEntropy says so when the kernel's random number generator is not
// ready: DHCP transaction ids and TLS keys then wait for it, silently, for
// minutes on a machine without RDRAND or a hardware RNG.
func warnEntropy(log *slog.Logger) {
	buf := make([]byte, 1)
	if _, err := unix.Getrandom(buf, unix.GRND_NONBLOCK); errors.Is(err, unix.EAGAIN) {
		log.Warn("the kernel's random number generator is not ready yet: DHCP and TLS wait for it (no RDRAND or hardware RNG module?)")
	}
}

// httpClient trusts the cluster CA and presents the node certificate
// when the initramfs has them.
func httpClient() (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	dir := "/" + initramfs.PKIDir
	if _, err := os.Stat(filepath.Join(dir, pki.CACert)); err == nil {
		if cfg, err = pki.LoadNode(dir); err != nil {
			return nil, fmt.Errorf("cluster PKI in %s: %w", dir, err)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	// No overall timeout (a blob may be large), but a server that accepts
	// and never answers must not hang the boot.
	tr.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: tr}, nil
}

// mountRAMRoot mounts a tmpfs for a stateless root, unless one is there
// (a bootenv started again).
func mountRAMRoot(_ context.Context, dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		var a, b unix.Stat_t
		if unix.Stat(dir, &a) == nil && unix.Stat(filepath.Dir(dir), &b) == nil && a.Dev != b.Dev {
			return nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755")
}

// machineDisks reads this machine's disks.
type machineDisks struct{ r disk.Runner }

func (m machineDisks) Detect(ctx context.Context) (disk.Found, error) {
	return disk.Detect(ctx, disk.MachineProbe{})
}

func (m machineDisks) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return m.r.Run(ctx, name, args...)
}

// logRunner prints every command and its output on the console, then
// returns the output.
type logRunner struct{ out io.Writer }

func (l *logRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	fmt.Fprintf(l.out, "$ %s %s\n", name, strings.Join(args, " "))
	out, err := disk.ExecRunner{}.Run(ctx, name, args...)
	if len(out) > 0 {
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			fmt.Fprintf(l.out, "    %s\n", line)
		}
	}
	return out, err
}
