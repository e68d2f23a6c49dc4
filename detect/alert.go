package detect

import (
	"net/netip"
	"time"
)

// Severity is ordered: higher is worse (ECS event.severity convention).
type Severity int

const (
	SeverityLow      Severity = 1
	SeverityMedium   Severity = 2
	SeverityHigh     Severity = 3
	SeverityCritical Severity = 4
)

// ProcessInfo is the process context attached to an alert.
type ProcessInfo struct {
	PID        int32    `json:"pid"`
	Name       string   `json:"name"`
	Executable string   `json:"executable,omitempty"`
	Args       []string `json:"args,omitempty"`
	User       string   `json:"user,omitempty"`
	UID        uint32   `json:"uid"`
	PPID       int32    `json:"ppid,omitempty"`
	ParentName string   `json:"parent_name,omitempty"`
}

// Alert is one finding. It is format-neutral: schemas/ turns it into an ECS or
// native document.
type Alert struct {
	ID         string    `json:"id"`          // unique per emitted alert (event.id)
	RuleID     string    `json:"rule"`        // e.g. "suspicious_port"
	ThreatType string    `json:"threat_type"` // the original's name, e.g. "SUSPICIOUS_PORT"
	Technique  string    `json:"technique"`   // ATT&CK id, e.g. "T1571" or "T1071.004"
	Severity   Severity  `json:"severity"`
	Time       time.Time `json:"time"`            // snapshot time of detection
	Start      time.Time `json:"start,omitempty"` // window start for windowed alerts
	End        time.Time `json:"end,omitempty"`
	Message    string    `json:"message"` // one-line human description

	Transport string         `json:"transport,omitempty"` // tcp / udp
	Direction string         `json:"direction,omitempty"` // ingress / egress / internal / unknown
	Source    netip.AddrPort `json:"source,omitempty"`
	Dest      netip.AddrPort `json:"dest,omitempty"`
	Process   *ProcessInfo   `json:"process,omitempty"`

	// Evidence is what crossed the threshold: figures, thresholds, window.
	Evidence       map[string]any `json:"evidence,omitempty"`
	Recommendation string         `json:"recommendation"`

	// Entity identifies what the alert is about for de-duplication: the same
	// (RuleID, Entity) alerts once per cooldown.
	Entity string `json:"entity"`
	// Count is how many times (rule, entity) fired in the current cooldown,
	// including this one.
	Count int `json:"count"`
}
