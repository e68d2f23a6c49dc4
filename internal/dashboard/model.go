// Package dashboard is `netsentinel --dashboard`: a live terminal view (a
// Bubble Tea program) of what the sensor sees and finds. The pipeline feeds it
// through Feed, a non-blocking observer; the screen shows severity counters
// and the risk level, the latest threat events with a detail pane, active
// connections and listening ports, host metrics and per-sink counters.
//
// Everything shown from the host (process names, arguments, evidence) passes
// through Safe, and every line is cut to the terminal's width, so hostile
// input cannot move the cursor or break the layout.
package dashboard

import (
	"net/netip"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

// maxEvents is how many of the latest events the dashboard keeps.
const maxEvents = 500

// Options describe the run the dashboard shows.
type Options struct {
	Host       string
	Version    string
	ReportPath string
	LogPath    string
	Start      time.Time
	// Sinks returns each sink's counters; it is called about once a second.
	Sinks func() []SinkStat
	// Lookup names techniques and their tactics (schemas.DetectLookup).
	Lookup schemas.TechniqueLookup
	// HomeNet decides which addresses are external (highlighted).
	HomeNet []netip.Prefix
	// RiskyPorts are listening ports marked risky (empty: DefaultRiskyPorts).
	RiskyPorts detect.PortSet
	// NoColor renders without colour (the NO_COLOR convention); severity,
	// external addresses and risky ports keep their text markers.
	NoColor bool
}

// frame is what one screen shows; while paused the screen keeps a copy.
type frame struct {
	events    []Event // oldest first
	counts    [5]uint64
	polls     uint64
	dropped   uint64
	lastPoll  time.Time
	conns     []Conn
	listeners []Listener
	sys       System
	sinks     []SinkStat
}

// Model is the Bubble Tea model.
type Model struct {
	opts   Options
	st     styles
	w, h   int
	now    time.Time
	live   frame
	frozen *frame // set while paused

	minSev  detect.Severity
	filter  string // lower-case
	editing bool
	input   string
	sel     int // index into the visible events, 0 = newest
	detail  bool
	help    bool
	byBytes bool
	ended   bool
}

// NewModel returns a model for opts, sized w x h until the terminal says
// otherwise.
func NewModel(opts Options, w, h int) *Model {
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.RiskyPorts.Len() == 0 {
		opts.RiskyPorts = DefaultRiskyPorts()
	}
	return &Model{opts: opts, st: newStyles(opts.NoColor), w: w, h: h, now: opts.Start, minSev: detect.SeverityLow, byBytes: true}
}

// Messages.
type (
	// dataMsg is one or more polls, prepared off the UI goroutine.
	dataMsg struct {
		hasSnap   bool
		at        time.Time
		events    []Event
		counts    [5]uint64
		polls     uint64
		dropped   uint64
		conns     []Conn
		listeners []Listener
		sys       System
	}
	// tickMsg refreshes the clock and the sink counters.
	tickMsg struct {
		now   time.Time
		sinks []SinkStat
	}
	// endMsg: the run ended (duration elapsed, signal); the program quits.
	endMsg struct{}
)

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd { return nil }

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case dataMsg:
		m.apply(msg)
	case tickMsg:
		m.now = msg.now
		if msg.sinks != nil {
			m.live.sinks = msg.sinks
		}
	case endMsg:
		m.ended = true
		return m, tea.Quit
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *Model) apply(d dataMsg) {
	f := &m.live
	f.counts, f.polls, f.dropped = d.counts, d.polls, d.dropped
	if len(d.events) > 0 {
		f.events = append(f.events, d.events...)
		if n := len(f.events) - maxEvents; n > 0 {
			f.events = append([]Event(nil), f.events[n:]...)
		}
	}
	if d.hasSnap {
		f.lastPoll = d.at
		sortConns(d.conns, m.byBytes)
		f.conns, f.listeners, f.sys = d.conns, d.listeners, d.sys
	}
}

// shown is the frame on screen: the live one, or the copy taken at pause.
func (m *Model) shown() *frame {
	if m.frozen != nil {
		return m.frozen
	}
	return &m.live
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.Type == tea.KeyCtrlC {
		return tea.Quit
	}
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		// Keys typed faster than the screen reads them arrive as one
		// message ("/evil"): each rune is a key.
		for _, r := range k.Runes {
			if cmd := m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}); cmd != nil {
				return cmd
			}
		}
		return nil
	}
	if m.editing {
		switch k.Type {
		case tea.KeyEnter:
			m.filter, m.editing, m.sel = strings.ToLower(strings.TrimSpace(m.input)), false, 0
		case tea.KeyEsc:
			m.editing = false
		case tea.KeyBackspace:
			if r := []rune(m.input); len(r) > 0 {
				m.input = string(r[:len(r)-1])
			}
		case tea.KeyRunes, tea.KeySpace:
			if len(m.input) < 200 {
				m.input += string(k.Runes)
			}
		}
		return nil
	}
	switch k.String() {
	case "q":
		return tea.Quit
	case "p":
		if m.frozen == nil {
			fr := m.live
			fr.events = append([]Event(nil), m.live.events...)
			m.frozen = &fr
		} else {
			m.frozen = nil
		}
	case "/":
		m.editing, m.input, m.help = true, "", false
	case "1", "2", "3", "4":
		m.minSev, m.sel = detect.Severity(k.Runes[0]-'0'), 0
	case "up", "k":
		if m.sel > 0 {
			m.sel--
		}
	case "down", "j":
		if m.sel+1 < len(m.visibleEvents(maxEvents)) {
			m.sel++
		}
	case "home", "g":
		m.sel = 0
	case "enter":
		m.detail = !m.detail
		m.help = false
	case "s":
		m.byBytes = !m.byBytes
		sortConns(m.live.conns, m.byBytes)
		if m.frozen != nil {
			m.frozen.conns = append([]Conn(nil), m.frozen.conns...)
			sortConns(m.frozen.conns, m.byBytes)
		}
	case "?":
		m.help = !m.help
	case "esc":
		switch {
		case m.help:
			m.help = false
		case m.detail:
			m.detail = false
		default:
			m.filter = ""
		}
	}
	return nil
}

// visibleEvents are the shown frame's events at or above the minimum
// severity that match the filter, newest first, at most n.
func (m *Model) visibleEvents(n int) []*Event {
	f := m.shown()
	var out []*Event
	for i := len(f.events) - 1; i >= 0 && len(out) < n; i-- {
		e := &f.events[i]
		if e.Severity < m.minSev || (m.filter != "" && !strings.Contains(e.search, m.filter)) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// selected returns the selected event (clamping the selection), or nil.
func (m *Model) selected() *Event {
	ev := m.visibleEvents(maxEvents)
	if len(ev) == 0 {
		m.sel = 0
		return nil
	}
	if m.sel >= len(ev) {
		m.sel = len(ev) - 1
	}
	return ev[m.sel]
}
