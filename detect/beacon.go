package detect

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Beaconing (T1071): a process (or, when its owner is not readable, a
// socket owner's UID) that talks to one destination (ip, port, protocol) at
// regular intervals, either by opening connections or by sending bursts of
// data over one long-lived connection (a heartbeat).
//
// What the sensor observes. A connection's start time is Socket.FirstSeen:
// for a socket first listed by a poll that is the poll time, so the true start
// lies somewhere in the poll interval before it (resolution = that interval);
// a connection that opened and closed between two polls is known only from a
// socket-destroy notification, and its FirstSeen (when the collector stamps
// it between the two polls) is taken as exact, else the snapshot time with
// poll resolution. Connections already open at the sensor's first snapshot
// have no known start and are not counted. For an open TCP connection the
// byte counters (tcp_info) are read at every poll: a poll at which they grew
// after one at which they did not starts a burst, stamped with the poll time.
//
// Each series keeps its last `history` start times (16 bytes each) and
// sizes (4 bytes each) and is judged by analyzeBeacon (beacon_score.go) at
// each new start. Memory is bounded: at most max_keys series (least recently
// active dropped first), each expiring after twice max_interval (plus the
// jitter) without a start, so hour-long periods survive between polls and
// across reloads (takeState) in continuous mode.

// RuleBeaconing is the registry name (and rule id) of the beaconing detector.
const RuleBeaconing = "beaconing"

// BeaconConfig configures the beaconing detector.
type BeaconConfig struct {
	// MinConnections is the number of start times (distinct connection
	// starts, or bursts on one connection) a series with at most 12 % jitter
	// needs to alert.
	MinConnections int `yaml:"min_connections"`
	// MaxConnections is what a series at max_jitter needs; in between the
	// need rises linearly.
	MaxConnections int `yaml:"min_connections_at_max_jitter"`
	// MaxJitter is the allowed relative deviation of an interval from the
	// period (0.5 = ±50%).
	MaxJitter float64 `yaml:"max_jitter"`
	// MinScore is the RITA-class score (0..1) a series must reach.
	MinScore float64 `yaml:"min_score"`
	// MinInterval and MaxInterval bound the periods looked for.
	MinInterval time.Duration `yaml:"min_interval"`
	MaxInterval time.Duration `yaml:"max_interval"`
	// History is how many start times (and sizes) are kept per series.
	History int `yaml:"history"`
	// MaxKeys caps the tracked series (and, separately, the long-lived
	// connections whose byte counters are followed).
	MaxKeys int `yaml:"max_keys"`
	// IncludeInternal also tracks destinations inside home_net (health
	// checks, monitoring and cluster traffic are periodic by design).
	IncludeInternal bool `yaml:"include_internal"`
	// ExcludeDestinations are CIDRs never tracked.
	ExcludeDestinations []string `yaml:"exclude_destinations"`
	// ExcludeProcesses are process names never tracked.
	ExcludeProcesses []string `yaml:"exclude_processes"`
}

func defaultBeaconConfig() *BeaconConfig {
	return &BeaconConfig{
		MinConnections:   8,
		MaxConnections:   40,
		MaxJitter:        0.5,
		MinScore:         0.8,
		MinInterval:      time.Second,
		MaxInterval:      time.Hour,
		History:          64,
		MaxKeys:          10000,
		ExcludeProcesses: []string{"chronyd", "ntpd", "systemd-timesyn"},
	}
}

func init() { registerConfig(RuleBeaconing, defaultBeaconConfig, newBeacon) }

// beaconKey names a series: connection starts from proc to dst, or (stream
// set, the connection's ConnKey) bursts over one long-lived connection.
type beaconKey struct {
	proc   string
	proto  string
	dst    netip.AddrPort
	stream string
}

type beaconState struct {
	events []beaconEvent
	sizes  []float32
	pid    int32
	dir    string
}

// beaconStream follows one open TCP connection's byte counters.
type beaconStream struct {
	bytes  uint64
	active bool // the counters grew at the last poll
}

type beacon struct {
	cfg      BeaconConfig
	exclDst  []netip.Prefix
	exclProc map[string]bool
	keys     *Window[beaconKey, beaconState]
	seen     *Window[string, struct{}]
	streams  *Window[connID, beaconStream]
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
	if c.MaxConnections < c.MinConnections {
		return nil, fmt.Errorf("min_connections_at_max_jitter (%d) must not be below min_connections (%d)", c.MaxConnections, c.MinConnections)
	}
	if c.MaxJitter <= 0 || c.MaxJitter >= 1 {
		return nil, fmt.Errorf("max_jitter must be above 0 and below 1")
	}
	if c.MinScore < 0 || c.MinScore > 1 {
		return nil, fmt.Errorf("min_score must be in [0, 1]")
	}
	if c.MinInterval <= 0 || c.MaxInterval < c.MinInterval {
		return nil, fmt.Errorf("min_interval must be positive and not above max_interval")
	}
	if c.History < c.MaxConnections {
		return nil, fmt.Errorf("history (%d) must hold at least min_connections_at_max_jitter (%d)", c.History, c.MaxConnections)
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
	d.streams = NewWindow[connID, beaconStream](c.MaxKeys, 10*time.Minute)
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
		ID: RuleBeaconing, Name: "Periodic connections or heartbeats (beaconing)", ThreatType: ThreatBeaconing, Technique: "T1071",
		Severity: SeverityMedium,
		Description: "One process (or socket owner's UID) reaches one destination outside home_net at a regular interval " +
			"(min_interval to max_interval, jitter up to max_jitter): new connections, or bursts of data over one long-lived " +
			"connection. A RITA-class score (interval skew, MAD dispersion, connection count, data-size regularity) decides, " +
			"and the connections needed rise with the jitter (min_connections to min_connections_at_max_jitter).",
		Thresholds: map[string]any{
			"min_connections": d.cfg.MinConnections, "min_connections_at_max_jitter": d.cfg.MaxConnections,
			"max_jitter": d.cfg.MaxJitter, "min_score": d.cfg.MinScore,
			"min_interval": d.cfg.MinInterval.String(), "max_interval": d.cfg.MaxInterval.String(),
			"history": d.cfg.History, "include_internal": d.cfg.IncludeInternal,
			"exclude_destinations": d.cfg.ExcludeDestinations, "exclude_processes": d.cfg.ExcludeProcesses,
		},
		Sees: Visibility{
			Privileged: "Every connection's start (new sockets at each poll, sub-poll ones through destroy notifications) and " +
				"every open TCP connection's byte counters, per owning process.",
			Unprivileged: "The same starts and counters for every user's sockets (sock_diag needs no privilege), but other " +
				"users' sockets have no PID: their series are keyed by the socket's UID (\"uid:N\"), or \"unknown\" for " +
				"connections seen only as they close, and the process is not named.",
		},
	}}
}

