package detect

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Beaconing (T1071): connections from one process to one destination
// (ip, port, protocol) that start at regular intervals.
//
// What the sensor observes. A connection's start time is Socket.FirstSeen:
// for a socket first listed by a poll that is the poll time, so the true start
// lies somewhere in the poll interval before it (resolution = that interval);
// a connection that opened and closed between two polls is known only from a
// socket-destroy notification, and its FirstSeen (when the collector stamps
// it between the two polls) is taken as exact, else the snapshot time with
// poll resolution. Connections already open at the sensor's first snapshot
// have no known start and are not counted.
//
// The test (in the spirit of RITA's timestamp score, made robust for few
// samples): with start times t_1..t_n (identical times merged), intervals
// d_i and per-interval slack s_i (the resolution of the two ends), the series
// is periodic when some period T fits every interval within the allowed jitter
// J: T(1-J) - s_i < d_i < T(1+J) + s_i, with T(1-J) above the slack (a period
// shorter than the resolution is not observable) and T within
// [min_interval, max_interval]. From 16 intervals on, one interval in eight may
// be an outlier (a missed or extra connection). Periodicity at the 8th
// connection needs only 7 intervals; exponential (random) inter-arrival times
// almost never all fit one ±J band. A RITA-like score (Bowley skew, MAD
// dispersion, connection-count regularity and size consistency) is reported
// as evidence.
//
// Limits, honestly: with poll-stamped times and a period under about three
// polls, random traffic whose gaps happen to be one or two polls long is
// indistinguishable from a jittered beacon; destroy-event times remove the
// problem for short-lived connections.

// RuleBeaconing is the registry name (and rule id) of the beaconing detector.
const RuleBeaconing = "beaconing"

// BeaconConfig configures the beaconing detector.
type BeaconConfig struct {
	// MinConnections is the number of connections (distinct start times) at
	// which a periodic series alerts.
	MinConnections int `yaml:"min_connections"`
	// MaxJitter is the allowed relative deviation of an interval from the
	// period (0.2 = ±20%).
	MaxJitter float64 `yaml:"max_jitter"`
	// MinInterval and MaxInterval bound the periods looked for.
	MinInterval time.Duration `yaml:"min_interval"`
	MaxInterval time.Duration `yaml:"max_interval"`
	// History is how many start times are kept per key.
	History int `yaml:"history"`
	// MaxKeys caps the tracked (process, destination) keys.
	MaxKeys int `yaml:"max_keys"`
	// ExcludeDestinations are CIDRs never tracked.
	ExcludeDestinations []string `yaml:"exclude_destinations"`
	// ExcludeProcesses are process names never tracked.
	ExcludeProcesses []string `yaml:"exclude_processes"`
}

func defaultBeaconConfig() *BeaconConfig {
	return &BeaconConfig{
		MinConnections:   8,
		MaxJitter:        0.2,
		MinInterval:      time.Second,
		MaxInterval:      time.Hour,
		History:          64,
		MaxKeys:          10000,
		ExcludeProcesses: []string{"chronyd", "ntpd", "systemd-timesyn"},
	}
}

func init() { registerConfig(RuleBeaconing, defaultBeaconConfig, newBeacon) }

type beaconKey struct {
	proc  string
	proto string
	dst   netip.AddrPort
}

type beaconEvent struct {
	t    time.Time
	res  time.Duration // uncertainty of t (0 = exact)
	mult int           // connections merged into this start time
}

type beaconState struct {
	events []beaconEvent
	sizes  []float64
	pid    int32
	dir    string
}

type beacon struct {
	cfg      BeaconConfig
	exclDst  []netip.Prefix
	exclProc map[string]bool
	keys     *Window[beaconKey, beaconState]
	seen     *Window[string, struct{}]
	// owner remembers the process last seen connecting to a destination, so
	// its short connections that close before any poll (no PID: destroy
	// notifications and TIME_WAIT rows carry no owner) join its series.
	owner     *Window[beaconKey, string]
	prev      time.Time
	started   bool
	connCount uint64
}

