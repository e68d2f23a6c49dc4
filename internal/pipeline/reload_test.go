package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/state"
	"github.com/netsentinel/netsentinel/sinks"
)

// stdoutOutput is an extra stdout-style sink writing into buf, with a route.
func stdoutOutput(name string, buf *syncBuf, rt sinks.Route) Output {
	stats := &sinks.Stats{}
	s := sinks.NewStdout(buf)
	return Output{Name: name, Runner: sinks.NewRunner(s, sinks.RunnerConfig{}, stats, zap.NewNop()), Route: rt}
}

func lines(b *syncBuf) int { return strings.Count(b.String(), "\n") }

type sinkCounts struct {
	Counters struct {
		Sent     uint64 `json:"sent"`
		Offered  uint64 `json:"offered"`
		Filtered uint64 `json:"filtered"`
	} `json:"counters"`
}

type tuningReport struct {
	Summary struct {
		Total int `json:"total_threats"`
	} `json:"executive_summary"`
	Detection struct {
		Suppressed map[string]uint64 `json:"suppressed_by_exception"`
	} `json:"detection_statistics"`
	Sinks map[string]sinkCounts `json:"sink_statistics"`
}

func readTuning(t *testing.T, path string) tuningReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r tuningReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Each sink gets what its route lets through; the report counts every alert
// and, per sink, what it was offered and what its route filtered.
func TestRoutesFilterPerSink(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 10, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	var all, tor, high syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour, ReportPath: report}, src, &all,
		stdoutOutput("tor-only", &tor, sinks.Route{Rules: []string{detect.RuleTor}}),
		stdoutOutput("high", &high, sinks.Route{MinSeverity: int(detect.SeverityHigh)}))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lines(&all) != 10 || lines(&tor) != 0 || lines(&high) != 10 {
		t.Fatalf("events: all %d, tor-only %d, high %d; want 10, 0, 10", lines(&all), lines(&tor), lines(&high))
	}
	r := readTuning(t, report)
	if r.Summary.Total != 10 {
		t.Errorf("report counts %d alerts, want 10", r.Summary.Total)
	}
	for name, want := range map[string][3]uint64{"stdout": {10, 10, 0}, "tor-only": {0, 10, 10}, "high": {10, 10, 0}} {
		c := r.Sinks[name].Counters
		if got := [3]uint64{c.Sent, c.Offered, c.Filtered}; got != want {
			t.Errorf("%s: sent/offered/filtered %v, want %v", name, got, want)
		}
	}
}

// Reload applies exceptions and routes; the report counts the silenced
// alerts per exception; the cooldown table is saved in the state directory.
func TestReloadExceptionsRoutesAndState(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 10, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	var all, second syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour, ReportPath: filepath.Join(dir, "report.json"), StateDir: stateDir},
		src, &all, stdoutOutput("second", &second, sinks.Route{}))
	x, err := detect.CompileExceptions([]detect.ExceptionSpec{{
		Name: "lab", Match: map[string][]string{"destination.ip": {"198.51.100.10/31"}},
	}}, detect.AllRuleIDs())
	if err != nil {
		t.Fatal(err)
	}
	// A rejected reload changes nothing.
	if err := p.Reload(Reloadable{Detect: detect.Config{Disabled: []string{"nope"}, Exceptions: x},
		Routes: map[string]sinks.Route{"second": {Rules: []string{"tor"}}}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad reload: %v", err)
	}
	if err := p.Reload(Reloadable{Routes: map[string]sinks.Route{"no-such-sink": {}}}); err == nil {
		t.Fatal("a route for an unknown sink accepted")
	}
	if err := p.Reload(Reloadable{Detect: detect.Config{Exceptions: x},
		Routes: map[string]sinks.Route{"second": {Rules: []string{"tor"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 198.51.100.10 and .11 are silenced; the 8 others are emitted.
	if lines(&all) != 8 || lines(&second) != 0 {
		t.Fatalf("events: stdout %d, second %d; want 8 and 0", lines(&all), lines(&second))
	}
	r := readTuning(t, filepath.Join(dir, "report.json"))
	if r.Summary.Total != 8 || r.Detection.Suppressed["lab"] != 2 {
		t.Errorf("report: %d alerts, suppressed %v; want 8 and lab=2", r.Summary.Total, r.Detection.Suppressed)
	}
	if c := r.Sinks["second"].Counters; c.Offered != 8 || c.Filtered != 8 {
		t.Errorf("second: offered %d filtered %d, want 8 and 8", c.Offered, c.Filtered)
	}
	saved, err := state.LoadCooldowns(stateDir)
	if err != nil || len(saved) != 8 {
		t.Fatalf("saved state: %d entries, %v; want 8", len(saved), err)
	}
}

// Reload runs from the signal goroutine while the pipeline runs: no data
// race (go test -race) and every alert is still accounted for.
func TestReloadDuringRun(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 200, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var all, second syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour, ReportPath: filepath.Join(t.TempDir(), "r.json"),
		StateDir: filepath.Join(t.TempDir(), "state")}, src, &all, stdoutOutput("second", &second, sinks.Route{}))
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	for i := 0; i < 50; i++ {
		rt := sinks.Route{MinSeverity: i % 5}
		if err := p.Reload(Reloadable{Detect: detect.Config{Cooldown: time.Duration(i+1) * time.Minute},
			Routes: map[string]sinks.Route{"second": rt}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lines(&all) != 200 {
		t.Errorf("%d alerts on stdout, want 200", lines(&all))
	}
	ss := p.outs[1].Runner.Stats()
	if ss.Offered != 200 || ss.Sent+ss.Filtered != 200 {
		t.Errorf("second sink: offered %d sent %d filtered %d", ss.Offered, ss.Sent, ss.Filtered)
	}
}
