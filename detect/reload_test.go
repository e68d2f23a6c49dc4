package detect

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// countingDetector keeps state across snapshots: it alerts once its run count
// reaches the configured threshold (then on every run).
type countingDetector struct {
	name   string
	at     int
	runs   int
	closed *int
}

type countingCfg struct{ At int }

func (d *countingDetector) Name() string { return d.name }
func (d *countingDetector) Rules() []RuleInfo {
	return []RuleInfo{{ID: d.name, ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh}}
}
func (d *countingDetector) Detect(snap *collector.Snapshot, env *Env) []Alert {
	d.runs++
	if d.runs < d.at {
		return nil
	}
	return []Alert{{ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh, Entity: "e"}}
}
func (d *countingDetector) Close() error { *d.closed++; return nil }

func countingFactory(name string, at int, closed *int) Factory {
	return Factory{
		Name:          name,
		DefaultConfig: func() any { return &countingCfg{At: at} },
		New: func(cfg any, _ Common) (Detector, error) {
			c, err := ConfigAs[countingCfg](name, cfg)
			if err != nil {
				return nil, err
			}
			if c.At < 1 {
				return nil, errAtLeastOne
			}
			return &countingDetector{name: name, at: c.At, closed: closed}, nil
		},
	}
}

var errAtLeastOne = errors.New("at must be at least 1")

func rulesOf(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.RuleID)
	}
	return out
}

