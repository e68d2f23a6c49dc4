package detect

import (
	"testing"
	"time"
)

// A restarted engine given the saved cooldown table raises nothing for the
// conditions it already alerted on (a fresh one raises them again), and the
// next alert after the cooldown carries the occurrences held back before the
// restart.
func TestRestoredCooldownsDoNotReAlert(t *testing.T) {
	hour := func(c *Config) { c.Cooldown = time.Hour }
	first := newReplayEngine(t, hour)
	alerts := replayInto(t, first, "reverse_shell")
	if len(alerts) == 0 {
		t.Fatal("no alerts in the first run")
	}
	end := alerts[len(alerts)-1].Time
	saved := first.Cooldowns(0)
	if len(saved) < len(alerts) {
		t.Fatalf("saved %d entries for %d alerts", len(saved), len(alerts))
	}

	if again := replayInto(t, newReplayEngine(t, hour), "reverse_shell"); len(again) == 0 {
		t.Fatal("a fresh engine does not re-alert: the test would prove nothing")
	}
	second := newReplayEngine(t, hour)
	if n := second.RestoreCooldowns(saved, end); n != len(saved) {
		t.Errorf("restored %d of %d", n, len(saved))
	}
	for _, a := range replayInto(t, second, "reverse_shell") {
		t.Errorf("re-alerted after the restore: %s %s", a.RuleID, a.Entity)
	}
}

func TestRestoreCooldownsExpiresAndBounds(t *testing.T) {
	fs := []Factory{fakeFactory("r", "", nil, "e1")}
	e, err := newEngine(Config{Cooldown: 10 * time.Minute}, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	saved := []CooldownEntry{
		{Rule: "r", Entity: "e1", LastAlert: t0.Add(-5 * time.Minute), LastSeen: t0.Add(-time.Minute), Count: 3},
		{Rule: "r", Entity: "old", LastAlert: t0.Add(-time.Hour), LastSeen: t0.Add(-time.Hour)},
		{Rule: "r", Entity: "future", LastAlert: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour)},
		{Rule: "", Entity: "no-rule", LastAlert: t0},
	}
	if n := e.RestoreCooldowns(saved, t0); n != 2 {
		t.Fatalf("kept %d, want 2 (e1 and future)", n)
	}
	// e1 is still within its cooldown: held back.
	if got := e.Run(snapAt(t0)); len(got) != 0 {
		t.Fatalf("alerted within the restored cooldown: %+v", got)
	}
	// After it, the alert carries the 3 saved + 1 held-back occurrences.
	got := e.Run(snapAt(t0.Add(6 * time.Minute)))
	if len(got) != 1 || got[0].Count != 5 {
		t.Fatalf("after the cooldown: %+v, want one alert with count 5", got)
	}
	list := e.Cooldowns(1)
	if len(list) != 1 || list[0].Entity != "e1" || !list[0].LastAlert.Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("Cooldowns(1) = %+v", list)
	}
}
