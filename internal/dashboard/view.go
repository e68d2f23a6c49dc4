package dashboard

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

// Smallest usable terminal, and the width from which connections and
// listeners sit side by side.
const minW, minH, sideBySideW = 40, 10, 150

// View implements tea.Model: exactly min(h, ...) lines, none wider than w.
func (m *Model) View() string {
	if m.w <= 0 || m.h <= 0 {
		return ""
	}
	if m.w < minW || m.h < minH {
		return clip(fmt.Sprintf("terminal %dx%d is too small for the dashboard (need %dx%d); q quits", m.w, m.h, minW, minH), m.w)
	}
	lines := make([]string, 0, m.h)
	lines = append(lines, m.headerLines()...)
	body := m.h - len(lines) - 1
	switch {
	case m.help:
		lines = append(lines, m.helpLines(body)...)
	default:
		evH := body * 2 / 5
		if evH < 5 {
			evH = 5
		}
		lines = append(lines, pad(m.eventLines(evH), evH)...)
		rest := body - evH
		if m.detail {
			lines = append(lines, pad(m.detailLines(rest), rest)...)
		} else if m.w >= sideBySideW {
			cw := m.w * 3 / 5
			lines = append(lines, sideBySide(m.connLines(cw, rest), m.listenLines(m.w-cw-1, rest), cw)...)
		} else {
			ch := rest * 3 / 5
			lines = append(lines, pad(m.connLines(m.w, ch), ch)...)
			lines = append(lines, pad(m.listenLines(m.w, rest-ch), rest-ch)...)
		}
	}
	for len(lines) < m.h-1 {
		lines = append(lines, "")
	}
	lines = append(lines[:m.h-1], m.footer())
	for i, l := range lines {
		lines[i] = clip(l, m.w)
	}
	return strings.Join(lines, "\n")
}

// pad makes lines exactly h long, so sections keep their place.
func pad(lines []string, h int) []string {
	if len(lines) > h {
		return lines[:max(h, 0)]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines
}

// bar styles a full-width line.
func (m *Model) bar(s string) string { return m.st.header.Render(fit(s, m.w)) }

func (m *Model) headerLines() []string {
	f := m.shown()
	by := map[string]int{
		"CRITICAL": int(f.counts[detect.SeverityCritical]), "HIGH": int(f.counts[detect.SeverityHigh]),
		"MEDIUM": int(f.counts[detect.SeverityMedium]), "LOW": int(f.counts[detect.SeverityLow]),
	}
	risk := schemas.RiskLevel(by)
	state := "LIVE"
	switch {
	case m.ended:
		state = "ENDED"
	case m.frozen != nil:
		state = "PAUSED"
	}
	up := m.now.Sub(m.opts.Start).Truncate(time.Second)
	if up < 0 {
		up = 0
	}
	l1 := m.bar(fmt.Sprintf(" NetSentinel %s  host %s  up %s  polls %d  %s", Safe(m.opts.Version), Safe(m.opts.Host), clock(up), f.polls, state))
	var b strings.Builder
	b.WriteString(" risk ")
	b.WriteString(m.st.riskStyle(risk).Render(risk))
	for s := detect.SeverityCritical; s >= detect.SeverityLow; s-- {
		b.WriteString("  ")
		b.WriteString(m.st.severity(s).Render(sevName(s)))
		b.WriteString(" " + strconv.FormatUint(f.counts[s], 10))
	}
	if f.dropped > 0 {
		b.WriteString(m.st.warn.Render(fmt.Sprintf("  (%d not listed: screen behind)", f.dropped)))
	}
	b.WriteString("   ")
	if f.sys.Valid {
		fmt.Fprintf(&b, "cpu %.1f%%  mem %.1f%%  if err %d/%d drop %d/%d", f.sys.CPU, f.sys.Mem, f.sys.ErrIn, f.sys.ErrOut, f.sys.DropIn, f.sys.DropOut)
	} else {
		b.WriteString(m.st.dim.Render("cpu/mem/if: n/a"))
	}
	var s strings.Builder
	s.WriteString(" sinks")
	if len(f.sinks) == 0 {
		s.WriteString(m.st.dim.Render(" none (alerts on this screen and in the report)"))
	}
	for _, k := range f.sinks {
		fmt.Fprintf(&s, "  %s delivered %d ", Safe(k.Name), k.Delivered)
		failed := fmt.Sprintf("failed %d", k.Failed)
		if k.Failed > 0 {
			failed = m.st.risky.Render(failed)
		}
		s.WriteString(failed)
		spooled := fmt.Sprintf(" spooled %d", k.Spooled)
		if k.Spooled > 0 {
			spooled = m.st.warn.Render(spooled)
		}
		s.WriteString(spooled)
	}
	return []string{l1, b.String(), s.String()}
}

func clock(d time.Duration) string {
	h := int(d.Hours())
	return fmt.Sprintf("%02d:%02d:%02d", h, int(d.Minutes())%60, int(d.Seconds())%60)
}

// section is a section title line: "── Title ───".
func (m *Model) section(title string, w int) string {
	t := "── " + title + " "
	return m.st.title.Render(fit(t+strings.Repeat("─", max(0, w-width(t))), w))
}

// eventColumns are the event table's column widths for a line of w cells
// (TIME SEV RULE TECHNIQUE TACTIC PROCESS DESTINATION, after a 1-cell
// selection marker).
func eventColumns(w int) [7]int {
	rest := w - 1 - 8 - 4 - 6 // marker, time, severity, six separators
	c := [7]int{8, 4, rest * 16 / 100, rest * 28 / 100, rest * 16 / 100, rest * 16 / 100, 0}
	c[6] = rest - c[2] - c[3] - c[4] - c[5]
	return c
}

func row(cells []string, widths []int) string {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fit(c, widths[i]))
	}
	return b.String()
}

