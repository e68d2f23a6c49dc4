package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// snapshotFIFO feeds `netsentinel replay FIFO` one snapshot at a time, so
// the test decides when the sensor polls and when its poll loop stalls.
type snapshotFIFO struct {
	path string
	f    *os.File
	enc  *json.Encoder
	n    int
	t0   time.Time
}

func newSnapshotFIFO(t *testing.T, dir string) *snapshotFIFO {
	t.Helper()
	path := filepath.Join(dir, "snapshots.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return &snapshotFIFO{path: path, t0: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
}

// open blocks until netsentinel has opened the FIFO for reading.
func (s *snapshotFIFO) open(t *testing.T) {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		s.f = f
		ch <- err
	}()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
		s.enc = json.NewEncoder(s.f)
	case <-time.After(60 * time.Second):
		t.Fatal("netsentinel never opened the snapshot FIFO")
	}
}

// send writes one poll: a fresh process connected to a TEST-NET host on a
// RAT port (suspicious_port) and to a Tor port (tor), 3 s after the last,
// so every snapshot closes a 2 s report window.
func (s *snapshotFIFO) send(t *testing.T) {
	t.Helper()
	i := s.n
	s.n++
	ts := s.t0.Add(time.Duration(i) * 3 * time.Second)
	pid := int32(2000 + i)
	snap := &collector.Snapshot{Time: ts, Hostname: "e2e-monitor",
		Processes: map[int32]*collector.Process{pid: {PID: pid, PPID: 1, Name: "implant", StartTime: ts}},
		Stats:     collector.Stats{Sockets: 2, Processes: 1, Duration: 3 * time.Millisecond},
		Sockets: []collector.Socket{
			{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(2 * pid), FirstSeen: ts,
				Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(40000+i)),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), 4444)},
			{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(2*pid + 1), FirstSeen: ts,
				Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(50000+i)),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)}), 9001)},
		}}
	if err := s.enc.Encode(snap); err != nil {
		t.Fatalf("writing snapshot %d: %v", i, err)
	}
}

