package faults

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// kafkaStartConfig is a sensor config with the Kafka sink under test and a
// file sink beside it (the list of alerts raised).
func kafkaStartConfig(dir, addr, topic string, failFast bool) string {
	return fmt.Sprintf(`output: %s
sinks: [%q, %q]
interval: 100ms
log: {level: info}
queue: {backoff_initial: 200ms, backoff_max: 1s}
kafka:
  fail_fast: %v
  write_timeout: 2s
  retry: {initial: 200ms, max: 1s, max_attempts: 2}
`, filepath.Join(dir, "report.json"), "kafka:"+addr+"/"+topic, "file:"+filepath.Join(dir, "alerts.ndjson"), failFast)
}

// TestKafkaBrokerDownAtStartStartsDegraded: no broker answers when
// netsentinel starts. It must say so, keep running and buffer the alerts,
// and deliver every one once the broker comes up; with fail_fast: true it
// exits instead, naming the brokers.
func TestKafkaBrokerDownAtStartStartsDegraded(t *testing.T) {
	const topic = "alerts"
	br := testserver.StartKafkaBroker(t, "-partitions", "1", "-topics", topic, "-data-dir", filepath.Join(t.TempDir(), "data"), "-sync-writes")
	addr := br.Addr
	br.Kill() // down before netsentinel starts

	t.Run("fail_fast", func(t *testing.T) {
		dir := t.TempDir()
		st := newStream(t, dir)
		s := startSensor(t, dir, st.path, kafkaStartConfig(dir, addr, topic, true))
		st.open(t) // the sinks start after the source is open
		defer st.close()
		select {
		case err := <-s.exited:
			s.exited <- err
			if err == nil || !strings.Contains(s.log(), addr) {
				t.Fatalf("fail_fast with the broker down: exit %v, want a failure naming %s:\n%s", err, addr, tail([]byte(s.log()), 2000))
			}
		case <-time.After(60 * time.Second):
			t.Fatal("fail_fast: still running with the broker down")
		}
	})

	dir := t.TempDir()
	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, kafkaStartConfig(dir, addr, topic, false))
	st.open(t) // it started: the FIFO is being read
	st.sendPaced(t, 20)
	if !strings.Contains(s.log(), "kafka sink not ready") {
		t.Errorf("the unreachable broker was not reported at start:\n%s", tail([]byte(s.log()), 2000))
	}
	br.Restart()
	t.Logf("broker up after %d alerts", st.n)
	st.sendPaced(t, 20)
	// Delivery begins once the broker answers: wait for it (the process is
	// still running), then stop.
	want := fileIDs(t, filepath.Join(dir, "alerts.ndjson"))
	var got map[string]int
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		got = kafkaEventIDs(t, addr, topic)
		missing = missing[:0]
		for _, id := range want {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(want) >= st.n && len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		want = fileIDs(t, filepath.Join(dir, "alerts.ndjson"))
	}
	st.close()
	s.wait(t, 60*time.Second)
	if len(want) < st.n {
		t.Fatalf("file sink has %d alerts for %d snapshots", len(want), st.n)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d alerts never reached the topic while netsentinel ran on (first %s):\n%s",
			len(missing), len(want), missing[0], tail([]byte(s.log()), 3000))
	}
	t.Logf("%d alerts, %d distinct event.ids in the topic", len(want), len(got))
}
