package schemas

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/detect"
)

// NativeAlert is the original tool's event shape. The first ten fields are the
// original's, with the same names and meaning; the rest are NetSentinel's
// documented extension (see doc.go).
type NativeAlert struct {
	Timestamp      string         `json:"timestamp"`   // RFC 3339 with zone
	ThreatType     string         `json:"threat_type"` // SUSPICIOUS_PORT ...
	Severity       string         `json:"severity"`    // LOW, MEDIUM, HIGH, CRITICAL
	SourceIP       string         `json:"source_ip"`   // "" when not applicable
	DestIP         string         `json:"dest_ip"`     // "" when not applicable
	Port           int            `json:"port"`        // destination port; 0 when not applicable
	Description    string         `json:"description"`
	Evidence       map[string]any `json:"evidence"`        // {} when none
	MitreTactic    string         `json:"mitre_tactic"`    // tactic name(s), ", "-joined
	MitreTechnique string         `json:"mitre_technique"` // T1571, T1071.004 ...

	// Extension.
	EventID       string         `json:"event_id"`
	Rule          string         `json:"rule"`
	TechniqueName string         `json:"mitre_technique_name,omitempty"`
	TacticIDs     []string       `json:"mitre_tactic_ids,omitempty"`
	SourcePort    int            `json:"source_port,omitempty"`
	Transport     string         `json:"transport,omitempty"`
	Direction     string         `json:"direction,omitempty"`
	WindowStart   string         `json:"window_start,omitempty"`
	WindowEnd     string         `json:"window_end,omitempty"`
	Count         int            `json:"count,omitempty"`
	Entity        string         `json:"entity,omitempty"`
	Recommend     string         `json:"recommendation,omitempty"`
	Process       *NativeProcess `json:"process,omitempty"`
}

// NativeProcess is the process context of a native alert.
type NativeProcess struct {
	PID         int32    `json:"pid"`
	Name        string   `json:"name,omitempty"`
	Executable  string   `json:"executable,omitempty"`
	CommandLine string   `json:"command_line,omitempty"`
	Args        []string `json:"args,omitempty"`
	User        string   `json:"user,omitempty"`
	UID         uint32   `json:"uid"`
	PPID        int32    `json:"ppid,omitempty"`
	ParentName  string   `json:"parent_name,omitempty"`
}

// Native formats alerts in the original tool's shape.
type Native struct {
	lookup TechniqueLookup
}

// NewNative builds the native formatter; lookup may be nil.
func NewNative(lookup TechniqueLookup) *Native { return &Native{lookup: lookup} }

// Name is "native".
func (f *Native) Name() string { return "native" }

// Format renders a as one compact native JSON object (no trailing newline).
func (f *Native) Format(a *detect.Alert) ([]byte, error) {
	if a == nil {
		return nil, errors.New("native: nil alert")
	}
	b, err := marshalCompact(ToNative(a, f.lookup))
	if err != nil {
		return nil, fmt.Errorf("native: encoding alert %s (rule %s): %w", clean(a.ID, 64), clean(a.RuleID, 64), err)
	}
	return b, nil
}

// ToNative converts an alert to the native shape (also used by the report's
// threat_events). Strings are sanitised and capped like the ECS fields.
func ToNative(a *detect.Alert, lookup TechniqueLookup) NativeAlert {
	tech := resolveTechnique(lookup, clean(a.Technique, 32))
	ts := a.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	n := NativeAlert{
		Timestamp:      formatTime(ts),
		ThreatType:     clean(a.ThreatType, MaxKeyword),
		Severity:       SeverityName(a.Severity),
		Description:    clean(a.Message, MaxMessage),
		Evidence:       sanitizeEvidence(a.Evidence),
		MitreTechnique: tech.ID,
		EventID:        alertID(a),
		Rule:           clean(a.RuleID, MaxKeyword),
		TechniqueName:  tech.Name,
		Transport:      strings.ToLower(clean(a.Transport, 32)),
		Direction:      clean(a.Direction, 32),
		Count:          a.Count,
		Entity:         clean(a.Entity, MaxKeyword),
		Recommend:      clean(a.Recommendation, MaxMessage),
	}
	if n.Evidence == nil {
		n.Evidence = map[string]any{}
	}
	if tech.ParentName != "" && tech.Name != "" {
		n.TechniqueName = tech.ParentName + ": " + tech.Name
	}
	names := make([]string, 0, len(tech.Tactics))
	for _, t := range tech.Tactics {
		names = append(names, t.Name)
		n.TacticIDs = append(n.TacticIDs, t.ID)
	}
	n.MitreTactic = strings.Join(names, ", ")
	if a.Source.IsValid() {
		n.SourceIP = a.Source.Addr().Unmap().String()
		n.SourcePort = int(a.Source.Port())
	}
	if a.Dest.IsValid() {
		n.DestIP = a.Dest.Addr().Unmap().String()
		n.Port = int(a.Dest.Port())
	}
	n.WindowStart = formatTimeIfSet(a.Start)
	n.WindowEnd = formatTimeIfSet(a.End)
	if p := a.Process; p != nil && (p.PID != 0 || p.Name != "" || p.Executable != "" || len(p.Args) > 0) {
		n.Process = &NativeProcess{
			PID: p.PID, Name: clean(p.Name, MaxKeyword), Executable: clean(p.Executable, MaxKeyword),
			CommandLine: commandLine(p.Args), Args: cleanArgs(p.Args),
			User: clean(p.User, MaxKeyword), UID: p.UID, PPID: p.PPID, ParentName: clean(p.ParentName, MaxKeyword),
		}
	}
	return n
}

func formatTimeIfSet(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}