// get returns the status and body of url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls check every 50 ms until it returns "" or d passes.
func eventually(t *testing.T, d time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %s", what, msg, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricNames are the series names the README lists and dashboards use.
var metricNames = []string{
	`netsentinel_build_info{goversion="go`, `netsentinel_alerts_total{rule="suspicious_port",severity="high",technique="T1571"}`,
	`netsentinel_alerts_suppressed_total{exception="lab-tor-relay"}`, `netsentinel_polls_total 3`,
	`netsentinel_poll_errors_total 0`, `netsentinel_poll_duration_seconds_bucket{le="0.005"} 3`,
	`netsentinel_poll_duration_seconds_count 3`, `netsentinel_sockets 2`, `netsentinel_sockets_without_pid 0`,
	`netsentinel_processes 1`, `netsentinel_destroy_events_lost_total 0`, `netsentinel_neighbor_events_lost_total 0`,
	`netsentinel_sink_queue_events{sink="elasticsearch:http://elastic:xxxxx@127.0.0.1:1"}`,
	`netsentinel_sink_dropped_total{reason="retries_exhausted",sink="elasticsearch:http://elastic:xxxxx@127.0.0.1:1"}`,
	`netsentinel_spool_bytes{sink="file:`, `netsentinel_last_report_timestamp_seconds `,
	`go_goroutines `, `process_resident_memory_bytes `,
}

// The monitoring endpoint of a real run: /metrics passes promtool and has
// every documented series; /readyz names the sink that cannot connect;
// /healthz and `netsentinel health` follow the poll loop as it stalls and
// resumes.
func TestMonitoringEndpoint(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (Debian package prometheus; scripts/test.sh installs it)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netsentinel.yaml")
	if err := os.WriteFile(cfg, []byte(`
spool: {disabled: true}
queue: {max_retries: 1, backoff_initial: 10ms, backoff_max: 20ms, drain_timeout: 2s}
elasticsearch: {request_timeout: 1s, retry: {initial: 10ms, max: 20ms, max_attempts: 1}}
exceptions:
  - name: lab-tor-relay
    rules: [tor]
    match: {destination.port: [9001]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := newSnapshotFIFO(t, dir)
	var stderr syncBuffer
	cmd := exec.Command(binary, "replay", fifo.path, "-c", cfg, "-d", "0", "--window", "2s", "--interval", "200ms",
		"--http-address", "127.0.0.1:0", "--log-format", "json", "-o", filepath.Join(dir, "report.json"),
		"--sink", "file:"+filepath.Join(dir, "alerts.ndjson"), "--sink", "elasticsearch:http://elastic:s3cr3t@127.0.0.1:1")
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("netsentinel stderr:\n%s", stderr.String())
		}
	})
	fifo.open(t)

	var base string
	addrRe := regexp.MustCompile(`"http_address":"([^"]+)"`)
	eventually(t, 30*time.Second, "monitoring endpoint address in the log", func() string {
		if m := addrRe.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			return ""
		}
		return "not logged"
	})

	for range 3 {
		fifo.send(t)
	}
	eventually(t, 30*time.Second, "3 polls and the dropped elasticsearch events in /metrics", func() string {
		_, body := get(t, base+"/metrics")
		if !strings.Contains(body, "netsentinel_polls_total 3") || !strings.Contains(body, `reason="retries_exhausted"`) {
			return "missing"
		}
		return ""
	})
	_, scrape := get(t, base+"/metrics")
	for _, name := range metricNames {
		if !strings.Contains(scrape, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, outcome := range []string{"sent", "retried", "duplicate", "dead_lettered", "spooled", "dropped"} {
		if !strings.Contains(scrape, fmt.Sprintf(`netsentinel_sink_events_total{outcome=%q,sink="file:`, outcome)) {
			t.Errorf("/metrics lacks netsentinel_sink_events_total outcome %s", outcome)
		}
	}
	if strings.Contains(scrape, "s3cr3t") {
		t.Error("/metrics carries the sink password")
	}
	if m := regexp.MustCompile(`netsentinel_last_report_timestamp_seconds (\S+)`).FindStringSubmatch(scrape); m == nil || m[1] == "0" {
		t.Errorf("no window report time in /metrics: %v", m)
	}
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(scrape)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Readiness: the elasticsearch sink never connected.
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || strings.Count(body, "\n") != 1 ||
		!strings.Contains(body, "elasticsearch:http://elastic:xxxxx@127.0.0.1:1") || strings.Contains(body, "s3cr3t") {
		t.Errorf("/readyz = %d %q, want 503 and one line naming the redacted elasticsearch sink", code, body)
	}

	// Liveness while polling, then with the poll loop stalled (no snapshot
	// for more than three 200 ms intervals), then polling again.
	health := func() (int, string) {
		var out, errb bytes.Buffer
		h := exec.Command(binary, "health", "--url", base+"/healthz")
		h.Stdout, h.Stderr = &out, &errb
		_ = h.Run() // the exit code is the answer
		return h.ProcessState.ExitCode(), out.String() + errb.String()
	}
	fifo.send(t)
	eventually(t, 10*time.Second, "/healthz 200 right after a poll", func() string {
		if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
			return fmt.Sprint(code)
		}
		if code, out := health(); code != 0 {
			return fmt.Sprintf("health exit %d: %s", code, out)
		}
		return ""
	})
	eventually(t, 10*time.Second, "/healthz 503 with the poll loop stalled", func() string {
		code, body := get(t, base+"/healthz")
		if code != http.StatusServiceUnavailable {
			return fmt.Sprint(code)
		}
		if !strings.Contains(body, "last successful poll") {
			return "reason " + body
		}
		return ""
	})
	if code, out := health(); code != 1 || !strings.Contains(out, "503") || strings.Count(out, "\n") != 1 {
		t.Errorf("netsentinel health with a stalled loop: exit %d, %q; want 1 and one line with the status", code, out)
	}
	fifo.send(t)
	eventually(t, 10*time.Second, "/healthz 200 again after a poll", func() string {
		if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
			return fmt.Sprint(code)
		}
		return ""
	})

	// End of the recording: a clean exit, and the endpoint is gone.
	fifo.f.Close()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("netsentinel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("netsentinel did not exit at the end of the recording")
	}
	if code, out := health(); code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("netsentinel health after exit: %d %q", code, out)
	}
}
