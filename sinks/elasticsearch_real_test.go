package sinks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// EnvVictoriaLogsBin points at the victoria-logs binary; by default
// test/servers/bin/victoria-logs under the repository root (built by
// test/servers/build.sh).
const EnvVictoriaLogsBin = "NETSENTINEL_VICTORIALOGS_BIN"

// repoRoot walks up from the working directory to the directory holding
// this module's go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for range 20 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/netsentinel/netsentinel\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	tb.Fatal("repository root (go.mod of github.com/netsentinel/netsentinel) not found above the working directory")
	return ""
}

// victoriaLogsBin finds the binary, or fails (CI or
// NETSENTINEL_REQUIRE_SERVERS=1) or skips loudly.
func victoriaLogsBin(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv(EnvVictoriaLogsBin)
	if bin == "" {
		bin = filepath.Join(repoRoot(tb), "test", "servers", "bin", "victoria-logs")
	}
	if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return bin
	}
	msg := fmt.Sprintf("VictoriaLogs binary not found at %s: run test/servers/build.sh (or set %s)", bin, EnvVictoriaLogsBin)
	if os.Getenv("CI") != "" || os.Getenv("NETSENTINEL_REQUIRE_SERVERS") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip("SKIPPING REAL-STORE TEST: " + msg)
	return ""
}

// victoriaLogs is a VictoriaLogs process started on a free loopback port.
type victoriaLogs struct {
	base string // http://127.0.0.1:PORT
}

// startVictoriaLogs starts VictoriaLogs with a temporary storage directory
// on 127.0.0.1 and waits for /health; the process is killed at cleanup.
func startVictoriaLogs(tb testing.TB) *victoriaLogs {
	tb.Helper()
	bin := victoriaLogsBin(tb)
	var lastErr error
	for try := 0; try < 3; try++ { // a free port can be taken between probe and start
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		dir := tb.TempDir()
		logf, err := os.Create(filepath.Join(dir, "victoria-logs.log"))
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "-storageDataPath="+filepath.Join(dir, "data"), "-httpListenAddr="+addr,
			"-retentionPeriod=100y", "-loggerLevel=WARN")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
			logf.Close()
		}
		vl := &victoriaLogs{base: "http://" + addr}
		if lastErr = vl.waitHealthy(exited, 15*time.Second); lastErr == nil {
			tb.Cleanup(stop)
			return vl
		}
		stop()
		out, _ := os.ReadFile(logf.Name())
		lastErr = fmt.Errorf("%w; log: %s", lastErr, tail(out, 800))
	}
	tb.Fatalf("VictoriaLogs did not start: %v", lastErr)
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (v *victoriaLogs) waitHealthy(exited <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("victoria-logs exited: %v", err)
		default:
		}
		res, err := client.Get(v.base + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no healthy answer from %s/health within %s", v.base, limit)
}

// esConfig is the sink configuration for VictoriaLogs' Elasticsearch
// endpoint; the headers map message and @timestamp to its _msg and _time.
func (v *victoriaLogs) esConfig() ElasticsearchConfig {
	return ElasticsearchConfig{
		URL: v.base + "/insert/elasticsearch",
		Headers: map[string]string{
			"VL-Msg-Field":     "message",
			"VL-Time-Field":    "@timestamp",
			"VL-Stream-Fields": "host.name",
		},
		RequestTimeout: 30 * time.Second,
		Retry:          RetryConfig{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 5},
	}
}

// query runs a LogsQL query after making everything ingested searchable.
func (v *victoriaLogs) query(tb testing.TB, q string) []map[string]string {
	tb.Helper()
	res, err := http.Get(v.base + "/internal/force_flush")
	if err != nil {
		tb.Fatal(err)
	}
	res.Body.Close()
	res, err = http.PostForm(v.base+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if res.StatusCode != 200 {
		tb.Fatalf("query %q: HTTP %d: %s", q, res.StatusCode, tail(body, 500))
	}
	var rows []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			tb.Fatalf("query %q: row is not JSON: %v", q, err)
		}
		rows = append(rows, row)
	}
	return rows
}