// beaconEpsilon absorbs clock noise on exact (destroy-event) times.
const beaconEpsilon = 5 * time.Millisecond

// maxBeaconSeen caps the connection identities remembered for de-duplication.
const maxBeaconSeen = 100000

func newBeacon(c BeaconConfig) (*beacon, error) {
	if c.MinConnections < 4 {
		return nil, fmt.Errorf("min_connections must be at least 4")
	}
	if c.MaxJitter < 0 || c.MaxJitter >= 1 {
		return nil, fmt.Errorf("max_jitter must be in [0, 1)")
	}
	if c.MinInterval <= 0 || c.MaxInterval < c.MinInterval {
		return nil, fmt.Errorf("min_interval must be positive and not above max_interval")
	}
	if c.History < c.MinConnections {
		return nil, fmt.Errorf("history (%d) must hold at least min_connections (%d)", c.History, c.MinConnections)
	}
	d := &beacon{cfg: c, exclProc: map[string]bool{}}
	for _, s := range c.ExcludeDestinations {
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			return nil, fmt.Errorf("exclude_destinations: %w", err)
		}
		d.exclDst = append(d.exclDst, p)
	}
	for _, n := range c.ExcludeProcesses {
		d.exclProc[n] = true
	}
	ttl := 2*time.Duration(float64(c.MaxInterval)*(1+c.MaxJitter)) + time.Minute
	d.keys = NewWindow[beaconKey, beaconState](c.MaxKeys, ttl)
	d.owner = NewWindow[beaconKey, string](c.MaxKeys, ttl)
	d.seen = NewWindow[string, struct{}](maxBeaconSeen, 10*time.Minute)
	return d, nil
}

// parsePrefixOrAddr parses a CIDR or a bare address (as a /32 or /128).
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (d *beacon) Name() string { return RuleBeaconing }

func (d *beacon) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RuleBeaconing, Name: "Periodic connections (beaconing)", ThreatType: ThreatBeaconing, Technique: "T1071",
		Severity: SeverityMedium,
		Description: "Connections from one process to one destination start at a regular interval (any period " +
			"between min_interval and max_interval, jitter up to max_jitter), judged on connection start times incl. short-lived connections seen by destroy events.",
		Thresholds: map[string]any{
			"min_connections": d.cfg.MinConnections, "max_jitter": d.cfg.MaxJitter,
			"min_interval": d.cfg.MinInterval.String(), "max_interval": d.cfg.MaxInterval.String(),
			"history": d.cfg.History, "exclude_destinations": d.cfg.ExcludeDestinations, "exclude_processes": d.cfg.ExcludeProcesses,
		},
	}}
}

func (d *beacon) eligible(snap *collector.Snapshot, env *Env, s *collector.Socket) (beaconKey, string, bool) {
	if !s.Remote.IsValid() || IsListener(s) || (s.Proto != "tcp" && s.Proto != "udp") {
		return beaconKey{}, "", false
	}
	dir := Direction(snap, env, s)
	if dir != DirEgress && dir != DirInternal {
		return beaconKey{}, "", false
	}
	ra := s.Remote.Addr().Unmap()
	for _, p := range d.exclDst {
		if p.Contains(ra) {
			return beaconKey{}, "", false
		}
	}
	dst := beaconKey{proto: s.Proto, dst: netip.AddrPortFrom(ra, s.Remote.Port())}
	proc := OwnerKey(snap, env, s)
	if proc == UnknownOwner {
		if o, ok := d.owner.Get(dst); ok {
			proc = *o
		}
	}
	if d.exclProc[proc] {
		return beaconKey{}, "", false
	}
	return beaconKey{proc: proc, proto: s.Proto, dst: dst.dst}, dir, true
}

