package schemas

import "github.com/netsentinel/netsentinel/detect"

// Severity scales (documented in doc.go). detect.Severity runs 1 (low) .. 4
// (critical); values outside are clamped.
//
//	detect     native/report   ECS event.severity   event.risk_score(_norm)
//	1 low      "LOW"           2                    21
//	2 medium   "MEDIUM"        3                    47
//	3 high     "HIGH"          4                    73
//	4 critical "CRITICAL"      5                    99
//
// event.severity follows Elastic's Falco mapping (0..7, higher = worse; the
// syslog level inverted: notice 2, warning 3, error 4, critical 5), leaving 6
// and 7 (alert, emergency) unused. The risk scores are Kibana's defaults for
// low/medium/high/critical detection rules.
var (
	severityNames = [...]string{"LOW", "MEDIUM", "HIGH", "CRITICAL"}
	ecsSeverities = [...]int{2, 3, 4, 5}
	riskScores    = [...]float64{21, 47, 73, 99}
)

func sevIndex(s detect.Severity) int {
	switch {
	case s <= detect.SeverityLow:
		return 0
	case s >= detect.SeverityCritical:
		return 3
	default:
		return int(s) - 1
	}
}

// SeverityName is the native/report name of s: LOW, MEDIUM, HIGH or CRITICAL.
func SeverityName(s detect.Severity) string { return severityNames[sevIndex(s)] }

// ECSSeverity is event.severity for s (higher = worse).
func ECSSeverity(s detect.Severity) int { return ecsSeverities[sevIndex(s)] }

// RiskScore is event.risk_score (and risk_score_norm, 0-100) for s.
func RiskScore(s detect.Severity) float64 { return riskScores[sevIndex(s)] }