func (v *victoriaLogs) count(tb testing.TB, filter string) int {
	tb.Helper()
	rows := v.query(tb, filter+" | stats count() as n")
	if len(rows) != 1 {
		tb.Fatalf("count %q: %d rows", filter, len(rows))
	}
	n, err := strconv.Atoi(rows[0]["n"])
	if err != nil {
		tb.Fatalf("count %q: %v", filter, rows[0])
	}
	return n
}

// TestElasticsearchRealVictoriaLogs ships alerts through the sink (driven by
// the Runner, as in production) into a real log store speaking the bulk
// protocol and reads them back by technique, event id and host.
func TestElasticsearchRealVictoriaLogs(t *testing.T) {
	vl := startVictoriaLogs(t)
	cfg := vl.esConfig()
	cfg.BatchSize = 100 // several bulk requests
	cfg.Workers = 2
	h := newTestES(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.es.Check(ctx); err != nil {
		t.Fatalf("Check against VictoriaLogs: %v", err)
	}

	const n = 600
	evs := makeECSAlerts("real", n)
	r := NewRunner(h.es, RunnerConfig{BatchSize: 250, FlushInterval: 20 * time.Millisecond}, h.stats, zap.NewNop())
	for _, ev := range evs {
		r.Publish(ev)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Sent != n || s.DeadLettered != 0 || s.Dropped != 0 || s.Failed != 0 {
		t.Fatalf("runner counters %+v, want %d sent and nothing else", s, n)
	}

	if got := vl.count(t, "*"); got != n {
		t.Fatalf("store holds %d alerts, want %d", got, n)
	}
	// Technique arrays are stored as JSON text: match by word.
	for _, tq := range ecsTechniques {
		if got, want := vl.count(t, fmt.Sprintf(`threat.technique.id:%q`, tq.tech)), n/len(ecsTechniques); got != want {
			t.Errorf("technique %s: %d alerts, want %d", tq.tech, got, want)
		}
	}
	if got := vl.count(t, `threat.technique.id:"T1499"`); got != 0 {
		t.Errorf("a technique never sent matched %d alerts: the queries prove nothing", got)
	}
	for _, host := range ecsHosts {
		if got, want := vl.count(t, fmt.Sprintf(`host.name:=%q`, host)), n/len(ecsHosts); got != want {
			t.Errorf("host %s: %d alerts, want %d", host, got, want)
		}
	}

	// One alert by event.id, field by field.
	want := evs[123]
	rows := vl.query(t, fmt.Sprintf(`event.id:=%q`, want.ID))
	if len(rows) != 1 {
		t.Fatalf("event.id %s: %d rows, want 1", want.ID, len(rows))
	}
	var doc struct {
		Timestamp string `json:"@timestamp"`
		Message   string `json:"message"`
		Event     struct {
			Action string `json:"action"`
		} `json:"event"`
		Source struct {
			IP string `json:"ip"`
		} `json:"source"`
	}
	if err := json.Unmarshal(want.Body, &doc); err != nil {
		t.Fatal(err)
	}
	got := rows[0]
	checks := map[string]string{
		"_msg":                got["_msg"],
		"event.action":        got["event.action"],
		"host.name":           got["host.name"],
		"source.ip":           got["source.ip"],
		"threat.technique.id": got["threat.technique.id"],
		"event.kind":          got["event.kind"],
	}
	expect := map[string]string{
		"_msg":                doc.Message,
		"event.action":        doc.Event.Action,
		"host.name":           want.Fields["host.name"],
		"source.ip":           doc.Source.IP,
		"threat.technique.id": `["` + want.Fields["technique"] + `"]`,
		"event.kind":          "alert",
	}
	for k, w := range expect {
		if checks[k] != w {
			t.Errorf("%s = %q, want %q", k, checks[k], w)
		}
	}
	ts, err1 := time.Parse(time.RFC3339Nano, got["_time"])
	wantTS, err2 := time.Parse(time.RFC3339Nano, doc.Timestamp)
	if err1 != nil || err2 != nil || !ts.Equal(wantTS) {
		t.Errorf("_time %q, want @timestamp %q", got["_time"], doc.Timestamp)
	}
	if strings.Contains(got["_msg"], "missing _msg") {
		t.Error("VL-Msg-Field header not honoured")
	}
}
