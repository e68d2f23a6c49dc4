package detect

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/netsentinel/netsentinel/collector"
)

var t0 = time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)

// fakeDetector emits one alert per entity in entities at every Detect.
type fakeDetector struct {
	name     string
	entities []string
	panicMsg string
	calls    *int
}

func (f *fakeDetector) Name() string { return f.name }
func (f *fakeDetector) Rules() []RuleInfo {
	return []RuleInfo{{ID: f.name, ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh}}
}
func (f *fakeDetector) Detect(snap *collector.Snapshot, env *Env) []Alert {
	if f.calls != nil {
		*f.calls++
	}
	if f.panicMsg != "" {
		var m map[string]int
		m[f.panicMsg] = 1 // nil map write: a real runtime panic
	}
	var out []Alert
	for _, e := range f.entities {
		out = append(out, Alert{ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh, Entity: e})
	}
	return out
}

type fakeCfg struct{ entities []string }

func fakeFactory(name string, panicMsg string, calls *int, entities ...string) Factory {
	return Factory{
		Name:          name,
		DefaultConfig: func() any { return &fakeCfg{entities: entities} },
		New: func(cfg any, _ Common) (Detector, error) {
			c, err := ConfigAs[fakeCfg](name, cfg)
			if err != nil {
				return nil, err
			}
			return &fakeDetector{name: name, entities: c.entities, panicMsg: panicMsg, calls: calls}, nil
		},
	}
}

func snapAt(t time.Time) *collector.Snapshot {
	return &collector.Snapshot{Time: t, Processes: map[int32]*collector.Process{}}
}

func TestEngineCooldownSuppressesThenRefiresWithCount(t *testing.T) {
	e, err := newEngine(Config{Cooldown: 10 * time.Minute}, nil, []Factory{fakeFactory("fake", "", nil, "host-a")})
	if err != nil {
		t.Fatal(err)
	}
	// Polls every 2 minutes for 24 minutes.
	var emitted []Alert
	for i := 0; i <= 12; i++ {
		emitted = append(emitted, e.Run(snapAt(t0.Add(time.Duration(i)*2*time.Minute)))...)
	}
	// t=0 emits (count 1); t=2..8 suppressed (4); t=10 re-fires with 1+4=5;
	// t=12..18 suppressed (4); t=20 re-fires with 5; t=22, 24 suppressed.
	if len(emitted) != 3 {
		t.Fatalf("emitted %d alerts, want 3: %+v", len(emitted), emitted)
	}
	wantTimes := []time.Time{t0, t0.Add(10 * time.Minute), t0.Add(20 * time.Minute)}
	wantCounts := []int{1, 5, 5}
	for i, a := range emitted {
		if !a.Time.Equal(wantTimes[i]) || a.Count != wantCounts[i] {
			t.Errorf("alert %d: time %v count %d, want %v count %d", i, a.Time, a.Count, wantTimes[i], wantCounts[i])
		}
		if a.RuleID != "fake" || a.Entity != "host-a" {
			t.Errorf("alert %d: rule %q entity %q", i, a.RuleID, a.Entity)
		}
		if a.Recommendation != Recommendation(ThreatPortScan) {
			t.Errorf("alert %d: recommendation not filled: %q", i, a.Recommendation)
		}
	}
	st := e.Stats().Detectors[0]
	if st.Alerts != 3 || st.Suppressed != 10 || st.Runs != 13 {
		t.Errorf("stats = %+v, want alerts 3 suppressed 10 runs 13", st)
	}
}

