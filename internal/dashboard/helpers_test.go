package dashboard

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// hostile are process names and arguments a local attacker controls.
var hostile = []string{
	"\x1b[2J\x1b[H\x1b[31mEVIL",           // clear screen, home, red
	"a\nb\rc\td\x00e\x07f\x7fg",           // C0 controls and DEL
	"\u009b31m\u0085c1",                   // C1 CSI and NEL
	"\xff\xfe\xc3(invalid",                // invalid UTF-8
	"\u202egnp.exe\u200b\u200d",           // bidi override, zero-width
	"e\u0301\u0301\u0301\u0301 combining", // stacked combining marks
	"\U0001F600\U0001F1FA\U0001F1F8 emoji",
	"\x1b]0;title\x07\x1bP+q\x1b\\osc", // OSC title, DCS
	"宽字符宽字符宽字符",                        // wide (two cells each)
	strings.Repeat("L", 1<<20),         // a megabyte
}

// testOpts are options with the real technique catalogue.
func testOpts() Options {
	return Options{Host: "host\x1b[31m", Version: "test", ReportPath: "/tmp/r.json", LogPath: "/tmp/l.log", Start: t0,
		Lookup: schemas.DetectLookup, HomeNet: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
}

// snapshot has n established connections (every tenth external, byte counts
// rising with i), listeners on 22 and 4444, and processes with hostile names.
func snapshot(n int) *collector.Snapshot {
	s := &collector.Snapshot{Time: t0, Processes: map[int32]*collector.Process{},
		System: collector.SystemMetrics{CPUPercent: 12.5, MemoryPercent: 40.25, ErrIn: 3, DropIn: 7}}
	for i, h := range hostile {
		pid := int32(100 + i)
		s.Processes[pid] = &collector.Process{PID: pid, Name: h, Cmdline: []string{h, h}}
	}
	for i := 0; i < n; i++ {
		remote := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%10 == 0 {
			remote = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		}
		s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished,
			Local:  netip.AddrPortFrom(netip.MustParseAddr("10.0.0.5"), uint16(30000+i%30000)),
			Remote: netip.AddrPortFrom(remote, 443), PID: int32(100 + i%len(hostile)), BytesReceived: uint64(i) * 100})
	}
	for _, port := range []uint16{22, 4444} {
		s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateListen,
			Local: netip.AddrPortFrom(netip.IPv4Unspecified(), port), PID: 100})
	}
	return s
}

// alert is a suspicious_port alert by a process named name.
func alert(i int, sev detect.Severity, name string) detect.Alert {
	return detect.Alert{ID: fmt.Sprintf("id-%d", i), RuleID: "suspicious_port", ThreatType: "SUSPICIOUS_PORT", Technique: "T1571",
		Severity: sev, Time: t0.Add(time.Duration(i) * time.Second), Message: "connection to 4444 " + name,
		Transport: "tcp", Direction: "egress",
		Source:   netip.MustParseAddrPort("10.0.0.5:40000"),
		Dest:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 4444),
		Process:  &detect.ProcessInfo{PID: int32(1000 + i), Name: name, Args: []string{name, "-e", name}},
		Evidence: map[string]any{"port": 4444, "note": name}}
}

// harness is a model fed through a Feed and prepare, as Run feeds it.
type harness struct {
	*Model
	feed *Feed
}

// fed returns a w x h model that has seen one poll.
func fed(opts Options, w, h int, snap *collector.Snapshot, alerts []detect.Alert) harness {
	hs := harness{NewModel(opts, w, h), NewFeed()}
	hs.poll(snap, alerts)
	return hs
}

func (hs harness) poll(snap *collector.Snapshot, alerts []detect.Alert) {
	hs.feed.Observe(snap, alerts)
	cls := classify{homeNet: hs.opts.HomeNet, risky: hs.opts.RiskyPorts}
	hs.Update(prepare(hs.feed.take(), &cls, &hs.opts))
}

func press(m *Model, keys ...string) (cmds []tea.Cmd) {
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "ctrl+c":
			msg = tea.KeyMsg{Type: tea.KeyCtrlC}
		case "backspace":
			msg = tea.KeyMsg{Type: tea.KeyBackspace}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd := m.Update(msg)
		cmds = append(cmds, cmd)
	}
	return cmds
}

// plain is the screen without SGR sequences.
func plain(s string) string { return ansi.Strip(s) }

// checkScreen asserts what every frame must satisfy: at most h lines, none
// wider than w, valid UTF-8, and no escape sequence other than SGR colours.
func checkScreen(t *testing.T, what, screen string, w, h int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) > h {
		t.Errorf("%s: %d lines on a %d-line terminal", what, len(lines), h)
	}
	if !utf8.ValidString(screen) {
		t.Errorf("%s: invalid UTF-8 on screen", what)
	}
	for i, l := range lines {
		if lw := ansi.StringWidth(l); lw > w {
			t.Errorf("%s: line %d is %d cells on a %d-cell terminal: %q", what, i, lw, w, plain(l))
		}
		p := plain(l)
		for _, r := range p {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u200b' || r == '\u200d' {
				t.Errorf("%s: line %d carries control or format character %U: %q", what, i, r, p)
				break
			}
		}
		if rest := stripSGR(l); strings.ContainsRune(rest, 0x1b) {
			t.Errorf("%s: line %d carries a non-colour escape sequence: %q", what, i, rest)
		}
	}
}

// stripSGR removes "ESC [ params m" colour sequences only.
func stripSGR(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			if j < len(s) && s[j] == 'm' {
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
