// Package deploy tests the ways NetSentinel is installed: the .deb with its
// hardened systemd unit (package_test.go), the container image's contract
// (container_test.go) and the Kubernetes manifests (kubernetes_test.go).
// The package and container tests need root; they skip without it, and fail
// when NETSENTINEL_REQUIRE_ROOT=1 (scripts/test.sh as root).
package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/test/sensortest"
)

var repo = sensortest.RepoRoot()

// cleanup lists directories TestMain removes after the tests.
var cleanup []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range cleanup {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// requireRoot skips (or fails under NETSENTINEL_REQUIRE_ROOT=1) a test that
// needs root and the given tools.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root (dpkg, setpriv, users)"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && reason == "" {
			reason = tool + " is not installed (scripts/test.sh installs it)"
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
		t.Fatalf("!!! %s, and NETSENTINEL_REQUIRE_ROOT=1 forbids skipping", reason)
	}
	t.Skipf("!!! SKIPPING: %s", reason)
}

// suspiciousPorts are default suspicious_port ports (the listener alert is
// how the tests see which process the sensor attributed a socket to).
var suspiciousPorts = []int{31337, 12345, 54321, 45560, 14444, 4545}

const listenerScript = `
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        s.close()
        continue
    s.listen(1)
    print(p, flush=True)
    sys.stdin.read()
    sys.exit(0)
sys.exit("no free port")
`

// foreignListener starts a TCP listener on 127.0.0.1 on a suspicious port
// as nobody (uid 65534): another user's process, whose socket only a
// sensor with CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH can attribute.
func foreignListener(t *testing.T) (pid, port int) {
	t.Helper()
	args := []string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		"/usr/bin/python3", "-c", listenerScript}
	for _, p := range suspiciousPorts {
		args = append(args, strconv.Itoa(p))
	}
	cmd := exec.Command("setpriv", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("listener: %v", err)
	}
	if port, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("listener printed %q", line)
	}
	return cmd.Process.Pid, port
}

// listenerAlert waits until the NDJSON file at path holds the
// suspicious_port alert for the listener on port, and returns it.
func listenerAlert(t *testing.T, path string, port int, d time.Duration, stderr fmt.Stringer) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				var e map[string]any
				if json.Unmarshal([]byte(line), &e) != nil {
					continue
				}
				if sensortest.Str(e, "rule.id") == "suspicious_port" && sensortest.Field(e, "source.port") == float64(port) {
					return e
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no suspicious_port alert for the listener on port %d in %s within %s; sensor stderr:\n%s", port, path, d, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startSensor starts cmd with stderr captured and registers its stop.
func startSensor(t *testing.T, cmd *exec.Cmd) *testserver.SyncBuffer {
	t.Helper()
	var stderr testserver.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &stderr
}

// stopSensor sends SIGTERM and waits (bounded) for a clean exit.
func stopSensor(t *testing.T, cmd *exec.Cmd, stderr fmt.Stringer) {
	t.Helper()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sensor exited with %v; stderr:\n%s", err, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("sensor did not stop within 60 s of SIGINT; stderr:\n%s", stderr)
	}
}

// reports are the window reports (NAME-<end>.json) beside output.
func reports(t *testing.T, output string) []string {
	t.Helper()
	ext := filepath.Ext(output)
	m, err := filepath.Glob(strings.TrimSuffix(output, ext) + "-*" + ext)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ownedBy checks path's owner and permission bits.
func ownedBy(t *testing.T, path string, uid int, perm os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || fi.Mode().Perm() != perm {
		t.Errorf("%s: owner %d mode %v, want %d %v", path, st.Uid, fi.Mode().Perm(), uid, perm)
	}
}

func run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
