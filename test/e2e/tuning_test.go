package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/state"
)

// The tuning tests run the built binary against loopback listeners the test
// opens (no other traffic); the only rule enabled is suspicious_port, given
// the listeners' free, random ports, so the host's other sockets cannot
// interfere.

// loopbackListener listens on a free loopback port until the test ends.
func loopbackListener(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// onlySuspiciousPort writes a config enabling only suspicious_port on ports;
// extra is appended verbatim.
func onlySuspiciousPort(t *testing.T, path, cooldown string, ports []int, extra string) {
	t.Helper()
	var disabled, list []string
	for _, f := range detect.Factories() {
		if f.Name != detect.RuleSuspiciousPort {
			disabled = append(disabled, f.Name)
		}
	}
	for _, p := range ports {
		list = append(list, fmt.Sprintf("%q", fmt.Sprint(p)))
	}
	body := fmt.Sprintf("detect:\n  cooldown: %s\n  disabled: [%s]\n  detectors:\n    suspicious_port: {ports: [%s]}\n%s",
		cooldown, strings.Join(disabled, ", "), strings.Join(list, ", "), extra)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// listenAlert matches the suspicious_port alert for a listener on port.
func listenAlert(port int) func(map[string]any) bool {
	return func(e map[string]any) bool {
		return hasString(e, "threat.technique.id", "T1571") && field(e, "source.port") == float64(port)
	}
}

func countOf(events []map[string]any, fn func(map[string]any) bool) int {
	n := 0
	for _, e := range events {
		if fn(e) {
			n++
		}
	}
	return n
}

// waitLog waits until the sensor's stderr holds want.
func waitLog(t *testing.T, stderr *syncBuffer, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within %s:\n%s", want, d, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runOnce runs one --once cycle and returns its stdout events and stderr.
func runOnce(t *testing.T, args ...string) ([]map[string]any, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--once", "--log-format", "json"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := readEvents(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("netsentinel %v: %v\n%s", args, err, stderr.String())
	}
	return events.All(), stderr.String()
}

// A restart does not raise again a condition still within its cooldown: the
// cooldown table is saved in the state directory at shutdown and loaded at
// start. A damaged state file is reported in one log line and ignored.
func TestRestartDoesNotReAlert(t *testing.T) {
	port := loopbackListener(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ns.yaml")
	stateDir := filepath.Join(dir, "state")
	onlySuspiciousPort(t, cfg, "1h", []int{port}, "state_dir: "+stateDir+"\n")
	args := []string{"-c", cfg, "-o", filepath.Join(dir, "report.json")}

	first, _ := runOnce(t, args...)
	if countOf(first, listenAlert(port)) != 1 {
		t.Fatalf("first run: want one alert for the listener on %d, got %d events", port, len(first))
	}
	st, err := os.Stat(filepath.Join(stateDir, state.CooldownsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", st, err)
	}

	second, log := runOnce(t, args...)
	if n := countOf(second, listenAlert(port)); n != 0 {
		t.Fatalf("restart within the cooldown re-alerted %d times", n)
	}
	if !strings.Contains(log, "cooldown state loaded") {
		t.Errorf("second run did not report loading the state:\n%s", log)
	}

	if err := os.WriteFile(filepath.Join(stateDir, state.CooldownsFile), []byte(`{"version":1,"cooldowns":[{"rule":`), 0o600); err != nil {
		t.Fatal(err)
	}
	third, log := runOnce(t, args...)
	if n := strings.Count(log, "cooldown state unreadable"); n != 1 {
		t.Errorf("damaged state reported %d times, want once:\n%s", n, log)
	}
	if countOf(third, listenAlert(port)) != 1 {
		t.Errorf("with the damaged state ignored, the condition alerts again: %d events", len(third))
	}
	if _, err := state.LoadCooldowns(stateDir); err != nil {
		t.Errorf("state not rewritten after the damaged one: %v", err)
	}
}

// SIGHUP applies a new detector threshold, a new exception and new routes
// without restarting; an invalid file is logged and ignored; sink changes say
// "restart required". Per-sink routes from the command line filter what each
// file gets, and the report counts it.
func TestSIGHUPReloadsDetectionExceptionsAndRoutes(t *testing.T) {
	p1, p2 := loopbackListener(t), loopbackListener(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ns.yaml")
	onlySuspiciousPort(t, cfg, "1s", []int{p1}, "")
	report := filepath.Join(dir, "report.json")
	high, crit := filepath.Join(dir, "high.ndjson"), filepath.Join(dir, "crit.ndjson")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sensor := exec.CommandContext(ctx, binary, "-c", cfg, "-d", "60", "--interval", "200ms", "-o", report, "--log-format", "json",
		"--sink", "stdout", "--sink", "file:"+high+"?min_severity=high", "--sink", "file:"+crit+"?min_severity=critical")
	stdout, err := sensor.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	sensor.Stderr = &stderr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sensor.Process.Kill(); sensor.Wait() })
	events := readEvents(stdout)
	events.WaitFor(t, "alert for the first port", 10*time.Second, listenAlert(p1))

	// p2 becomes suspicious too; p1 gets an exception; namespace needs a restart.
	onlySuspiciousPort(t, cfg, "1s", []int{p1, p2}, fmt.Sprintf(
		"namespace: elsewhere\nexceptions:\n  - name: known-p1\n    rules: [suspicious_port]\n    match: {source.port: [%d], source.ip: [127.0.0.0/8]}\n", p1))
	if err := sensor.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &stderr, "configuration reloaded", 10*time.Second)
	waitLog(t, &stderr, "sink reopened", time.Second)
	if log := stderr.String(); !strings.Contains(log, "restart required") || !strings.Contains(log, `"namespace"`) {
		t.Errorf("no restart-required line naming namespace:\n%s", log)
	}
	// The new threshold: p2 alerts (its first alert follows every p1 alert
	// published before the reload); p1 stays silent while p2 alerts again
	// after its 1 s cooldown.
	events.WaitFor(t, "alert for the second port", 10*time.Second, listenAlert(p2))
	p1Before := countOf(events.All(), listenAlert(p1))
	waitCount(t, events, listenAlert(p2), 2, 10*time.Second)
	if n := countOf(events.All(), listenAlert(p1)); n != p1Before {
		t.Fatalf("the exception did not silence port %d: %d alerts after the reload", p1, n-p1Before)
	}

	// An invalid file: logged with the reason, the running config stays.
	if err := os.WriteFile(cfg, []byte("detect:\n  colldown: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sensor.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &stderr, "configuration rejected", 10*time.Second)
	if !strings.Contains(stderr.String(), "colldown") {
		t.Errorf("the rejection does not name the bad key:\n%s", stderr.String())
	}
	waitCount(t, events, listenAlert(p2), countOf(events.All(), listenAlert(p2))+1, 10*time.Second)
	if n := countOf(events.All(), listenAlert(p1)); n != p1Before {
		t.Fatalf("after the rejected reload port %d alerted again", p1)
	}

	if err := sensor.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := sensor.Wait(); err != nil {
		t.Fatalf("sensor: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Summary struct {
			Total int `json:"total_threats"`
		} `json:"executive_summary"`
		Detection struct {
			Suppressed map[string]int `json:"suppressed_by_exception"`
		} `json:"detection_statistics"`
		Sinks map[string]struct {
			Counters struct{ Sent, Offered, Filtered int } `json:"counters"`
		} `json:"sink_statistics"`
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Detection.Suppressed["known-p1"] < 1 {
		t.Errorf("report suppressed_by_exception = %v, want known-p1 counted", rep.Detection.Suppressed)
	}
	h, c := rep.Sinks["file:"+high].Counters, rep.Sinks["file:"+crit].Counters
	if h.Offered != rep.Summary.Total || h.Sent != h.Offered || h.Filtered != 0 {
		t.Errorf("high sink %+v, want all %d alerts sent", h, rep.Summary.Total)
	}
	if c.Offered != rep.Summary.Total || c.Filtered != c.Offered || c.Sent != 0 {
		t.Errorf("critical sink %+v, want all %d alerts filtered", c, rep.Summary.Total)
	}
	if b, _ := os.ReadFile(high); strings.Count(string(b), "\n") != rep.Summary.Total {
		t.Errorf("high file holds %d lines, want %d", strings.Count(string(b), "\n"), rep.Summary.Total)
	}
	if b, _ := os.ReadFile(crit); len(b) != 0 {
		t.Errorf("critical file holds %d bytes of high-severity alerts", len(b))
	}
}

// waitCount waits until n events match fn.
func waitCount(t *testing.T, s interface{ All() []map[string]any }, fn func(map[string]any) bool, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for countOf(s.All(), fn) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d matching events within %s", n, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
