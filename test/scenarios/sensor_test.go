package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
	"github.com/netsentinel/netsentinel/test/sensortest"
)

const (
	// pollInterval is the sensor's --interval in every scenario.
	pollInterval = time.Second
	// latencySlack covers what is not the sensor's polling: starting the tool
	// through nsenter, the first packets, and the stdout pipe.
	latencySlack = time.Second
	// maxLatency is the bound every detection must meet.
	maxLatency = 2*pollInterval + latencySlack
)

// Shared with test/e2e (test/sensortest).
type eventStream = sensortest.EventStream

var (
	readEvents = sensortest.ReadEvents
	describe   = sensortest.Describe
	field      = sensortest.Field
	str        = sensortest.Str
	hasString  = sensortest.HasString
	techniques = sensortest.Techniques
)

// isTechnique matches an alert of rule (any rule when "") carrying technique
// id tech (a technique or sub-technique id).
func isTechnique(rule, tech string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		if rule != "" && str(e, "rule.id") != rule {
			return false
		}
		return hasString(e, "threat.technique.id", tech) || hasString(e, "threat.technique.subtechnique.id", tech)
	}
}

// and combines matchers.
func and(fns ...func(map[string]any) bool) func(map[string]any) bool {
	return func(e map[string]any) bool {
		for _, f := range fns {
			if !f(e) {
				return false
			}
		}
		return true
	}
}

func destIs(ip string) func(map[string]any) bool {
	return func(e map[string]any) bool { return str(e, "destination.ip") == ip }
}

func procIs(name string) func(map[string]any) bool {
	return func(e map[string]any) bool { return str(e, "process.name") == name }
}

// sensor is netsentinel running inside the monitored host.
type sensor struct {
	t       *testing.T
	topo    *netns.Topology
	cmd     *exec.Cmd
	events  *eventStream
	dir     string
	report  string
	stderr  string
	resolv  string // the resolv.conf the sensor watches
	relays  string // the Tor relay list the sensor loads
	stopped bool
	mode    mode
}

// sensorOptions tune one scenario's sensor.
type sensorOptions struct {
	// resolver is the nameserver in the sensor's resolv.conf.
	resolver string
	// relays are the Tor relay list entries.
	relays []string
	// mode is root or unprivileged (zero value: unprivileged; scenarios
	// pass the mode eachMode gives them).
	mode mode
	// detectors is YAML added under detect.detectors (indented 4 spaces).
	detectors string
	// hostNS runs the sensor in the machine's own namespaces, the only ones
	// where the kernel's process connector (exec events) answers: it then
	// sees every process and socket of the machine, not the topology's.
	hostNS bool
}

// startSensor runs netsentinel in the monitored host with a config written
// for the scenario, and stops it (SIGINT, report written) at cleanup, before
// the topology is removed. With NETSENTINEL_RECORD_DIR set, it records every
// snapshot to DIR/<name>.ndjson.gz.
func startSensor(t *testing.T, topo *netns.Topology, name string, o sensorOptions) *sensor {
	t.Helper()
	dir := sensorDir(t, o.mode)
	s := &sensor{t: t, topo: topo, dir: dir, mode: o.mode, report: filepath.Join(dir, "report.json"),
		stderr: filepath.Join(dir, "stderr.log"), resolv: filepath.Join(dir, "resolv.conf"),
		relays: filepath.Join(dir, "tor-relays.txt")}
	if o.resolver == "" {
		o.resolver = netns.GatewayIP
	}
	writeFile(t, s.resolv, "# written by the scenario test\nnameserver "+o.resolver+"\n")
	writeFile(t, s.relays, "# Tor relays for the scenario test (TEST-NET)\n"+strings.Join(o.relays, "\n")+"\n")
	cfg := fmt.Sprintf(`resolv_conf: %q
destroy_events: true
detect:
  home_net: ["10.0.0.0/8"]
  detectors:
    tor:
      relay_list: %q
%s`, s.resolv, s.relays, o.detectors)
	cfgPath := filepath.Join(dir, "netsentinel.yaml")
	writeFile(t, cfgPath, cfg)
	chownForSensor(t, o.mode, s.resolv, s.relays, cfgPath)

	args := []string{"-d", "0", "--window", "10m", "--interval", pollInterval.String(), "-o", s.report,
		"--log-format", "json", "--log-level", "debug", "-c", cfgPath}
	if rd := os.Getenv("NETSENTINEL_RECORD_DIR"); rd != "" && o.mode.Privileged {
		if err := os.MkdirAll(rd, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"record", filepath.Join(rd, name+".ndjson.gz")}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	name0, args := sensorCommand(o.mode, binary, args)
	if o.hostNS {
		s.cmd = exec.CommandContext(ctx, name0, args...)
	} else {
		s.cmd = topo.HostCmd(ctx, name0, args...)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ef, err := os.OpenFile(s.stderr, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ef.Close() })
	s.cmd.Stderr = ef
	if err := topo.Background(s.cmd); err != nil {
		t.Fatalf("starting sensor: %v", err)
	}
	s.events = readEvents(stdout)
	t.Cleanup(s.stop)
	// The first poll is the baseline (processes already running are not
	// "spawned"): wait until it is done, however slow the machine.
	s.waitLog(t, `"msg":"poll"`, 30*time.Second)
	checkSensorIdentity(t, o.mode, s.cmd.Process.Pid)
	return s
}

// waitLog waits until the sensor's stderr has a line containing substr.
func (s *sensor) waitLog(t *testing.T, substr string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(s.stderr); bytes.Contains(b, []byte(substr)) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.stderr)
			t.Fatalf("sensor logged no %s within %s; stderr:\n%s", substr, d, b)
		}
	}
}

