package dashboard

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
)

// fourAlerts has one alert per severity, by plainly named processes.
func fourAlerts() []detect.Alert {
	var as []detect.Alert
	for i, s := range []detect.Severity{detect.SeverityLow, detect.SeverityMedium, detect.SeverityHigh, detect.SeverityCritical} {
		as = append(as, alert(i, s, fmt.Sprintf("proc%d", i)))
	}
	return as
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// The screen shows the counters, risk level, host metrics, sinks, events
// with technique name and tactic, external connections and risky listeners.
func TestScreenShowsWhatTheSensorSees(t *testing.T) {
	opts := testOpts()
	opts.Sinks = func() []SinkStat { return []SinkStat{{Name: "file:/tmp/a", Delivered: 7, Failed: 1, Spooled: 2}} }
	h := fed(opts, 160, 50, snapshot(30), fourAlerts())
	h.Update(tickMsg{now: t0.Add(83 * time.Second), sinks: opts.Sinks()})
	screen := plain(h.View())
	for _, want := range []string{
		"up 00:01:23", "polls 1", "risk CRITICAL", "CRIT 1", "HIGH 1", "MED 1", "LOW 1",
		"cpu 12.5%", "mem 40.2%", "if err 3/0 drop 7/0",
		"file:/tmp/a delivered 7 failed 1 spooled 2",
		"T1571 Non-Standard Port", "Command and Control", "proc3[1003]", "198.51.100.3:4444",
		"Connections (30, 3 external", "!198.51.100.20:443",
		"Listening ports (2, 1 risky)", "RISKY",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	// Newest first; connections largest first.
	if strings.Index(screen, "proc3") > strings.Index(screen, "proc0") {
		t.Errorf("events not newest first:\n%s", screen)
	}
	if strings.Index(screen, "10.0.0.29:443") > strings.Index(screen, "10.0.0.28:443") {
		t.Errorf("connections not sorted by bytes, largest first:\n%s", screen)
	}
	press(h.Model, "s")
	if s := plain(h.View()); strings.Index(s, " 10.0.0.2:443") < strings.Index(s, " 10.0.0.1:443") || !strings.Contains(s, "sort address") {
		t.Errorf("s did not sort connections by address:\n%s", s)
	}
}

func TestQuitKeys(t *testing.T) {
	h := fed(testOpts(), 80, 24, snapshot(3), nil)
	if !isQuit(press(h.Model, "q")[0]) || !isQuit(press(h.Model, "ctrl+c")[0]) {
		t.Error("q and ctrl+c must quit")
	}
	press(h.Model, "/")
	if isQuit(press(h.Model, "q")[0]) {
		t.Error("q while typing a filter must type, not quit")
	}
	if !isQuit(press(h.Model, "ctrl+c")[0]) {
		t.Error("ctrl+c while typing a filter must quit")
	}
	if _, cmd := h.Update(endMsg{}); !isQuit(cmd) {
		t.Error("the end of the run must quit the program")
	}
}

func TestMinimumSeverityKeys(t *testing.T) {
	h := fed(testOpts(), 120, 40, snapshot(3), fourAlerts())
	for key, want := range map[string][]string{"1": {"proc0", "proc1", "proc2", "proc3"}, "2": {"proc1", "proc2", "proc3"}, "3": {"proc2", "proc3"}, "4": {"proc3"}} {
		press(h.Model, key)
		screen := plain(h.View())
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("proc%d", i)
			shown := strings.Contains(screen, name+"[")
			if shown != (i >= len(fourAlerts())-len(want)) {
				t.Errorf("after %s: %s shown = %v:\n%s", key, name, shown, screen)
			}
		}
	}
}

func TestFilter(t *testing.T) {
	h := fed(testOpts(), 120, 40, snapshot(30), fourAlerts())
	press(h.Model, "/", "p", "r", "o", "c", "2", "x", "backspace")
	if s := plain(h.View()); !strings.Contains(s, "filter: proc2_") {
		t.Errorf("footer does not echo the filter being typed:\n%s", s)
	}
	press(h.Model, "enter")
	s := plain(h.View())
	if !strings.Contains(s, "proc2[") || strings.Contains(s, "proc1[") || !strings.Contains(s, `filter "proc2"`) {
		t.Errorf("filter proc2 shows the wrong events:\n%s", s)
	}
	press(h.Model, "/", "198.51", "enter") // typed fast: one message; an address filters connections too
	s = plain(h.View())
	if strings.Contains(s, "10.0.0.7:443") || !strings.Contains(s, "198.51.100.20:443") {
		t.Errorf("filter 198.51 shows the wrong connections:\n%s", s)
	}
	press(h.Model, "esc")
	if s := plain(h.View()); !strings.Contains(s, "proc1[") || strings.Contains(s, `filter "`) {
		t.Errorf("esc did not clear the filter:\n%s", s)
	}
	press(h.Model, "/", "z", "esc")
	if h.filter != "" || h.editing {
		t.Errorf("esc while typing must cancel: filter %q editing %v", h.filter, h.editing)
	}
}

func TestSelectionAndDetail(t *testing.T) {
	h := fed(testOpts(), 100, 30, snapshot(3), fourAlerts())
	selLine := func() string {
		for _, l := range strings.Split(plain(h.View()), "\n") {
			if strings.HasPrefix(l, ">") {
				return l
			}
		}
		return ""
	}
	if !strings.Contains(selLine(), "proc3") {
		t.Fatalf("newest event not selected first: %q", selLine())
	}
	press(h.Model, "j", "down")
	if !strings.Contains(selLine(), "proc1") {
		t.Errorf("j, down: selected %q, want proc1", selLine())
	}
	press(h.Model, "k")
	if !strings.Contains(selLine(), "proc2") {
		t.Errorf("k: selected %q, want proc2", selLine())
	}
	press(h.Model, "j", "j", "j", "j", "up") // clamped at the oldest, then up
	if !strings.Contains(selLine(), "proc1") {
		t.Errorf("selection not clamped: %q", selLine())
	}
	press(h.Model, "enter")
	s := plain(h.View())
	for _, want := range []string{"Event detail", "id-1", "Evidence:", "port: 4444", `note: "proc1"`, "Args: proc1 -e proc1", "Flow: 10.0.0.5:40000 -> 198.51.100.1:4444"} {
		if !strings.Contains(s, want) {
			t.Errorf("detail pane lacks %q:\n%s", want, s)
		}
	}
	press(h.Model, "esc")
	if strings.Contains(plain(h.View()), "Evidence:") {
		t.Error("esc did not close the detail pane")
	}
}

func TestHelpKey(t *testing.T) {
	h := fed(testOpts(), 80, 24, snapshot(3), nil)
	press(h.Model, "?")
	if s := plain(h.View()); !strings.Contains(s, "minimum severity shown") || !strings.Contains(s, "Report: /tmp/r.json") {
		t.Errorf("? shows no help:\n%s", s)
	}
	press(h.Model, "?")
	if strings.Contains(plain(h.View()), "minimum severity shown") {
		t.Error("? did not close the help")
	}
}

// Pause freezes the screen; polls keep being counted and show on resume.
func TestPause(t *testing.T) {
	h := fed(testOpts(), 120, 40, snapshot(3), fourAlerts()[:1])
	press(h.Model, "p")
	h.poll(snapshot(3), []detect.Alert{alert(9, detect.SeverityHigh, "later")})
	s := plain(h.View())
	if strings.Contains(s, "later") || !strings.Contains(s, "PAUSED") || !strings.Contains(s, "polls 1") {
		t.Errorf("paused screen changed:\n%s", s)
	}
	press(h.Model, "p")
	if s := plain(h.View()); !strings.Contains(s, "later[1009]") || !strings.Contains(s, "polls 2") || !strings.Contains(s, "LIVE") {
		t.Errorf("resumed screen lacks the poll made while paused:\n%s", s)
	}
}

// Every size, every pane, hostile names everywhere: never wider or taller
// than the terminal, no escape sequence from the host reaches it.
func TestLayoutHoldsAtEverySizeWithHostileText(t *testing.T) {
	var as []detect.Alert
	for i, h := range hostile {
		as = append(as, alert(i, detect.Severity(1+i%4), h))
	}
	opts := testOpts()
	opts.Sinks = func() []SinkStat { return []SinkStat{{Name: hostile[0] + hostile[9], Failed: 1}} }
	h := fed(opts, 80, 24, snapshot(50), as)
	h.Update(tickMsg{now: t0.Add(time.Hour), sinks: opts.Sinks()})
	sizes := [][2]int{{80, 24}, {120, 40}, {250, 80}, {40, 10}, {41, 11}, {39, 9}, {10, 3}, {1, 1}, {119, 30}, {80, 100}}
	for _, sz := range sizes {
		h.Update(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, mode := range []string{"", "enter", "?", "/"} {
			if mode != "" {
				press(h.Model, mode)
			}
			for sel := 0; sel < len(hostile); sel++ {
				checkScreen(t, fmt.Sprintf("%dx%d %q sel %d", sz[0], sz[1], mode, sel), h.View(), sz[0], sz[1])
				press(h.Model, "j")
			}
			press(h.Model, "g", "esc")
			if mode == "/" {
				press(h.Model, "esc")
			}
		}
		if sz[0] >= minW && sz[1] >= minH {
			if n := strings.Count(h.View(), "\n") + 1; n != sz[1] {
				t.Errorf("%dx%d: %d lines, want the full height", sz[0], sz[1], n)
			}
		}
	}
	// The escaped forms are what the operator reads.
	h.Update(tea.WindowSizeMsg{Width: 250, Height: 80})
	press(h.Model, "g", "enter")
	if s := plain(h.View()); !strings.Contains(s, `\x1b[2J\x1b[H\x1b[31mEVIL`) && !strings.Contains(s, `\x1b]0;title`) {
		t.Errorf("hostile name not shown escaped:\n%s", s)
	}
}

func TestResizeRelayouts(t *testing.T) {
	h := fed(testOpts(), 160, 40, snapshot(100), fourAlerts())
	wide := plain(h.View())
	h.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	narrow := plain(h.View())
	if n := len(strings.Split(narrow, "\n")); n != 24 {
		t.Errorf("80x24: %d lines", n)
	}
	// Side by side at 160 columns, stacked at 80.
	if !strings.Contains(wide, "Connections (100") || lineOf(wide, "Listening ports") != lineOf(wide, "Connections (") {
		t.Errorf("160x40: connections and listeners not side by side:\n%s", wide)
	}
	if lineOf(narrow, "Listening ports") <= lineOf(narrow, "Connections (") {
		t.Errorf("80x24: listeners not below connections:\n%s", narrow)
	}
	h.Update(tea.WindowSizeMsg{Width: 30, Height: 8})
	if s := plain(h.View()); !strings.Contains(s, "too small") {
		t.Errorf("30x8: %q", s)
	}
}

func lineOf(screen, s string) int {
	for i, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, s) {
			return i
		}
	}
	return -1
}