func TestReconfigureKeepsStateOfUnchangedDetectors(t *testing.T) {
	var closedA, closedB int
	fs := []Factory{countingFactory("a", 5, &closedA), countingFactory("b", 100, &closedB)}
	e, err := newEngine(Config{Cooldown: time.Hour}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	step := func() []Alert { now = now.Add(time.Second); return e.Run(snapAt(now)) }
	for i := 0; i < 3; i++ {
		if got := step(); len(got) != 0 {
			t.Fatalf("run %d: %v", i+1, rulesOf(got))
		}
	}
	// b's threshold drops to 2: b is rebuilt (its count restarts), a keeps its 3 runs.
	if err := e.Reconfigure(Config{Cooldown: time.Hour, Detectors: map[string]any{"b": &countingCfg{At: 2}}}); err != nil {
		t.Fatal(err)
	}
	if closedA != 0 || closedB != 1 {
		t.Fatalf("closed a=%d b=%d, want 0 and 1", closedA, closedB)
	}
	if got := step(); len(got) != 0 { // a: run 4, b: run 1
		t.Fatalf("run 4: %v", rulesOf(got))
	}
	if got := rulesOf(step()); len(got) != 2 || got[0] != "a" || got[1] != "b" { // a: 5, b: 2
		t.Fatalf("run 5: %v, want [a b]", got)
	}
	// Counters run on across the rebuild.
	for _, d := range e.Stats().Detectors {
		if d.Runs != 5 || d.Alerts != 1 {
			t.Errorf("%s: runs %d alerts %d, want 5 and 1", d.Name, d.Runs, d.Alerts)
		}
	}
	// The cooldown table is kept: a rebuilt b raising the same entity again
	// is held back.
	if err := e.Reconfigure(Config{Cooldown: time.Hour, Detectors: map[string]any{"b": &countingCfg{At: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got := step(); len(got) != 0 {
		t.Fatalf("after a second reload, within the cooldown: %v", rulesOf(got))
	}
}

func TestReconfigureDisablesEnablesAndShortensCooldown(t *testing.T) {
	var closedA, closedB int
	fs := []Factory{countingFactory("a", 1, &closedA), countingFactory("b", 1, &closedB)}
	e, err := newEngine(Config{Cooldown: time.Hour}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(e.Run(snapAt(t0))); len(got) != 2 {
		t.Fatalf("first run: %v", got)
	}
	if err := e.Reconfigure(Config{Cooldown: time.Minute, Disabled: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	if closedB != 1 || strings.Join(e.Detectors(), ",") != "a" {
		t.Fatalf("b closed %d times, detectors %v", closedB, e.Detectors())
	}
	// The shorter cooldown applies to keys set under the old one.
	if got := rulesOf(e.Run(snapAt(t0.Add(2 * time.Minute)))); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after the cooldown shrank: %v, want [a]", got)
	}
	if err := e.Reconfigure(Config{Cooldown: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(e.Detectors(), ",") != "a,b" {
		t.Fatalf("detectors %v after re-enabling b", e.Detectors())
	}
}

func TestReconfigureErrorChangesNothing(t *testing.T) {
	var closedA int
	fs := []Factory{countingFactory("a", 2, &closedA)}
	e, err := newEngine(Config{}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	e.Run(snapAt(t0))
	for _, bad := range []Config{
		{Disabled: []string{"zzz"}},
		{Detectors: map[string]any{"zzz": &countingCfg{}}},
		{Detectors: map[string]any{"a": &countingCfg{At: 0}}},
		{Cooldown: -time.Second},
	} {
		if err := e.Reconfigure(bad); err == nil {
			t.Errorf("Reconfigure(%+v) accepted", bad)
		}
	}
	if closedA != 0 {
		t.Fatal("a failed reload closed the running detector")
	}
	if got := rulesOf(e.Run(snapAt(t0.Add(time.Second)))); len(got) != 1 {
		t.Fatalf("state lost by a failed reload: %v", got)
	}
}

func TestReconfigureAppliesExceptions(t *testing.T) {
	fs := []Factory{countingFactory("a", 1, new(int))}
	e, err := newEngine(Config{Cooldown: time.Nanosecond}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	x, err := CompileExceptions([]ExceptionSpec{{Name: "quiet", Rules: []string{"a"},
		Match: map[string][]string{"threat.technique.id": {"T1046"}}}}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Reconfigure(Config{Cooldown: time.Nanosecond, Exceptions: x}); err != nil {
		t.Fatal(err)
	}
	if got := e.Run(snapAt(t0)); len(got) != 0 {
		t.Fatalf("exception not applied: %v", rulesOf(got))
	}
	if n := e.Exceptions().Snapshot()["quiet"]; n != 1 {
		t.Fatalf("quiet counted %d", n)
	}
	e.SetExceptions(nil)
	if got := e.Run(snapAt(t0.Add(time.Second))); len(got) != 1 {
		t.Fatalf("exception removed, alerts %v", rulesOf(got))
	}
}

// A threshold change rebuilds the lateral movement detector, which takes over
// the hosts already counted: the third host after the reload completes the
// fan-out. A fresh detector (no carried state) sees one host and stays quiet.
func TestReconfigureCarriesDetectorWindows(t *testing.T) {
	sshTo := func(i int) *collector.Snapshot {
		s := bldSnap(bldT0.Add(time.Duration(i)*30*time.Second),
			bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+i), fmt.Sprintf("10.0.0.%d:22", 20+i), "ESTABLISHED", int32(100+i)))
		bldProc(s, int32(100+i), 50, "ssh", "ssh", fmt.Sprintf("10.0.0.%d", 20+i))
		return s
	}
	lateralOnly := func(window time.Duration) Config {
		var disabled []string
		for _, f := range Factories() {
			if f.Name != RuleLateralMovement {
				disabled = append(disabled, f.Name)
			}
		}
		c := defaultLateralConfig()
		c.Window = window
		return Config{Disabled: disabled, Detectors: map[string]any{RuleLateralMovement: c}}
	}
	for _, carried := range []bool{true, false} {
		e, err := NewEngine(lateralOnly(10*time.Minute), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if carried {
			for i := 0; i < 2; i++ {
				if got := e.Run(sshTo(i)); len(got) != 0 {
					t.Fatalf("alert at host %d of 3: %v", i+1, rulesOf(got))
				}
			}
		}
		if err := e.Reconfigure(lateralOnly(20 * time.Minute)); err != nil {
			t.Fatal(err)
		}
		got := e.Run(sshTo(2))
		if carried && (len(got) != 1 || got[0].RuleID != RuleLateralMovement) {
			t.Errorf("after the reload the third host did not complete the fan-out: %v", rulesOf(got))
		}
		if !carried && len(got) != 0 {
			t.Errorf("one host alerted: %v", rulesOf(got))
		}
	}
}
