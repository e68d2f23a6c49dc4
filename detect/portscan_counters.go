package detect

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// counterAlerts feeds the host-wide counters to their learned baselines
// (counterbase.go). The counters start with the network namespace; its age is
// taken from the start time of PID 1 as this sensor sees it (the init of its
// PID namespace, which on a host or in a container starts with the network
// namespace), so the first poll already knows the host's average rate.
func (d *portScan) counterAlerts(snap *collector.Snapshot) []Alert {
	c := snap.Counters
	if !c.Valid {
		return nil
	}
	if init := snap.Processes[1]; init != nil && !init.StartTime.IsZero() {
		age := snap.Time.Sub(init.StartTime)
		d.closedPorts.seed(c.TCPOutRsts+c.UDPNoPorts, age)
		d.attemptFails.seed(c.TCPAttemptFails, age)
	}
	var out []Alert
	if a := d.closedPorts.observe(snap.Time, c.TCPOutRsts+c.UDPNoPorts); a != nil {
		al := d.counterAlert(a, DirIngress, "counters:closed_ports")
		al.Evidence["tcp_out_rsts_and_udp_no_ports"] = a.Observed
		what := fmt.Sprintf("probes of closed ports: %d TCP resets and UDP port-unreachables sent in %s, %.0f expected from this host's baseline (%.2f/s)",
			a.Observed, fmtSpan(a), a.Expected, a.Rate)
		if src, n, ok := d.likelySource(snap.Time); ok {
			al.Source = netip.AddrPortFrom(src, 0)
			al.Evidence["likely_source_ports_seen"] = n
			al.Message = fmt.Sprintf("%s; likely source %s (seen on %d local ports)", what, src, n)
		} else {
			al.Message = what + "; source not observable (closed-port probes leave no socket)"
		}
		out = append(out, al)
	}
	if a := d.attemptFails.observe(snap.Time, c.TCPAttemptFails); a != nil {
		al := d.counterAlert(a, DirEgress, "counters:attempt_fails")
		al.Evidence["tcp_attempt_fails"] = a.Observed
		al.Message = fmt.Sprintf("outbound scan: %d failed TCP connection attempts in %s, %.0f expected from this host's baseline (%.2f/s); host-wide counter, the process group is named by the socket rule when observable",
			a.Observed, fmtSpan(a), a.Expected, a.Rate)
		out = append(out, al)
	}
	return out
}

func (d *portScan) counterAlert(a *baselineAlarm, dir, entity string) Alert {
	return Alert{
		ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
		Start: a.Start, End: a.End, Direction: dir,
		Evidence: map[string]any{
			"expected": round2(a.Expected), "threshold": round2(a.Threshold),
			"baseline_per_second": round2(a.Rate), "baseline_noise_per_second": round2(a.Noise),
			"window_seconds": a.End.Sub(a.Start).Seconds(),
		},
		Recommendation: Recommendation(ThreatPortScan), Entity: entity,
	}
}

func fmtSpan(a *baselineAlarm) string { return a.End.Sub(a.Start).Round(time.Second).String() }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