func (m *Model) eventLines(h int) []string {
	f := m.shown()
	n := h - 2
	sel := m.selected()
	// Scroll so the selection stays on screen.
	first := 0
	if m.sel >= n {
		first = m.sel - n + 1
	}
	ev := m.visibleEvents(first + n)
	if first > len(ev) {
		first = len(ev)
	}
	ev = ev[first:]
	title := fmt.Sprintf("Threat events (%d kept, min %s", len(f.events), sevName(m.minSev))
	if m.filter != "" {
		title += fmt.Sprintf(", filter %q", m.filter)
	}
	title += ")"
	cols := eventColumns(m.w)
	out := []string{m.section(title, m.w), " " + m.st.colHead.Render(row([]string{"TIME", "SEV", "RULE", "TECHNIQUE", "TACTIC", "PROCESS", "DESTINATION"}, cols[:]))}
	if len(ev) == 0 {
		msg := "  no threat events yet"
		if len(f.events) > 0 {
			msg = "  no events match (1-4 severity, / filter, esc clears)"
		}
		return append(out, m.st.dim.Render(fit(msg, m.w)))
	}
	for _, e := range ev {
		tech := e.TechID
		if e.TechName != "" {
			tech += " " + e.TechName
		}
		cells := []string{fit(e.Time.Local().Format("15:04:05"), cols[0]), fit(sevName(e.Severity), cols[1]),
			fit(e.Rule, cols[2]), fit(tech, cols[3]), fit(e.Tactic, cols[4]), fit(e.Process, cols[5]), fit(e.Dest, cols[6])}
		var line string
		if e == sel {
			line = ">" + m.st.sel.Render(strings.Join(cells, " "))
		} else {
			cells[1] = m.st.severity(e.Severity).Render(cells[1])
			line = " " + strings.Join(cells, " ")
		}
		out = append(out, line)
	}
	return out
}

func (m *Model) detailLines(h int) []string {
	out := []string{m.section("Event detail (enter or esc closes)", m.w)}
	e := m.selected()
	if e == nil {
		return append(out, m.st.dim.Render("  no event selected"))
	}
	for _, l := range e.details() {
		// At most three rows per item, so a megabyte argument cannot push
		// the evidence off the pane.
		for _, w := range wrap(l, m.w-2, min(3, h-len(out))) {
			if len(out) >= h {
				return out
			}
			out = append(out, "  "+w)
		}
	}
	return out
}

func (m *Model) connLines(w, h int) []string {
	f := m.shown()
	ext := 0
	for i := range f.conns {
		if f.conns[i].External {
			ext++
		}
	}
	sortBy := "bytes"
	if !m.byBytes {
		sortBy = "address"
	}
	out := []string{m.section(fmt.Sprintf("Connections (%d, %d external, sort %s; s toggles)", len(f.conns), ext, sortBy), w)}
	rest := w - 5 - 6 - 8 - 5 // proto, state, bytes, separators
	cols := []int{5, rest * 28 / 100, rest * 38 / 100, 6, 0, 8}
	cols[4] = rest - cols[1] - cols[2]
	if h > 1 {
		out = append(out, m.st.colHead.Render(row([]string{"PROTO", "LOCAL", "REMOTE (! external)", "STATE", "PROCESS", "BYTES"}, cols)))
	}
	for i := range f.conns {
		if len(out) >= h {
			break
		}
		c := &f.conns[i]
		if !c.matches(m.filter) {
			continue
		}
		remote := " " + c.Remote
		if c.External {
			remote = "!" + c.Remote
		}
		remote = fit(remote, cols[2])
		if c.External {
			remote = m.st.external.Render(remote)
		}
		proc := c.Process
		if c.PID > 0 {
			proc = fmt.Sprintf("%s[%d]", proc, c.PID)
		}
		out = append(out, strings.Join([]string{fit(c.Proto, cols[0]), fit(c.Local, cols[1]), remote, fit(shortState(c.State), cols[3]),
			fit(proc, cols[4]), fmt.Sprintf("%*s", cols[5], bytesStr(c.Bytes))}, " "))
	}
	return out
}

