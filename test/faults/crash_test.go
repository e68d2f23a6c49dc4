package faults

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/sinks"
)

// TestSIGKILLDuringOutageBeforeRetriesRunOut is the user's report: the
// store is down, six alerts are raised (connections to :4444), and
// netsentinel is SIGKILLed while it is still retrying them, long before any
// retry budget runs out (default backoff 1 s -> 60 s, ten retries). With the
// disk buffer each alert is in the spool as soon as it is published, so the
// kill loses none: after the store is back, a restart on the same spool
// delivers all six.
func TestSIGKILLDuringOutageBeforeRetriesRunOut(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	base := vl.Base
	vl.Stop() // down before netsentinel starts
	dir := t.TempDir()
	spec := "elasticsearch:" + base + "/insert/elasticsearch"
	alerts := filepath.Join(dir, "alerts.ndjson")
	config := fmt.Sprintf(`output: %s
sinks: [%q, %q]
interval: 100ms
log: {level: info}
elasticsearch:
  fail_fast: false
  request_timeout: 2s
  retry: {initial: 100ms, max: 200ms, max_attempts: 2}
  headers: {VL-Msg-Field: message, VL-Time-Field: "@timestamp"}
`, filepath.Join(dir, "report.json"), spec, "file:"+alerts)

	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, config)
	st.open(t)
	st.sendPaced(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	retries := func() int { return strings.Count(s.log(), "sink write failed, retrying") }
	// Wait until all six are raised (the file sink has them), then until
	// two more Elasticsearch attempts have failed: every alert has been
	// tried and is now waiting for a retry, the state the report was about.
	for len(fileIDs(t, alerts)) < 6 {
		if ctx.Err() != nil {
			t.Fatalf("only %d of 6 alerts raised", len(fileIDs(t, alerts)))
		}
		ctxSleep(ctx, 20*time.Millisecond)
	}
	raised := time.Now()
	for before := retries(); retries() < before+2; {
		if ctx.Err() != nil {
			t.Fatal("the Elasticsearch sink never retried during the outage")
		}
		ctxSleep(ctx, 20*time.Millisecond)
	}
	if strings.Contains(s.log(), "sink dropped events") {
		t.Fatalf("events dropped before the kill:\n%s", tail([]byte(s.log()), 2000))
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	s.exited <- nil
	st.close()
	t.Logf("SIGKILL %s after the sixth alert, while retrying", time.Since(raised).Round(time.Millisecond))

	want := fileIDs(t, alerts)
	spooled := map[string]bool{}
	for _, id := range spooledIDs(t, filepath.Join(dir, "netsentinel-spool", sinks.SpoolDirName(spec))) {
		spooled[id] = true
	}
	for _, id := range want {
		if !spooled[id] {
			t.Errorf("alert %s not in the spool at the SIGKILL", id)
		}
	}

	restart(t, vl)
	emptyRun(t, dir, config)
	got := vlEventIDs(t, vl)
	for _, id := range want {
		if got[id] == 0 {
			t.Errorf("alert %s raised during the outage never reached the store after the restart", id)
		}
	}
	t.Logf("%d alerts raised during the outage, %d distinct in the store after the restart", len(want), len(got))
}