func TestEngineCooldownIsPerEntity(t *testing.T) {
	e, err := newEngine(Config{}, nil, []Factory{fakeFactory("fake", "", nil, "a", "b", "a")})
	if err != nil {
		t.Fatal(err)
	}
	got := e.Run(snapAt(t0))
	if len(got) != 2 || got[0].Entity != "a" || got[1].Entity != "b" {
		t.Fatalf("got %+v, want one alert for a and one for b", got)
	}
	// Default cooldown is 10 minutes: 9m59s later everything is suppressed.
	if got := e.Run(snapAt(t0.Add(10*time.Minute - time.Second))); len(got) != 0 {
		t.Fatalf("within default cooldown got %d alerts", len(got))
	}
	got = e.Run(snapAt(t0.Add(10 * time.Minute)))
	if len(got) != 2 {
		t.Fatalf("after cooldown got %d alerts, want 2", len(got))
	}
	// a: the duplicate in run 1 and two in run 2 were suppressed.
	if got[0].Entity != "a" || got[0].Count != 4 || got[1].Entity != "b" || got[1].Count != 2 {
		t.Errorf("counts: %s=%d %s=%d, want a=4 b=2", got[0].Entity, got[0].Count, got[1].Entity, got[1].Count)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEngineAlertIDsAreUniqueUUIDv4(t *testing.T) {
	entities := make([]string, 500)
	for i := range entities {
		entities[i] = "e" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	e, err := newEngine(Config{}, nil, []Factory{fakeFactory("fake", "", nil, entities...)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range e.Run(snapAt(t0)) {
		if !uuidV4.MatchString(a.ID) {
			t.Fatalf("id %q is not UUIDv4 format", a.ID)
		}
		if seen[a.ID] {
			t.Fatalf("duplicate id %q", a.ID)
		}
		seen[a.ID] = true
	}
	if len(seen) != 500 {
		t.Fatalf("got %d alerts, want 500", len(seen))
	}
}

func TestEngineDisabledDetectorDoesNotRun(t *testing.T) {
	var onCalls, offCalls int
	fs := []Factory{fakeFactory("on", "", &onCalls, "x"), fakeFactory("off", "", &offCalls, "y")}
	e, err := newEngine(Config{Disabled: []string{"off"}}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	got := e.Run(snapAt(t0))
	if onCalls != 1 || offCalls != 0 {
		t.Fatalf("calls on=%d off=%d, want 1 and 0", onCalls, offCalls)
	}
	if len(got) != 1 || got[0].RuleID != "on" {
		t.Fatalf("alerts %+v, want only rule on", got)
	}
	if names := e.Detectors(); len(names) != 1 || names[0] != "on" {
		t.Fatalf("Detectors() = %v", names)
	}
	if rules := e.Rules(); len(rules) != 1 || rules[0].ID != "on" || rules[0].Recommendation == "" {
		t.Fatalf("Rules() = %+v", rules)
	}
}

func TestEngineUnknownNamesAreErrors(t *testing.T) {
	fs := []Factory{fakeFactory("known", "", nil)}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"disabled", Config{Disabled: []string{"nope"}}, `disabled: unknown detector "nope"`},
		{"detectors", Config{Detectors: map[string]any{"nada": &fakeCfg{}}}, `detectors: unknown detector "nada"`},
		{"negative cooldown", Config{Cooldown: -time.Second}, "negative"},
		{"wrong config type", Config{Detectors: map[string]any{"known": &SuspiciousPortConfig{}}}, `detector "known"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newEngine(c.cfg, nil, fs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	// The real registry too.
	if _, err := NewEngine(Config{Disabled: []string{"no_such_detector"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "no_such_detector") {
		t.Fatalf("NewEngine with unknown disabled name: err = %v", err)
	}
}

func TestEnginePanickingDetectorIsIsolated(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	var goodCalls int
	fs := []Factory{fakeFactory("a_bad", "boom", nil, "x"), fakeFactory("b_good", "", &goodCalls, "y")}
	e, err := newEngine(Config{}, zap.New(core), fs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		got := e.Run(snapAt(t0.Add(time.Duration(i) * 11 * time.Minute)))
		if len(got) != 1 || got[0].RuleID != "b_good" {
			t.Fatalf("run %d: alerts %+v, want only b_good", i, got)
		}
	}
	if goodCalls != 3 {
		t.Fatalf("good detector ran %d times, want 3", goodCalls)
	}
	st := e.Stats().Detectors
	if st[0].Name != "a_bad" || st[0].Panics != 3 || st[0].Alerts != 0 || !strings.Contains(st[0].LastPanic, "nil map") {
		t.Errorf("bad detector stats = %+v", st[0])
	}
	if st[1].Panics != 0 || st[1].Alerts != 3 {
		t.Errorf("good detector stats = %+v", st[1])
	}
	if n := logs.FilterField(zap.String("detector", "a_bad")).Len(); n != 3 {
		t.Errorf("logged %d panics for a_bad, want 3", n)
	}
}

// claimDetector claims every socket of the snapshot for rule "victim".
type claimDetector struct{ panics bool }

func (c *claimDetector) Name() string      { return "claimer" }
func (c *claimDetector) Rules() []RuleInfo { return nil }
func (c *claimDetector) Detect(snap *collector.Snapshot, env *Env) []Alert {
	for i := range snap.Sockets {
		env.Claim(&snap.Sockets[i], "victim")
	}
	if c.panics {
		panic("after claiming")
	}
	return nil
}

// sockAlerter alerts on every socket, keyed like a connection.
type sockAlerter struct{}

func (sockAlerter) Name() string      { return "victim" }
func (sockAlerter) Rules() []RuleInfo { return nil }
func (sockAlerter) Detect(snap *collector.Snapshot, env *Env) []Alert {
	var out []Alert
	for _, s := range snap.Sockets {
		out = append(out, Alert{Transport: s.Proto.String(), Source: s.Local, Dest: s.Remote, Entity: s.Remote.String(), Technique: "T1571"})
	}
	return out
}

func TestEngineClaimDropsOtherRulesAlertOnSameConnection(t *testing.T) {
	for _, panics := range []bool{false, true} {
		fs := []Factory{
			{Name: "victim", DefaultConfig: func() any { return nil }, New: func(any, Common) (Detector, error) { return sockAlerter{}, nil }},
			{Name: "claimer", DefaultConfig: func() any { return nil }, New: func(any, Common) (Detector, error) { return &claimDetector{panics: panics}, nil }},
		}
		e, err := newEngine(Config{}, nil, fs)
		if err != nil {
			t.Fatal(err)
		}
		snap := snapAt(t0)
		snap.Sockets = []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:40000", "198.51.100.7:4444", 1)}
		got := e.Run(snap)
		// "victim" runs after "claimer" alphabetically? No: Factories order is
		// as given; the claim applies whatever the order.
		if panics {
			if len(got) != 1 {
				t.Fatalf("claims of a panicking detector must be dropped: got %d alerts", len(got))
			}
			continue
		}
		if len(got) != 0 {
			t.Fatalf("claimed connection still alerted: %+v", got)
		}
		if s := e.Stats().Detectors[0]; s.Name != "victim" || s.Superseded != 1 {
			t.Fatalf("stats %+v, want victim superseded 1", s)
		}
	}
}

func TestEngineProcessCacheGivesContextAfterExit(t *testing.T) {
	var got *collector.Process
	probe := Factory{Name: "probe", DefaultConfig: func() any { return nil }, New: func(any, Common) (Detector, error) {
		return detectFunc(func(snap *collector.Snapshot, env *Env) []Alert {
			got = env.Process(snap, 42)
			return nil
		}), nil
	}}
	e, err := newEngine(Config{}, nil, []Factory{probe})
	if err != nil {
		t.Fatal(err)
	}
	s1 := snapAt(t0)
	s1.Processes[42] = &collector.Process{PID: 42, Name: "curl"}
	e.Run(s1)
	e.Run(snapAt(t0.Add(time.Minute))) // process gone from the snapshot
	if got == nil || got.Name != "curl" {
		t.Fatalf("process 42 after exit = %+v, want curl from the cache", got)
	}
	e.Run(snapAt(t0.Add(time.Minute + ProcessCacheTTL + time.Second)))
	e.Run(snapAt(t0.Add(time.Minute + ProcessCacheTTL + 2*time.Second)))
	if got != nil {
		t.Fatalf("process 42 still cached after TTL: %+v", got)
	}
}

type detectFunc func(*collector.Snapshot, *Env) []Alert

func (f detectFunc) Name() string                                   { return "probe" }
func (f detectFunc) Rules() []RuleInfo                              { return nil }
func (f detectFunc) Detect(s *collector.Snapshot, env *Env) []Alert { return f(s, env) }

func TestNewEngineDefaults(t *testing.T) {
	e, err := NewEngine(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.cooldown != DefaultCooldown {
		t.Errorf("cooldown %v", e.cooldown)
	}
	for _, a := range []string{"10.1.2.3", "172.20.0.1", "192.168.1.1", "fd00::1"} {
		if !e.env.IsInternal(netip.MustParseAddr(a)) {
			t.Errorf("%s not internal by default", a)
		}
	}
	if e.env.IsInternal(netip.MustParseAddr("198.51.100.1")) {
		t.Error("198.51.100.1 internal by default")
	}
	found := map[string]bool{}
	for _, n := range e.Detectors() {
		found[n] = true
	}
	if !found[RuleSuspiciousPort] || !found[RuleTor] {
		t.Errorf("default engine detectors %v lack suspicious_port or tor", e.Detectors())
	}
}