// entity names a socket's owner for a series (OwnerKey: the process, else
// the socket's UID), else the owner last seen reaching dst, else
// UnknownOwner (a connection seen only as it closed).
//
// A PID whose process already exited (a short-lived curl gone before the
// poll read the process table) names no process: it takes the same
// fallbacks, or every connection of a beacon that runs one process per
// connection would start a series of its own ("pid:N").
func (d *beacon) entity(snap *collector.Snapshot, env *Env, s *collector.Socket, dst beaconKey) string {
	proc := OwnerKey(snap, env, s)
	if proc != UnknownOwner && !strings.HasPrefix(proc, "pid:") {
		return proc
	}
	if o, ok := d.owner.Get(dst); ok {
		return *o
	}
	if strings.HasPrefix(proc, "pid:") && uidKnown(s) {
		return "uid:" + strconv.FormatUint(uint64(s.UID), 10)
	}
	return proc
}

func (d *beacon) eligible(snap *collector.Snapshot, env *Env, s *collector.Socket) (beaconKey, string, bool) {
	ra, dir, ok := d.eligibleDst(snap, env, s)
	if !ok {
		return beaconKey{}, "", false
	}
	k, ok := d.keyFor(snap, env, s, ra)
	return k, dir, ok
}

// keyFor is eligible's part that reads the owner: the series key of s (to
// ra, its remote address), false when the owner is excluded.
func (d *beacon) keyFor(snap *collector.Snapshot, env *Env, s *collector.Socket, ra netip.Addr) (beaconKey, bool) {
	dst := beaconKey{proto: s.Proto.String(), dst: netip.AddrPortFrom(ra, s.Remote.Port())}
	proc := d.entity(snap, env, s, dst)
	if d.exclProc[proc] {
		return beaconKey{}, false
	}
	return beaconKey{proc: proc, proto: s.Proto.String(), dst: dst.dst}, true
}