func TestNoColor(t *testing.T) {
	for _, noColor := range []bool{false, true} {
		opts := testOpts()
		opts.NoColor = noColor
		h := fed(opts, 120, 40, snapshot(20), fourAlerts())
		s := h.View()
		if got := strings.Contains(s, "\x1b["); got == noColor {
			t.Errorf("NoColor=%v: escape sequences on screen = %v", noColor, got)
		}
		// Markers that do not depend on colour.
		for _, want := range []string{"CRIT", "RISKY", "!198.51.100.10", ">"} {
			if !strings.Contains(plain(s), want) {
				t.Errorf("NoColor=%v: marker %q missing", noColor, want)
			}
		}
	}
}

func TestSafe(t *testing.T) {
	for _, in := range hostile {
		out := Safe(in)
		if !utf8.ValidString(out) || len(out) > 6*maxSafeInput+8 {
			t.Errorf("Safe(%.40q) = %.80q: invalid or unbounded", in, out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unsafeRune(r) {
				t.Errorf("Safe(%.40q) keeps %U", in, r)
			}
		}
	}
	for in, want := range map[string]string{
		"nginx": "nginx", "a\x1b[31mb": `a\x1b[31mb`, "a\\x1b": `a\\x1b`, "\xffz": `\xffz`, "tab\there": `tab\there`,
		"\u202eabc": `\u202eabc`, "\u009b": `\u009b`, "café": "café", "宽": "宽", "\U0001F600": `\U0001f600`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

// The pipeline side never waits for the screen: with nobody reading, 10,000
// polls return at once, keep only the latest snapshot and a bounded list of
// alerts, and count every alert.
func TestFeedNeverBlocks(t *testing.T) {
	f := NewFeed()
	snaps := []*collector.Snapshot{snapshot(1), snapshot(2)}
	for i := 0; i < 10000; i++ {
		f.Observe(snaps[i%2], []detect.Alert{alert(i, detect.SeverityHigh, "x")})
	}
	u := f.take()
	if u.snap != snaps[1] || len(u.alerts) != maxPending || u.counts[detect.SeverityHigh] != 10000 || u.polls != 10000 || u.dropped != 10000-maxPending {
		t.Errorf("after 10000 polls: snap latest %v, %d alerts pending, %d counted, %d polls, %d dropped",
			u.snap == snaps[1], len(u.alerts), u.counts[detect.SeverityHigh], u.polls, u.dropped)
	}
	if u.alerts[len(u.alerts)-1].ID != "id-9999" {
		t.Errorf("newest alert kept is %s, want id-9999", u.alerts[len(u.alerts)-1].ID)
	}
	if u2 := f.take(); u2.snap != nil || len(u2.alerts) != 0 || u2.counts != u.counts {
		t.Errorf("second take: %+v", u2)
	}
}

// pump hands polls to the program and ends it when the run ends.
func TestPumpDeliversPollsAndEnds(t *testing.T) {
	f := NewFeed()
	msgs := make(chan tea.Msg, 16)
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	opts := testOpts()
	opts.Sinks = func() []SinkStat { return []SinkStat{{Name: "s", Delivered: 1}} }
	go func() { pump(ctx, make(chan struct{}), f, &opts, func(m tea.Msg) { msgs <- m }); close(done) }()
	f.Observe(snapshot(5), fourAlerts())
	deadline := time.After(10 * time.Second)
	var gotData, gotSinks bool
	for !gotData || !gotSinks {
		select {
		case m := <-msgs:
			switch m := m.(type) {
			case dataMsg:
				gotData = len(m.events) == 4 && len(m.conns) == 5 && m.hasSnap
			case tickMsg:
				gotSinks = reflect.DeepEqual(m.sinks, opts.Sinks())
			}
		case <-deadline:
			t.Fatalf("pump delivered data %v, sinks %v", gotData, gotSinks)
		}
	}
	cancel()
	for {
		select {
		case m := <-msgs:
			if _, ok := m.(endMsg); ok {
				<-done
				return
			}
		case <-deadline:
			t.Fatal("pump did not end the program when the run ended")
		}
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
