package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeINI(t *testing.T, edge string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herd.ini")
	if err := os.WriteFile(path, []byte("[edge]\n"+edge), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestBadConfig(t *testing.T) {
	path := writeINI(t, "listen = :8080\nfunctions_url = ftp://x\n")
	var out bytes.Buffer
	code := run(context.Background(), []string{"--config", path}, &out, envOf(map[string]string{"HERD_EDGE_SECRET": "s"}))
	if code != 1 || !strings.Contains(out.String(), path) || !strings.Contains(out.String(), "functions_url") {
		t.Fatalf("exit %d, output %s", code, out.String())
	}
}

func TestBadFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--log-level", "loud"}, &out, envOf(nil)); code != 2 {
		t.Errorf("bad log level: exit %d", code)
	}
	if code := run(context.Background(), []string{"extra"}, &out, envOf(nil)); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}

// TestSignals builds herd-edge, starts it on kernel-chosen ports and stops
// it with SIGTERM and SIGINT.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "herd-edge")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	path := writeINI(t, `listen = 127.0.0.1:0
functions_url = http://127.0.0.1:1
tftp_listen = 127.0.0.1:0
tftp_root = `+t.TempDir()+`
dhcp_interfaces =
`)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "--config", path)
			cmd.Env = append(os.Environ(), "HERD_EDGE_SECRET=test-secret")
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()

			lines := make(chan map[string]any, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					var rec map[string]any
					if json.Unmarshal(sc.Bytes(), &rec) == nil {
						lines <- rec
					}
				}
				close(lines)
			}()
			wait := func(msg string) map[string]any {
				t.Helper()
				timeout := time.After(10 * time.Second)
				for {
					select {
					case rec, ok := <-lines:
						if !ok {
							t.Fatalf("herd-edge exited before logging %q", msg)
						}
						if rec["msg"] == msg {
							return rec
						}
					case <-timeout:
						t.Fatalf("no %q in the log", msg)
					}
				}
			}
			addr := wait("edge listening")["http"].(string)
			wait("DHCP off: no interfaces configured")

			res, err := http.Get("http://" + addr + "/edge/health")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("health with functions down = %d", res.StatusCode)
			}

			cmd.Process.Signal(sig)
			wait("edge stopped")
			for range lines {
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit after %v: %v", sig, err)
			}
		})
	}
}