// shortState abbreviates TCP states to six cells.
func shortState(s string) string {
	switch s {
	case "ESTABLISHED":
		return "ESTAB"
	case "SYN_SENT":
		return "SYNSNT"
	}
	return s
}

func (m *Model) listenLines(w, h int) []string {
	f := m.shown()
	risky := 0
	for i := range f.listeners {
		if f.listeners[i].Risky {
			risky++
		}
	}
	out := []string{m.section(fmt.Sprintf("Listening ports (%d, %d risky)", len(f.listeners), risky), w)}
	cols := []int{5, 0, 5, 0}
	cols[1] = (w - 5 - 5 - 3) / 2
	cols[3] = w - 5 - 5 - 3 - cols[1]
	if h > 1 {
		out = append(out, m.st.colHead.Render(row([]string{"PROTO", "ADDRESS:PORT", "RISK", "PROCESS"}, cols)))
	}
	for i := range f.listeners {
		if len(out) >= h {
			break
		}
		l := &f.listeners[i]
		addr := fmt.Sprintf("%s:%d", l.Addr, l.Port)
		if strings.Contains(l.Addr, ":") {
			addr = fmt.Sprintf("[%s]:%d", l.Addr, l.Port)
		}
		proc := l.Process
		if l.PID > 0 {
			proc = fmt.Sprintf("%s[%d]", proc, l.PID)
		}
		line := row([]string{l.Proto, addr, "", proc}, cols)
		if l.Risky {
			line = m.st.risky.Render(row([]string{l.Proto, addr, "RISKY", proc}, cols))
		}
		out = append(out, line)
	}
	return out
}

// sideBySide joins two columns of lines; left lines are padded to lw cells.
func sideBySide(left, right []string, lw int) []string {
	n := max(len(left), len(right))
	out := make([]string, n)
	for i := range n {
		l, r := "", ""
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		if pad := lw - width(l); pad > 0 {
			l += strings.Repeat(" ", pad)
		}
		out[i] = l + " " + r
	}
	return out
}

func bytesStr(b uint64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatUint(b, 10) + "B"
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(b)/float64(div), "KMGTP"[exp])
}

func (m *Model) footer() string {
	if m.editing {
		return m.bar(" filter: " + Safe(m.input) + "_   (enter applies, esc cancels)")
	}
	return m.bar(" q quit  p pause  / filter  1-4 min severity  j/k select  enter detail  s sort  ? help")
}

var helpText = []string{
	"q, ctrl+c   quit: the sensor stops, sinks drain and the report is written, as without the dashboard",
	"p           pause or resume the screen (collection, detection and sinks go on)",
	"/           filter events and connections by text (rule, technique, tactic, process, address); esc clears",
	"1 2 3 4     minimum severity shown: 1 LOW, 2 MEDIUM, 3 HIGH, 4 CRITICAL",
	"j k, arrows select an event (g goes back to the newest)",
	"enter       show or hide the selected event's detail and evidence",
	"s           sort connections by bytes (largest first) or by remote address",
	"?, esc      show or hide this help",
	"",
	"Markers: ! external address (outside home_net), RISKY listening port (C2/RAT ports,",
	"Tor ports, telnet, FTP, SMB, RDP, VNC, Redis), > selected event. Host text is shown",
	`escaped (\x1b, \u202e, \xff ...). Counters and risk level count every alert since start.`,
}

func (m *Model) helpLines(h int) []string {
	out := []string{m.section("Help", m.w)}
	extra := []string{"", "Report: " + Safe(m.opts.ReportPath), "Log: " + Safe(m.opts.LogPath)}
	for _, l := range append(append([]string(nil), helpText...), extra...) {
		for _, w := range wrap(l, m.w-2, h-len(out)) {
			if len(out) >= h {
				return out
			}
			out = append(out, "  "+w)
		}
	}
	return out
}
