// Package faults runs the built netsentinel binary against the real test
// servers (VictoriaLogs for the Elasticsearch bulk API, kfake for Kafka; see
// test/servers) and breaks things on purpose: the store stops for a minute,
// the broker is killed, netsentinel itself is killed, the disk is full, the
// spool is damaged. Alerts come from a paced stream of snapshots written to
// a FIFO that `netsentinel replay` reads as they arrive, so the binary runs
// its real pipeline (detect → format → per-sink runner → spool) live.
package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/test/sensortest"
)

var binary string

func TestMain(m *testing.M) { sensortest.Main(m, "netsentinel-faults", &binary, nil) }

// vlEventIDs returns the distinct event.id values stored (VictoriaLogs does
// not deduplicate; a retried document may be there twice).
func vlEventIDs(t *testing.T, vl *testserver.VictoriaLogs) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, row := range vl.Query(t, `event.id:* | fields event.id`) {
		ids[row["event.id"]]++
	}
	return ids
}

// restart brings VictoriaLogs back on its address and storage.
func restart(t *testing.T, vl *testserver.VictoriaLogs) {
	t.Helper()
	if err := vl.Start(); err != nil {
		t.Fatal(err)
	}
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

// sendPaced writes n snapshots, one every 50 ms (a steady alert stream).
func (s *stream) sendPaced(t *testing.T, n int) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range n {
		<-tick.C
		s.send(t)
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
		Sockets: []collector.Socket{{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(pid), FirstSeen: ts,
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

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
