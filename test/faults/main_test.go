// Package faults runs the built netsentinel binary against the real test
// servers (VictoriaLogs for the Elasticsearch bulk API, kfake for Kafka; see
// test/servers) and breaks things on purpose: the store stops for a minute,
// the broker is killed, netsentinel itself is killed, the disk is full, the
// spool is damaged. Alerts come from a paced stream of snapshots written to
// a FIFO that `netsentinel replay` reads as they arrive, so the binary runs
// its real pipeline (detect → format → per-sink runner → spool) live.
package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/netsentinel/netsentinel/collector"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsentinel-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "netsentinel")
	build := exec.Command("go", "build", "-o", binary, "./cmd/netsentinel")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building netsentinel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/netsentinel/netsentinel\n")) {
			return d
		}
	}
	return wd
}

// serverBin finds a test server binary, or fails (CI,
// NETSENTINEL_REQUIRE_SERVERS=1) or skips loudly.
func serverBin(t *testing.T, name, script string) string {
	t.Helper()
	bin := filepath.Join(repoRoot(), "test", "servers", "bin", name)
	if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
		return bin
	}
	msg := fmt.Sprintf("%s not found at %s: run test/servers/%s", name, bin, script)
	if os.Getenv("CI") != "" || os.Getenv("NETSENTINEL_REQUIRE_SERVERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING FAULT TEST: " + msg)
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is a restartable test server process on a fixed address and data
// directory.
type server struct {
	t      *testing.T
	name   string
	args   []string
	log    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	ready  func() error
}

func (s *server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(s.log)
			s.t.Fatalf("%s exited at start: %s", s.name, tail(b, 1500))
		default:
		}
		if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("%s not ready: %v", s.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// stop sends SIGTERM (a clean shutdown: the store flushes what it
// acknowledged) and waits up to 15 s before killing.
func (s *server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// victoriaLogs starts VictoriaLogs (Elasticsearch bulk API) on loopback with
// its storage in a test directory, so a restart keeps what it stored.
func victoriaLogs(t *testing.T) (*server, string) {
	bin := serverBin(t, "victoria-logs", "build.sh")
	dir := t.TempDir()
	addr := freePort(t)
	base := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	s := &server{t: t, name: "victoria-logs", log: filepath.Join(dir, "vl.log"),
		args: []string{bin, "-storageDataPath=" + filepath.Join(dir, "data"), "-httpListenAddr=" + addr,
			"-retentionPeriod=100y", "-loggerLevel=WARN"},
		ready: func() error {
			res, err := client.Get(base + "/health")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				return fmt.Errorf("health: %s", res.Status)
			}
			return nil
		}}
	s.start()
	t.Cleanup(s.kill)
	return s, base
}

// vlEventIDs returns the distinct event.id values stored (VictoriaLogs does
// not deduplicate; a retried document may be there twice).
func vlEventIDs(t *testing.T, base string) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	if res, err := client.Get(base + "/internal/force_flush"); err == nil {
		res.Body.Close()
	}
	q := url.Values{"query": {`event.id:* | fields event.id`}, "limit": {"10000000"}}
	res, err := client.Get(base + "/select/logsql/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("query: %s %s", res.Status, b)
	}
	ids := map[string]int{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query row %q: %v", sc.Text(), err)
		}
		ids[row["event.id"]]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// kafkaBroker starts the kfake broker with a persistent log directory.
func kafkaBroker(t *testing.T, topic string) (*server, string) {
	bin := serverBin(t, "kafkabroker", "build-kafkabroker.sh")
	dir := t.TempDir()
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	s := &server{t: t, name: "kafkabroker", log: filepath.Join(dir, "broker.log"),
		args: []string{bin, "-port", port, "-partitions", "1", "-topics", topic, "-data-dir", filepath.Join(dir, "data"),
			"-sync-writes"},
		ready: func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			c.Close()
			return nil
		}}
	s.start()
	t.Cleanup(s.kill)
	return s, addr
}

// stream writes snapshots into a FIFO read by `netsentinel replay`: each
// snapshot holds one fresh process connected to a fresh TEST-NET address on
// port 4444, which the suspicious_port rule turns into exactly one alert.
type stream struct {
	path string
	f    *os.File
	n    int
	enc  *json.Encoder
}