// adopt records k.proc as the owner of k's destination and moves start
// times gathered under an unknown owner into k's series.
func (d *beacon) adopt(k beaconKey, now time.Time) {
	dst := beaconKey{proto: k.proto, dst: k.dst}
	d.owner.Put(dst, k.proc, now)
	unk := beaconKey{proc: UnknownOwner, proto: k.proto, dst: k.dst}
	if u, ok := d.keys.Get(unk); ok {
		st := d.keys.Touch(k, now, nil)
		for _, e := range u.events {
			st.events = insertEvent(st.events, e, d.cfg.History)
		}
		for _, sz := range u.sizes {
			st.sizes = appendCapped(st.sizes, sz, d.cfg.History)
		}
		d.keys.Delete(unk)
	}
}

// stamp returns a new connection's start time and its uncertainty.
func (d *beacon) stamp(snap *collector.Snapshot, s *collector.Socket, poll time.Duration) (time.Time, time.Duration) {
	if !s.FirstSeen.IsZero() && s.FirstSeen.After(d.prev) && s.FirstSeen.Before(snap.Time) {
		return s.FirstSeen, 0
	}
	return snap.Time, poll
}

func (d *beacon) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	first := !d.started
	poll := now.Sub(d.prev)
	changed := map[beaconKey]bool{}

	add := func(s *collector.Socket, closed bool) {
		k, dir, ok := d.eligible(snap, env, s)
		if !ok {
			return
		}
		id := ConnKey(s)
		_, dup := d.seen.Get(id)
		// A connection entering TIME_WAIT is destroyed and replaced by a
		// timewait socket with a new cookie: the same 4-tuple is the same
		// connection, not a second one.
		tuple := s.Proto + "|" + s.Local.String() + "|" + s.Remote.String()
		if _, seen := d.seen.Get(tuple); seen {
			dup = true
		}
		// A closed socket seen at an earlier poll (counted then, or open
		// before the sensor started) is not a new connection.
		old := dup || (closed && !s.FirstSeen.IsZero() && !s.FirstSeen.After(d.prev))
		if old {
			if sz := float64(s.BytesAcked + s.BytesReceived); closed && sz > 0 {
				if st, ok := d.keys.Get(k); ok {
					st.sizes = appendCapped(st.sizes, sz, d.cfg.History)
				}
			}
			return
		}
		d.seen.Touch(id, now, nil)
		d.seen.Touch(tuple, now, nil)
		if first {
			return // open before the sensor started: start time unknown
		}
		t, res := d.stamp(snap, s, poll)
		if k.proc != UnknownOwner {
			d.adopt(k, now)
		}
		st := d.keys.Touch(k, now, nil)
		st.dir = dir
		if s.PID > 0 {
			st.pid = s.PID
		}
		st.events = insertEvent(st.events, beaconEvent{t: t, res: res, mult: 1}, d.cfg.History)
		if closed {
			if sz := float64(s.BytesAcked + s.BytesReceived); sz > 0 {
				st.sizes = appendCapped(st.sizes, sz, d.cfg.History)
			}
		}
		d.connCount++
		changed[k] = true
	}
	for i := range snap.Opened {
		add(&snap.Opened[i], false)
	}
	for i := range snap.Closed {
		add(&snap.Closed[i], true)
	}
	d.prev, d.started = now, true
	d.keys.Expire(now)
	d.seen.Expire(now)
	d.owner.Expire(now)

	keys := make([]beaconKey, 0, len(changed))
	for k := range changed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proc != keys[j].proc {
			return keys[i].proc < keys[j].proc
		}
		return keys[i].dst.Compare(keys[j].dst) < 0
	})
	var out []Alert
	for _, k := range keys {
		st, ok := d.keys.Get(k)
		if !ok || len(st.events) < d.cfg.MinConnections {
			continue
		}
		r, ok := analyzeBeacon(st.events, st.sizes, d.cfg)
		if !ok {
			continue
		}
		out = append(out, Alert{
			ThreatType: ThreatBeaconing, Technique: "T1071", Severity: SeverityMedium,
			Start: st.events[0].t, End: now,
			Message: fmt.Sprintf("beaconing: %s connects to %s/%s every %.1fs (%d connections, jitter %.0f%%, score %.2f)",
				k.proc, k.dst, k.proto, r.period, len(st.events), r.jitter*100, r.score),
			Transport: k.proto, Direction: st.dir, Dest: k.dst,
			Process: ProcessContext(snap, env, st.pid),
			Evidence: map[string]any{
				"connections": len(st.events), "min_connections": d.cfg.MinConnections,
				"period_seconds": round3(r.period), "min_interval_seconds": round3(r.minD), "max_interval_seconds": round3(r.maxD),
				"jitter": round3(r.jitter), "max_jitter": d.cfg.MaxJitter, "resolution_seconds": round3(r.res),
				"outliers": r.outliers, "score": round3(r.score), "skew_score": round3(r.skew),
				"dispersion_score": round3(r.mad), "count_score": round3(r.count), "size_score": r.sizeScore,
				"window_seconds": round3(st.events[len(st.events)-1].t.Sub(st.events[0].t).Seconds()),
			},
			Recommendation: Recommendation(ThreatBeaconing),
			Entity:         k.proc + "|" + k.proto + "|" + k.dst.String(),
		})
	}
	return out
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func appendCapped(s []float64, v float64, n int) []float64 {
	s = append(s, v)
	if len(s) > n {
		s = append(s[:0], s[len(s)-n:]...)
	}
	return s
}

