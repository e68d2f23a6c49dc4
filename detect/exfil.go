package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// High-volume exfiltration (T1048): bytes this host sent (tcp_info
// bytes_acked) per (process, external destination) summed over a sliding
// window. Bytes are counted as deltas per connection between polls, including
// the final counters of connections that closed between polls (destroy
// events); the last counters per connection are remembered so nothing is
// counted twice. Connections already open at the sensor's first snapshot
// count only from then on. By default only connections this host opened
// count (a server answering downloads is not exfiltration).

// RuleExfiltration is the registry name (and rule id) of the exfiltration detector.
const RuleExfiltration = "exfiltration"

// ExfilConfig configures the exfiltration detector.
type ExfilConfig struct {
	// ThresholdBytes sent to one destination within Window that alert.
	ThresholdBytes uint64 `yaml:"threshold_bytes"`
	// Window is the sliding window (in buckets of Window/10).
	Window time.Duration `yaml:"window"`
	// IncludeIngress also counts bytes sent on connections peers opened.
	IncludeIngress bool `yaml:"include_ingress"`
	// MaxConnections caps the per-connection counter memory.
	MaxConnections int `yaml:"max_connections"`
	// MaxKeys caps the (process, destination) sums.
	MaxKeys int `yaml:"max_keys"`
}

func defaultExfilConfig() *ExfilConfig {
	return &ExfilConfig{
		ThresholdBytes: 50_000_000, Window: 10 * time.Minute,
		MaxConnections: 200000, MaxKeys: 20000,
	}
}

func init() { registerConfig(RuleExfiltration, defaultExfilConfig, newExfil) }

type exfilKey struct {
	proc string
	dst  netip.Addr
}

type exfilBucket struct {
	start time.Time
	bytes uint64
}

type exfilState struct {
	buckets []exfilBucket
	pid     int32
	port    uint16
	conns   int
}

type exfil struct {
	cfg     ExfilConfig
	bucket  time.Duration
	last    *Window[string, uint64] // ConnKey -> bytes_acked counted so far
	sums    *Window[exfilKey, exfilState]
	started bool
	prev    time.Time
}

func newExfil(c ExfilConfig) (*exfil, error) {
	if c.ThresholdBytes == 0 || c.Window < 10*time.Second {
		return nil, fmt.Errorf("threshold_bytes must be positive and window at least 10s")
	}
	return &exfil{
		cfg: c, bucket: c.Window / 10,
		// Open connections are touched every poll; the TTL only drops
		// connections that vanished without a Closed entry.
		last: NewWindow[string, uint64](c.MaxConnections, c.Window),
		sums: NewWindow[exfilKey, exfilState](c.MaxKeys, c.Window),
	}, nil
}

func (d *exfil) Name() string { return RuleExfiltration }

func (d *exfil) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RuleExfiltration, Name: "High-volume upload to an external destination", ThreatType: ThreatExfil,
		Technique: "T1048", Severity: SeverityHigh,
		Description: "Bytes sent (tcp_info bytes_acked deltas, incl. connections that closed between polls) per process and external destination over a sliding window.",
		Thresholds: map[string]any{"threshold_bytes": d.cfg.ThresholdBytes, "window": d.cfg.Window.String(),
			"include_ingress": d.cfg.IncludeIngress},
	}}
}

func (d *exfil) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	first := !d.started
	d.started = true
	touched := map[exfilKey]bool{}
	count := func(s *collector.Socket, closed bool) {
		if s.Proto != "tcp" || !s.Remote.IsValid() || IsListener(s) {
			return
		}
		id := ConnKey(s)
		prev, known := d.last.Get(id)
		var delta uint64
		keep := false
		switch {
		case known && s.BytesAcked >= *prev:
			delta = s.BytesAcked - *prev
		case known && (s.BytesAcked == 0 || s.Cookie != 0):
			// A TIME_WAIT row has no counters: keep the last ones.
			keep = true
		case known: // counters went down on a tuple key: a reused tuple
			delta = s.BytesAcked
		case first && !closed:
			delta = 0 // open before the sensor started: baseline
		case closed && !s.FirstSeen.IsZero() && s.FirstSeen.Before(d.prev):
			delta = 0 // listed at an earlier poll but its counters were dropped
		default:
			delta = s.BytesAcked // opened (and maybe closed) since the last poll
		}
		switch {
		case closed:
			d.last.Delete(id)
		case keep:
			d.last.Touch(id, now, nil)
		default:
			d.last.Put(id, s.BytesAcked, now)
		}
		if delta == 0 || !env.IsExternal(s.Remote.Addr()) {
			return
		}
		if !d.cfg.IncludeIngress && Direction(snap, env, s) != DirEgress {
			return
		}
		k := exfilKey{ProcessKey(snap, env, s.PID), s.Remote.Addr().Unmap()}
		st := d.sums.Touch(k, now, nil)
		bstart := now.Truncate(d.bucket)
		if n := len(st.buckets); n > 0 && st.buckets[n-1].start.Equal(bstart) {
			st.buckets[n-1].bytes += delta
		} else {
			st.buckets = append(st.buckets, exfilBucket{bstart, delta})
		}
		if s.PID > 0 {
			st.pid = s.PID
		}
		st.port = s.Remote.Port()
		st.conns++
		touched[k] = true
	}
	for i := range snap.Sockets {
		count(&snap.Sockets[i], false)
	}
	for i := range snap.Closed {
		count(&snap.Closed[i], true)
	}
	d.last.Expire(now)
	d.sums.Expire(now)
	d.prev = now

	keys := make([]exfilKey, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proc != keys[j].proc {
			return keys[i].proc < keys[j].proc
		}
		return keys[i].dst.Less(keys[j].dst)
	})
	var out []Alert
	for _, k := range keys {
		st, ok := d.sums.Get(k)
		if !ok {
			continue
		}
		cut := now.Add(-d.cfg.Window)
		i := 0
		for i < len(st.buckets) && !st.buckets[i].start.Add(d.bucket).After(cut) {
			i++
		}
		st.buckets = append(st.buckets[:0], st.buckets[i:]...)
		var total uint64
		for _, b := range st.buckets {
			total += b.bytes
		}
		if total < d.cfg.ThresholdBytes {
			continue
		}
		a := Alert{
			ThreatType: ThreatExfil, Technique: "T1048", Severity: SeverityHigh,
			Start: st.buckets[0].start, End: now,
			Message: fmt.Sprintf("high-volume upload: %s sent %.1f MB to %s within %s (threshold %.1f MB)",
				k.proc, float64(total)/1e6, k.dst, d.cfg.Window, float64(d.cfg.ThresholdBytes)/1e6),
			Transport: "tcp", Direction: DirEgress, Dest: netip.AddrPortFrom(k.dst, st.port),
			Process: ProcessContext(snap, env, st.pid),
			Evidence: map[string]any{
				"bytes_sent": total, "threshold": d.cfg.ThresholdBytes, "window_seconds": d.cfg.Window.Seconds(),
				"connection_updates": st.conns,
			},
			Recommendation: Recommendation(ThreatExfil), Entity: k.proc + "|" + k.dst.String(),
		}
		if len(snap.HostIPs) > 0 {
			a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
		}
		out = append(out, a)
	}
	return out
}