func newStream(t *testing.T, dir string) *stream {
	t.Helper()
	path := filepath.Join(dir, "snapshots.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return &stream{path: path}
}

// open blocks until the reader (netsentinel) has opened the FIFO.
func (s *stream) open(t *testing.T) {
	t.Helper()
	type res struct {
		f   *os.File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		s.f, s.enc = r.f, json.NewEncoder(r.f)
	case <-time.After(30 * time.Second):
		t.Fatal("netsentinel never opened the snapshot FIFO")
	}
}

// testNetAddr maps i to a distinct address in the three TEST-NET blocks and
// 100.64.0.0/10 beyond them.
func testNetAddr(i int) netip.Addr {
	switch {
	case i < 250:
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)})
	case i < 500:
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i - 250)})
	case i < 750:
		return netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i - 500)})
	default:
		j := i - 750
		return netip.AddrFrom4([4]byte{100, byte(64 + j>>16&63), byte(j >> 8), byte(j)})
	}
}

// send writes one snapshot (one new alert).
func (s *stream) send(t *testing.T) {
	t.Helper()
	i := s.n
	s.n++
	ts := time.Now().UTC()
	pid := int32(10000 + i)
	snap := &collector.Snapshot{
		Time: ts, Hostname: "faults",
		Processes: map[int32]*collector.Process{pid: {PID: pid, PPID: 1, Name: "ncat", StartTime: ts}},
		Sockets: []collector.Socket{{Proto: "tcp", Family: 4, State: "ESTABLISHED", PID: pid, Inode: uint64(pid), FirstSeen: ts,
			Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(20000+i%40000)),
			Remote: netip.AddrPortFrom(testNetAddr(i), 4444)}},
	}
	if err := s.enc.Encode(snap); err != nil {
		t.Fatalf("writing snapshot %d: %v", i, err)
	}
}

func (s *stream) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// sensor is a running netsentinel.
type sensor struct {
	cmd    *exec.Cmd
	stderr string
	exited chan error
}

// startSensor runs `netsentinel replay FIFO` with a config file.
func startSensor(t *testing.T, dir, fifo, config string, args ...string) *sensor {
	t.Helper()
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	stderrPath := cfgPath + ".stderr"
	errf, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"replay", fifo, "-c", cfgPath, "--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sensor{cmd: cmd, stderr: stderrPath, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait(); errf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
		s.exited <- nil
		if t.Failed() {
			b, _ := os.ReadFile(stderrPath)
			t.Logf("netsentinel stderr (tail):\n%s", tail(b, 4000))
		}
	})
	return s
}

// wait waits for a clean exit.
func (s *sensor) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			b, _ := os.ReadFile(s.stderr)
			t.Fatalf("netsentinel: %v\n%s", err, tail(b, 3000))
		}
	case <-time.After(d):
		t.Fatalf("netsentinel still running after %s", d)
	}
}

func (s *sensor) log() string {
	b, _ := os.ReadFile(s.stderr)
	return string(b)
}

// fileIDs reads the event ids of an NDJSON file, failing on any line that
// is not one JSON object.
func fileIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Event.ID == "" {
			t.Fatalf("%s line %d is not an alert object: %v: %.200q", path, i+1, err, line)
		}
		ids = append(ids, m.Event.ID)
	}
	return ids
}

// sinkCounters reads the per-sink counters from the final report.
func sinkCounters(t *testing.T, report string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Sinks map[string]struct {
			Counters map[string]any `json:"counters"`
		} `json:"sink_statistics"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for k, v := range r.Sinks {
		out[k] = v.Counters
	}
	return out
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func dropped(m map[string]any, reason string) float64 {
	by, _ := m["dropped_by_reason"].(map[string]any)
	f, _ := by[reason].(float64)
	return f
}

// ctxSleep sleeps d unless the test deadline is closer.
func ctxSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kafkaEventIDs reads the whole topic (one partition) and counts event ids.
func kafkaEventIDs(t *testing.T, addr, topic string) map[string]int {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			break // nothing more within 3 s
		}
		var v struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil || v.Event.ID == "" {
			t.Fatalf("message at offset %d is not an alert: %v", m.Offset, err)
		}
		ids[v.Event.ID]++
	}
	return ids
}
