package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// outageConfig is the sensor config: the network sink under test and a
// local file sink beside it, small queues so an outage reaches the spool,
// and retries capped at 2 s so recovery is noticed quickly.
func outageConfig(dir, netSink, extra string) string {
	return fmt.Sprintf(`output: %s
sinks: [%q, %q]
interval: 100ms
log: {level: info}
queue:
  queue_size: 100
  backoff_initial: 200ms
  backoff_max: 2s
  drain_timeout: 30s
elasticsearch:
  fail_fast: false
  request_timeout: 5s
  retry: {initial: 200ms, max: 1s, max_attempts: 2}
  headers: {VL-Msg-Field: message, VL-Time-Field: "@timestamp"}
%s`, filepath.Join(dir, "report.json"), netSink, "file:"+filepath.Join(dir, "alerts.ndjson"), extra)
}

// TestElasticsearchStoreDownSixtySeconds: VictoriaLogs (the Elasticsearch
// bulk store) is stopped (SIGTERM) for 60 s while alerts stream at 10/s, then restarted
// on the same port and storage. Every alert must land (counted by distinct
// event.id: the store does not deduplicate), the file sink must keep up the
// whole time, and the report must show the outage went through the spool
// with nothing dropped.
func TestElasticsearchStoreDownSixtySeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("90 s outage test")
	}
	outage := 60 * time.Second
	if v := os.Getenv("NETSENTINEL_FAULT_OUTAGE"); v != "" { // shorter while developing
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	vl := testserver.StartVictoriaLogs(t)
	base := vl.Base
	dir := t.TempDir()
	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, outageConfig(dir, "elasticsearch:"+base+"/insert/elasticsearch", ""))
	st.open(t)
	ctx, cancel := context.WithTimeout(context.Background(), outage+2*time.Minute)
	defer cancel()
	alerts := filepath.Join(dir, "alerts.ndjson")

	const rate = 100 * time.Millisecond
	tick := time.NewTicker(rate)
	defer tick.Stop()
	phase := func(d time.Duration, check func()) {
		end := time.Now().Add(d)
		lastCheck := time.Now()
		for time.Now().Before(end) && ctx.Err() == nil {
			<-tick.C
			st.send(t)
			if check != nil && time.Since(lastCheck) >= time.Second {
				lastCheck = time.Now()
				check()
			}
		}
	}
	// The file sink must never fall behind by more than 3 s of alerts.
	maxLag := 0
	fileKeepsUp := func() {
		lag := st.n - len(fileIDs(t, alerts))
		maxLag = max(maxLag, lag)
		if lag > 30 {
			t.Errorf("file sink %d alerts behind the stream during the store outage", lag)
		}
	}

	phase(5*time.Second, nil)
	// SIGTERM: VictoriaLogs answers 200 before it flushes to disk, so a
	// SIGKILL would lose what it had acknowledged (its durability, not ours).
	vl.Stop()
	t.Logf("store stopped after %d alerts", st.n)
	phase(outage, fileKeepsUp)
	restart(t, vl)
	t.Logf("store restarted after %d alerts", st.n)
	phase(5*time.Second, fileKeepsUp)
	st.close()
	s.wait(t, 60*time.Second)

	want := fileIDs(t, alerts)
	if len(want) < st.n {
		t.Fatalf("file sink has %d alerts for %d snapshots", len(want), st.n)
	}
	got := vlEventIDs(t, vl)
	missing := 0
	for _, id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups++
		}
	}
	t.Logf("%d alerts, %d distinct event.ids in the store (%d stored more than once), file sink max lag %d",
		len(want), len(got), dups, maxLag)
	if missing > 0 {
		t.Fatalf("%d of %d alerts never reached the store", missing, len(want))
	}
	c := sinkCounters(t, filepath.Join(dir, "report.json"))
	var es map[string]any
	for name, v := range c {
		if len(name) > 13 && name[:13] == "elasticsearch" {
			es = v
		}
	}
	if es == nil {
		t.Fatalf("report has no elasticsearch sink: %v", c)
	}
	if num(es, "spooled") == 0 || num(es, "dropped") != 0 {
		t.Fatalf("elasticsearch counters %v: want spooled > 0 (queue 100 < outage) and nothing dropped", es)
	}
	t.Logf("elasticsearch sink counters: %v", es)
}

// TestKafkaBrokerKilledAndRestarted: the broker (with its log on disk) is
// SIGKILLed mid-stream and restarted 10 s later on the same port. Every alert
// must be in the topic afterwards.
func TestKafkaBrokerKilledAndRestarted(t *testing.T) {
	const topic = "alerts"
	br := testserver.StartKafkaBroker(t, "-partitions", "1", "-topics", topic, "-data-dir", filepath.Join(t.TempDir(), "data"), "-sync-writes")
	addr := br.Addr
	dir := t.TempDir()
	st := newStream(t, dir)
	extra := "kafka:\n  write_timeout: 2s\n  retry: {initial: 200ms, max: 1s, max_attempts: 2}\n"
	s := startSensor(t, dir, st.path, outageConfig(dir, "kafka:"+addr+"/"+topic, extra))
	st.open(t)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	send := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			<-tick.C
			st.send(t)
		}
	}
	send(3 * time.Second)
	br.Kill()
	t.Logf("broker killed after %d alerts", st.n)
	send(10 * time.Second)
	br.Restart()
	t.Logf("broker restarted after %d alerts", st.n)
	send(3 * time.Second)
	st.close()
	s.wait(t, 60*time.Second)

	want := fileIDs(t, filepath.Join(dir, "alerts.ndjson"))
	if len(want) < st.n {
		t.Fatalf("file sink has %d alerts for %d snapshots", len(want), st.n)
	}
	got := kafkaEventIDs(t, addr, topic)
	missing := 0
	for _, id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	t.Logf("%d alerts, %d distinct event.ids in the topic", len(want), len(got))
	if missing > 0 {
		t.Fatalf("%d of %d alerts never reached the topic", missing, len(want))
	}
}