// eligibleDst is eligible's part that reads only the socket, the
// configuration and the listeners: a socket it rejects stays rejected while
// it is listed unchanged (quiet.go).
func (d *beacon) eligibleDst(snap *collector.Snapshot, env *Env, s *collector.Socket) (netip.Addr, string, bool) {
	if !s.Remote.IsValid() || IsListener(s) || (s.Proto != collector.ProtoTCP && s.Proto != collector.ProtoUDP) {
		return netip.Addr{}, "", false
	}
	// The address test before Direction: it rejects loopback and home_net
	// peers (most of a busy server's sockets) without the listener look-up.
	ra := s.Remote.Addr().Unmap()
	if !d.cfg.IncludeInternal && !env.IsExternal(ra) {
		return netip.Addr{}, "", false
	}
	dir := Direction(snap, env, s)
	if dir != DirEgress && dir != DirInternal {
		return netip.Addr{}, "", false
	}
	for _, p := range d.exclDst {
		if p.Contains(ra) {
			return netip.Addr{}, "", false
		}
	}
	return ra, dir, true
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
func (d *beacon) stamp(snap *collector.Snapshot, s *collector.Socket, poll time.Duration) beaconEvent {
	if !s.FirstSeen.IsZero() && s.FirstSeen.After(d.prev) && s.FirstSeen.Before(snap.Time) {
		return beaconEvent{t: s.FirstSeen.UnixNano(), mult: 1}
	}
	return beaconEvent{t: snap.Time.UnixNano(), res: int32(min(poll.Milliseconds(), math.MaxInt32)), mult: 1}
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
		tuple := s.Proto.String() + "|" + s.Local.String() + "|" + s.Remote.String()
		if _, seen := d.seen.Get(tuple); seen {
			dup = true
		}
		// A closed socket seen at an earlier poll (counted then, or open
		// before the sensor started) is not a new connection.
		old := dup || (closed && !s.FirstSeen.IsZero() && !s.FirstSeen.After(d.prev))
		if old {
			if sz := float32(s.BytesAcked + s.BytesReceived); closed && sz > 0 {
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
		if k.proc != UnknownOwner {
			d.adopt(k, now)
		}
		st := d.keys.Touch(k, now, nil)
		st.dir = dir
		if s.PID > 0 {
			st.pid = s.PID
		}
		st.events = insertEvent(st.events, d.stamp(snap, s, poll), d.cfg.History)
		if closed {
			if sz := float32(s.BytesAcked + s.BytesReceived); sz > 0 {
				st.sizes = appendCapped(st.sizes, sz, d.cfg.History)
			}
		}
		d.connCount++
		changed[k] = true
	}
	// Closed first: a connection that opened and ended between two polls
	// is listed in both, as a TIME_WAIT row (stamped with the poll time) and
	// through its destroy notification (stamped when it ended, nearer its
	// start); the first one seen counts.
	for i := range snap.Closed {
		add(&snap.Closed[i], true)
		d.streams.Delete(connIDOf(&snap.Closed[i]))
	}
	for i := range snap.Opened {
		add(&snap.Opened[i], false)
	}
	d.followStreams(snap, env, first, poll, changed)
	d.prev, d.started = now, true
	d.keys.Expire(now)
	d.seen.Expire(now)
	d.owner.Expire(now)
	d.streams.Expire(now)

	keys := make([]beaconKey, 0, len(changed))
	for k := range changed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proc != keys[j].proc {
			return keys[i].proc < keys[j].proc
		}
		if c := keys[i].dst.Compare(keys[j].dst); c != 0 {
			return c < 0
		}
		return keys[i].stream < keys[j].stream
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
		out = append(out, d.alert(snap, env, k, st, r))
	}
	return out
}

// followStreams turns the byte counters of open TCP connections into burst
// start times: a poll at which a connection's counters grew, after one at
// which they did not, starts a burst (its size: the bytes of that poll).
func (d *beacon) followStreams(snap *collector.Snapshot, env *Env, first bool, poll time.Duration, changed map[beaconKey]bool) {
	// Quiet (true): not an established TCP connection, or not one the
	// rule follows whoever owns it.
	env.visitSockets(snap, quietBeacon, func(s *collector.Socket) bool {
		if s.Proto != collector.ProtoTCP || s.State != collector.StateEstablished {
			return true
		}
		ra, dir, ok := d.eligibleDst(snap, env, s)
		if !ok {
			return true
		}
		k, ok := d.keyFor(snap, env, s, ra)
		if !ok {
			return false
		}
		total := s.BytesAcked + s.BytesReceived
		cur, known := d.streams.Upsert(connIDOf(s), snap.Time)
		prev := *cur
		if !known || first || total < prev.bytes {
			*cur = beaconStream{bytes: total} // baseline
			return false
		}
		delta := total - prev.bytes
		burst := delta > 0 && !prev.active
		*cur = beaconStream{bytes: total, active: delta > 0}
		if !burst {
			return false
		}
		k.stream = ConnKey(s)
		st := d.keys.Touch(k, snap.Time, nil)
		st.dir = dir
		if s.PID > 0 {
			st.pid = s.PID
		}
		// The burst is stamped with the connection's last data, which the
		// kernel dates to the millisecond (tcp_info), not with the poll: a
		// heartbeat whose beats land on a poll would otherwise read 3, 4 and
		// 5 polls apart, the spread of a 25 % jitter, and need the
		// connections of one. Without that date (0, or older than the last
		// poll) it is the poll's time, known to a poll.
		ev := beaconEvent{t: snap.Time.UnixNano(), res: int32(min(poll.Milliseconds(), math.MaxInt32)), mult: 1}
		if idle := time.Duration(s.DataIdleMs) * time.Millisecond; idle > 0 && idle < poll {
			ev.t, ev.res = snap.Time.Add(-idle).UnixNano(), 0
		}
		st.events = insertEvent(st.events, ev, d.cfg.History)
		st.sizes = appendCapped(st.sizes, float32(delta), d.cfg.History)
		changed[k] = true
		return false
	})
}

func (d *beacon) alert(snap *collector.Snapshot, env *Env, k beaconKey, st *beaconState, r beaconResult) Alert {
	first, last := st.events[0].time(), st.events[len(st.events)-1].time()
	what, entity := fmt.Sprintf("connects to %s/%s every %.1fs (%d connections", k.dst, k.proto, r.period, len(st.events)), k.proc+"|"+k.proto+"|"+k.dst.String()
	series := "connections"
	if k.stream != "" {
		what = fmt.Sprintf("sends data to %s/%s every %.1fs over one connection (%d bursts", k.dst, k.proto, r.period, len(st.events))
		entity += "|stream"
		series = "bursts on one connection"
	}
	return Alert{
		ThreatType: ThreatBeaconing, Technique: "T1071", Severity: SeverityMedium,
		Start: first, End: snap.Time,
		Message:   fmt.Sprintf("beaconing: %s %s, jitter %.0f%%, score %.2f)", k.proc, what, r.jitter*100, r.score),
		Transport: k.proto, Direction: st.dir, Dest: k.dst,
		Process: ProcessContext(snap, env, st.pid),
		Evidence: map[string]any{
			"series": series, "connections": len(st.events), "connections_needed": r.need,
			"owner_readable": !strings.HasPrefix(k.proc, "uid:") && k.proc != UnknownOwner,
			"period_seconds": round3(r.period), "min_interval_seconds": round3(r.minD), "max_interval_seconds": round3(r.maxD),
			"jitter": round3(r.jitter), "max_jitter": d.cfg.MaxJitter, "resolution_seconds": round3(r.res),
			"outliers": r.outliers, "score": round3(r.score), "min_score": d.cfg.MinScore, "skew_score": round3(r.skew),
			"dispersion_score": round3(r.mad), "count_score": round3(r.count), "size_score": r.sizeScore,
			"symmetry": round3(r.symmetry), "window_seconds": round3(last.Sub(first).Seconds()),
		},
		Recommendation: Recommendation(ThreatBeaconing),
		Entity:         entity,
	}
}

func appendCapped(s []float32, v float32, n int) []float32 {
	s = append(s, v)
	if len(s) > n {
		s = append(s[:0], s[len(s)-n:]...)
	}
	return s
}

// insertEvent adds e in time order, merging it into an event at the same
// time, and keeps at most n events (the newest).
func insertEvent(ev []beaconEvent, e beaconEvent, n int) []beaconEvent {
	i := sort.Search(len(ev), func(i int) bool { return ev[i].t >= e.t })
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(ev) {
			if dt := ev[j].t - e.t; dt < int64(beaconEpsilon) && dt > -int64(beaconEpsilon) {
				ev[j].mult += e.mult
				ev[j].res = max(ev[j].res, e.res)
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
