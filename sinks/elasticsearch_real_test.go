package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// esConfig is the sink configuration for VictoriaLogs' Elasticsearch
// endpoint; the headers map message and @timestamp to its _msg and _time.
func esConfigFor(v *testserver.VictoriaLogs) ElasticsearchConfig {
	return ElasticsearchConfig{
		URL:            v.InsertURL(),
		Headers:        v.Headers(),
		RequestTimeout: 30 * time.Second,
		Retry:          RetryConfig{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, MaxAttempts: 5},
	}
}

// TestElasticsearchRealVictoriaLogs ships alerts through the sink (driven by
// the Runner, as in production) into a real log store speaking the bulk
// protocol and reads them back by technique, event id and host.
func TestElasticsearchRealVictoriaLogs(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	cfg := esConfigFor(vl)
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

	if got := vl.Count(t, "*"); got != n {
		t.Fatalf("store holds %d alerts, want %d", got, n)
	}
	// Technique arrays are stored as JSON text: match by word.
	for _, tq := range ecsTechniques {
		if got, want := vl.Count(t, fmt.Sprintf(`threat.technique.id:%q`, tq.tech)), n/len(ecsTechniques); got != want {
			t.Errorf("technique %s: %d alerts, want %d", tq.tech, got, want)
		}
	}
	if got := vl.Count(t, `threat.technique.id:"T1499"`); got != 0 {
		t.Errorf("a technique never sent matched %d alerts: the queries prove nothing", got)
	}
	for _, host := range ecsHosts {
		if got, want := vl.Count(t, fmt.Sprintf(`host.name:=%q`, host)), n/len(ecsHosts); got != want {
			t.Errorf("host %s: %d alerts, want %d", host, got, want)
		}
	}

	// One alert by event.id, field by field.
	want := evs[123]
	rows := vl.Query(t, fmt.Sprintf(`event.id:=%q`, want.ID))
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
