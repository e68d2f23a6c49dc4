package dashboard

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/netsentinel/netsentinel/detect"
)

// styles are the dashboard's colours. With NO_COLOR every style renders
// plain text: nothing on screen depends on colour alone (severities are
// labelled, external addresses carry "!", risky ports "RISKY", the selected
// event ">").
type styles struct {
	header, title, colHead, dim, sel, warn, ok, external, risky lipgloss.Style
	sev                                                         [5]lipgloss.Style
}

func newStyles(noColor bool) styles {
	r := lipgloss.NewRenderer(io.Discard)
	if noColor {
		r.SetColorProfile(termenv.Ascii)
	} else {
		r.SetColorProfile(termenv.ANSI256)
	}
	s := styles{
		header:   r.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("24")),
		title:    r.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		colHead:  r.NewStyle().Foreground(lipgloss.Color("245")).Underline(true),
		dim:      r.NewStyle().Foreground(lipgloss.Color("245")),
		sel:      r.NewStyle().Reverse(true),
		warn:     r.NewStyle().Bold(true).Foreground(lipgloss.Color("214")),
		ok:       r.NewStyle().Foreground(lipgloss.Color("42")),
		external: r.NewStyle().Bold(true).Foreground(lipgloss.Color("214")),
		risky:    r.NewStyle().Bold(true).Foreground(lipgloss.Color("196")),
	}
	s.sev[detect.SeverityLow] = r.NewStyle().Foreground(lipgloss.Color("39"))
	s.sev[detect.SeverityMedium] = r.NewStyle().Bold(true).Foreground(lipgloss.Color("220"))
	s.sev[detect.SeverityHigh] = r.NewStyle().Bold(true).Foreground(lipgloss.Color("202"))
	s.sev[detect.SeverityCritical] = r.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("160"))
	return s
}

func (s *styles) severity(v detect.Severity) lipgloss.Style {
	if v >= 1 && v <= 4 {
		return s.sev[v]
	}
	return s.dim
}

// riskStyle colours the risk level like the severity it derives from.
func (s *styles) riskStyle(level string) lipgloss.Style {
	switch level {
	case "CRITICAL":
		return s.sev[detect.SeverityCritical]
	case "HIGH":
		return s.sev[detect.SeverityHigh]
	case "MEDIUM":
		return s.sev[detect.SeverityMedium]
	case "LOW":
		return s.sev[detect.SeverityLow]
	}
	return s.ok
}