// stop ends the sensor with SIGINT and waits for it to write its report.
func (s *sensor) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	t := s.t
	if err := netns.SignalChild(s.cmd, syscall.SIGINT); err != nil {
		t.Errorf("signalling sensor: %v", err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(s.stderr)
			t.Errorf("sensor exited with %v; stderr:\n%s", err, b)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("sensor did not exit within 20 s of SIGINT")
	}
	if bad := s.events.BadLines(); len(bad) > 0 {
		t.Errorf("stdout carried %d non-JSON lines, first: %q", len(bad), bad[0])
	}
	if t.Failed() {
		b, _ := os.ReadFile(s.stderr)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("sensor stderr (tail):\n%s", b)
	}
}

// expect waits for an alert matching fn, asserts it arrived within maxLatency
// of since, and records the result row. It returns the alert.
func (s *sensor) expect(t *testing.T, scenario, technique string, since time.Time, note string, fn func(map[string]any) bool) map[string]any {
	t.Helper()
	return s.expectWithin(t, scenario, technique, since, maxLatency, note, fn)
}

// expectWithin is expect with a documented bound other than two polls plus
// slack (a rule whose evidence can arrive one probe late, say).
func (s *sensor) expectWithin(t *testing.T, scenario, technique string, since time.Time, bound time.Duration, note string, fn func(map[string]any) bool) map[string]any {
	t.Helper()
	e, at := s.events.WaitFor(t, scenario+" alert ("+technique+")", bound+15*time.Second, fn)
	lat := at.Sub(since)
	if lat < 0 {
		lat = 0
	}
	recordDetection(scenario, s.mode, technique, lat, note)
	t.Logf("%s: %s after %.2f s", scenario, describe(e), lat.Seconds())
	if lat > bound {
		t.Errorf("%s: alert %.2f s after the behaviour became observable, want <= %s", scenario, lat.Seconds(), bound)
		s.explainLate(t, since, at)
	}
	return e
}

// explainLate logs, for a late alert, the sensor's polls and the alerts that
// arrived from a poll before since to the late one: whether the polls ran
// late or ran on time without the alert.
func (s *sensor) explainLate(t *testing.T, since, at time.Time) {
	t.Helper()
	from, to := since.Add(-pollInterval), at.Add(pollInterval/2)
	var b strings.Builder
	fmt.Fprintf(&b, "observable at %s, alert arrived %s; polls and alerts between:\n", since.UTC().Format("15:04:05.000"), at.UTC().Format("15:04:05.000"))
	data, _ := os.ReadFile(s.stderr)
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &m) != nil || m.Msg != "poll" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m.TS)
		if err == nil && ts.After(from) && ts.Before(to) {
			fmt.Fprintf(&b, "  %s %s\n", ts.UTC().Format("15:04:05.000"), line)
		}
	}
	for _, e := range s.events.Arrivals() {
		if e.At.After(from) && e.At.Before(to) {
			fmt.Fprintf(&b, "  %s alert @timestamp=%v %s\n", e.At.UTC().Format("15:04:05.000"), field(e.M, "@timestamp"), describe(e.M))
		}
	}
	t.Log(b.String())
}

// wantField asserts a string field of an alert.
func wantField(t *testing.T, e map[string]any, path, want string) {
	t.Helper()
	if got := fmt.Sprint(field(e, path)); got != want {
		t.Errorf("%s = %s, want %s; alert: %s", path, got, want, describe(e))
	}
}

// wantNone fails if any alert matching fn has arrived.
func (s *sensor) wantNone(t *testing.T, what string, fn func(map[string]any) bool) {
	t.Helper()
	for _, e := range s.events.All() {
		if fn(e) {
			t.Errorf("unexpected %s: %s", what, describe(e))
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