// insertEvent adds e in time order, merging it into an event at the same
// time, and keeps at most n events (the newest).
func insertEvent(ev []beaconEvent, e beaconEvent, n int) []beaconEvent {
	i := sort.Search(len(ev), func(i int) bool { return !ev[i].t.Before(e.t) })
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(ev) {
			if dt := ev[j].t.Sub(e.t); dt < beaconEpsilon && dt > -beaconEpsilon {
				ev[j].mult++
				if e.res > ev[j].res {
					ev[j].res = e.res
				}
				return ev
			}
		}
	}
	ev = append(ev, beaconEvent{})
	copy(ev[i+1:], ev[i:])
	ev[i] = e
	if len(ev) > n {
		ev = append(ev[:0], ev[len(ev)-n:]...)
	}
	return ev
}

type beaconResult struct {
	period, minD, maxD, jitter, res float64
	score, skew, mad, count         float64
	sizeScore                       any // float64, or nil when sizes are unknown
	outliers                        int
}

// beaconInterval is the gap d between two start times. A poll-stamped time
// lies up to its resolution before the stamp (the connection began after the
// previous poll), so the true gap is in [d-below, d+above]; s is the larger.
type beaconInterval struct{ d, s, below, above float64 }

// analyzeBeacon decides whether the start times are periodic (see the file
// comment) and scores them.
func analyzeBeacon(ev []beaconEvent, sizes []float64, c BeaconConfig) (beaconResult, bool) {
	var r beaconResult
	if len(ev) < c.MinConnections {
		return r, false
	}
	// Poll-stamped start times: a period above the resolution (required
	// below) puts at most one start in a poll, or the same number every time
	// (a beacon that opens parallel connections). Varying counts per poll
	// mean bursts, not a beacon.
	for _, e := range ev {
		if e.res > 0 && e.mult != ev[len(ev)-1].mult {
			return r, false
		}
	}
	eps := beaconEpsilon.Seconds()
	iv := make([]beaconInterval, len(ev)-1)
	for i := range iv {
		iv[i] = beaconInterval{
			d:     ev[i+1].t.Sub(ev[i].t).Seconds(),
			s:     math.Max(ev[i].res.Seconds(), ev[i+1].res.Seconds()) + eps,
			below: ev[i+1].res.Seconds() + eps,
			above: ev[i].res.Seconds() + eps,
		}
	}
	sort.Slice(iv, func(i, j int) bool { return iv[i].d < iv[j].d })
	// The period-above-resolution rule guards series known mostly to the
	// poll (bursts would otherwise pass as beacons). A series of mostly
	// exact times with a few poll-stamped ones (a beacon first seen open at
	// a poll, its later connections caught by destroy notifications) keeps
	// those as wide intervals instead.
	polled := 0
	for _, x := range iv {
		if x.s > 2*eps {
			polled++
		}
	}
	mostlyPolled := 2*polled >= len(iv)
	allowed := 0
	if len(iv) >= 16 {
		allowed = len(iv) / 8
	}
	j := c.MaxJitter
	bestLo, bestHi, bestOut := 0.0, 0.0, -1
	var kept []beaconInterval
	for out := 0; out <= allowed && bestOut < 0; out++ {
		for a := 0; a <= out; a++ {
			sub := iv[a : len(iv)-(out-a)]
			lo, hi := c.MinInterval.Seconds()*(1-j), c.MaxInterval.Seconds()*(1+j)
			for _, x := range sub {
				lo = math.Max(lo, (x.d-x.below)/(1+j))
				hi = math.Min(hi, (x.d+x.above)/(1-j))
				if mostlyPolled && x.s > 2*eps { // poll-stamped: the period must exceed the resolution
					lo = math.Max(lo, x.s/(1-j))
				}
			}
			if lo < hi {
				bestLo, bestHi, bestOut, kept = lo, hi, out, sub
				break
			}
		}
	}
	if bestOut < 0 {
		return r, false
	}
	ds := make([]float64, len(kept))
	maxS := 0.0
	for i, x := range kept {
		ds[i] = x.d
		maxS = math.Max(maxS, x.s-eps)
	}
	med := quantile(ds, 0.5)
	r.period = math.Min(math.Max(med, bestLo), bestHi)
	r.minD, r.maxD, r.res, r.outliers = ds[0], ds[len(ds)-1], maxS, bestOut
	r.jitter = math.Max(math.Abs(r.minD-r.period), math.Abs(r.maxD-r.period)) / r.period
	// RITA-like score components.
	q1, q3 := quantile(ds, 0.25), quantile(ds, 0.75)
	skew := 0.0
	if q3-q1 > maxS && med != q1 && med != q3 {
		skew = (q1 + q3 - 2*med) / (q3 - q1)
	}
	r.skew = 1 - math.Abs(skew)
	dev := make([]float64, len(kept))
	for i, x := range kept {
		dev[i] = math.Max(0, math.Abs(x.d-med)-x.s)
	}
	sort.Float64s(dev)
	if med > 0 {
		r.mad = clamp01(1 - quantile(dev, 0.5)/med)
	}
	span := ev[len(ev)-1].t.Sub(ev[0].t).Seconds()
	if span > 0 && r.period > 0 {
		r.count = clamp01(float64(len(ev)-1) / (span / r.period))
	}
	parts := []float64{r.skew, r.mad, r.count}
	if len(sizes) >= 4 {
		ss := append([]float64(nil), sizes...)
		sort.Float64s(ss)
		sm := quantile(ss, 0.5)
		for i := range ss {
			ss[i] = math.Abs(ss[i] - sm)
		}
		sort.Float64s(ss)
		sz := 0.0
		if sm > 0 {
			sz = clamp01(1 - quantile(ss, 0.5)/sm)
		}
		r.sizeScore = round3(sz)
		parts = append(parts, sz)
	}
	for _, p := range parts {
		r.score += p
	}
	r.score /= float64(len(parts))
	return r, true
}

func clamp01(x float64) float64 { return math.Min(1, math.Max(0, x)) }

// quantile of sorted s by linear interpolation.
func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	f := pos - float64(lo)
	return s[lo]*(1-f) + s[hi]*f
}
