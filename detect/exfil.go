package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// High-volume exfiltration (T1048): bytes this host sent (tcp_info
// bytes_acked) summed over a sliding window per (process, external
// destination), and, so that uploads split over rotating addresses (object
// storage, CDNs) or over many short connections and processes add up, per
// process across destinations, per process group and per user. Bytes are
// counted as deltas per connection between polls, including the final
// counters of connections that closed between polls (destroy events); the
// last counters per connection are remembered so nothing is counted twice.
// Connections already open at the sensor's first snapshot count only from
// then on. By default only connections this host opened count (a server
// answering downloads is not exfiltration).
//
// Staged exfiltration: a user of this host sends a large amount to one
// internal host (a staging host), then uploads to external destinations;
// the two are reported as one alert naming both. A large transfer to an
// internal host alone (a nightly backup) raises nothing.

// RuleExfiltration is the registry name (and rule id) of the exfiltration detector.
const RuleExfiltration = "exfiltration"

// RuleStagedExfiltration is the rule id of staged exfiltration (an internal
// staging transfer followed by an external upload).
const RuleStagedExfiltration = "staged_exfiltration"

// Exfiltration scopes, narrowest first after (process, destination).
const (
	ScopeProcess = "process" // one process name (or owner) across destinations
	ScopeGroup   = "group"   // one process group (parent and uid when unknown)
	ScopeUser    = "user"    // one uid across processes and destinations
)

// ExfilConfig configures the exfiltration detector.
type ExfilConfig struct {
	// ThresholdBytes sent within Window that alert, per (process,
	// destination) and per each of Scopes.
	ThresholdBytes uint64 `yaml:"threshold_bytes"`
	// Window is the sliding window (in buckets of Window/10).
	Window time.Duration `yaml:"window"`
	// IncludeIngress also counts bytes sent on connections peers opened.
	IncludeIngress bool `yaml:"include_ingress"`
	// Scopes the upload total is also summed over, across destinations:
	// process, group, user.
	Scopes []string `yaml:"scopes"`
	// StagingBytes sent to one internal host within Window make it a
	// staging host for the sending user.
	StagingBytes uint64 `yaml:"staging_bytes"`
	// StagedUploadBytes uploaded to external destinations by that user after
	// the staging transfer raise staged_exfiltration; 0 turns it off.
	StagedUploadBytes uint64 `yaml:"staged_upload_bytes"`
	// StagingWindow is how long a staging transfer is remembered.
	StagingWindow time.Duration `yaml:"staging_window"`
	// MaxConnections caps the per-connection counter memory.
	MaxConnections int `yaml:"max_connections"`
	// MaxKeys caps the sums (per destination, scope and staging host).
	MaxKeys int `yaml:"max_keys"`
}

func defaultExfilConfig() *ExfilConfig {
	return &ExfilConfig{
		ThresholdBytes: 50_000_000, Window: 10 * time.Minute,
		Scopes:       []string{ScopeProcess, ScopeGroup, ScopeUser},
		StagingBytes: 50_000_000, StagedUploadBytes: 10_000_000, StagingWindow: time.Hour,
		MaxConnections: 200000, MaxKeys: 20000,
	}
}

func init() { registerConfig(RuleExfiltration, defaultExfilConfig, newExfil) }

// exfil key levels.
const (
	lvDest    = iota // (owner, destination)
	lvProcess        // owner across destinations
	lvGroup          // process group
	lvUser           // uid
	lvStage          // (uid, internal host): staging transfers
)

var levelNames = map[int]string{lvDest: "destination", lvProcess: ScopeProcess, lvGroup: ScopeGroup, lvUser: ScopeUser}

type exfilKey struct {
	level int
	name  string
	dst   netip.Addr // lvDest and lvStage only
}

type exfilBucket struct {
	start time.Time
	bytes uint64
}

// maxExfilDests caps the destinations remembered per sum (evidence only).
const maxExfilDests = 16

type exfilState struct {
	buckets []exfilBucket
	pid     int32
	port    uint16
	last    netip.Addr
	conns   int
	dsts    map[netip.Addr]uint64 // up to maxExfilDests, for evidence
	ndst    int                   // distinct destinations, counting those past the cap
	sock    collector.Socket      // the last socket counted (owner evidence)
	// wider are the keys of the wider levels the last delta also went to.
	wider []exfilKey
}

// connCounters are the counters of one connection counted so far.
type connCounters struct{ acked uint64 }

// staging is a user's last staging transfer and what they uploaded since.
type staging struct {
	host      netip.Addr
	bytes     uint64
	at        time.Time
	pid       int32
	proc      string
	uploaded  uint64
	dsts      map[netip.Addr]uint64
	ndst      int
	pidUp     int32
	procUp    string
	lastDst   netip.AddrPort
	alerted   bool
	alertedAt time.Time
	user      string // user key
	uid       uint32
}

type exfil struct {
	cfg     ExfilConfig
	bucket  time.Duration
	scopes  map[int]bool
	last    *Window[connID, connCounters] // connection -> counters counted so far
	sums    *Window[exfilKey, exfilState]
	staged  *Window[string, staging] // user key -> staging transfer
	covered *Window[exfilKey, struct{}]
	started bool
	prev    time.Time
	// evicted is last's evictions accounted for and droppedAt the latest
	// poll that evicted or expired entries: a closed connection first seen
	// before then may have had its counters dropped.
	evicted   uint64
	droppedAt time.Time
	// ents holds, by index in the poll's sockets, the entry of last each
	// open socket has (nil: none), and prevEnts the previous poll's, for
	// snapshot prevSeq: a socket the collector lists unchanged
	// (Snapshot.SameAs) finds its entry without hashing its 48-byte key,
	// which on a proxy's table was most of this detector's time.
	ents, prevEnts []*windowEntry[connID, connCounters]
	prevSeq        uint64
}

// carryFrom returns snap.SameAs when it links snap to the previous poll's
// sockets (so prevEnts applies), else nil, and sizes ents for snap (empty:
// no handles are kept). Off, like the quiet marks, in an engine told to
// examine every socket.
func (d *exfil) carryFrom(snap *collector.Snapshot, env *Env) []int32 {
	d.ents = d.ents[:0]
	if snap.Seq == 0 || env.quiet.off {
		return nil
	}
	n := len(snap.Sockets)
	var same []int32
	if snap.Seq == d.prevSeq+1 && len(snap.SameAs) == n {
		same = snap.SameAs
	}
	d.prevSeq = snap.Seq
	d.ents = slices.Grow(d.ents, n)[:n]
	clear(d.ents)
	return same
}

// mayHaveDropped reports whether last may have dropped, since t, the
// counters of a connection first seen at t.
func (d *exfil) mayHaveDropped(t time.Time) bool {
	return d.last.Evicted() != d.evicted || !d.droppedAt.Before(t)
}

func newExfil(c ExfilConfig) (*exfil, error) {
	if c.ThresholdBytes == 0 || c.Window < 10*time.Second {
		return nil, fmt.Errorf("threshold_bytes must be positive and window at least 10s")
	}
	scopes := map[int]bool{}
	for _, s := range c.Scopes {
		switch s {
		case ScopeProcess:
			scopes[lvProcess] = true
		case ScopeGroup:
			scopes[lvGroup] = true
		case ScopeUser:
			scopes[lvUser] = true
		default:
			return nil, fmt.Errorf("scopes: %q is not one of process, group, user", s)
		}
	}
	if c.StagedUploadBytes > 0 && (c.StagingBytes == 0 || c.StagingWindow < c.Window) {
		return nil, fmt.Errorf("staging_bytes must be positive and staging_window at least window when staged_upload_bytes is set")
	}
	return &exfil{
		cfg: c, bucket: c.Window / 10, scopes: scopes,
		// Open connections are touched every poll; the TTL only drops
		// connections that vanished without a Closed entry.
		last:    NewWindow[connID, connCounters](c.MaxConnections, c.Window),
		sums:    NewWindow[exfilKey, exfilState](c.MaxKeys, c.Window),
		staged:  NewWindow[string, staging](c.MaxKeys, c.StagingWindow),
		covered: NewWindow[exfilKey, struct{}](c.MaxKeys, c.Window),
	}, nil
}

func (d *exfil) Name() string { return RuleExfiltration }

func (d *exfil) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RuleExfiltration, Name: "High-volume upload to external destinations", ThreatType: ThreatExfil,
		Technique: "T1048", Severity: SeverityHigh,
		Description: "Bytes sent (tcp_info bytes_acked deltas, incl. connections that closed between polls) over a sliding window per process and external destination, and across destinations per process, process group and user (rotating addresses, many short connections); one alert per upload, at the narrowest scope that crossed.",
		Thresholds: map[string]any{"threshold_bytes": d.cfg.ThresholdBytes, "window": d.cfg.Window.String(),
			"include_ingress": d.cfg.IncludeIngress, "scopes": d.cfg.Scopes},
		Sees: Visibility{
			Privileged:   "Every connection's sent bytes with its process, process group and user, also a burst that opens and closes between polls (its destroy event carries the counters; its owner only if a poll saw it open).",
			Unprivileged: "The same bytes; another user's connection is summed by its uid (process and group scopes have no process for it), and a connection shorter than a poll has no uid, so it counts per destination only.",
		},
	}, {
		ID: RuleStagedExfiltration, Name: "Staged exfiltration: internal staging host, then external upload", ThreatType: ThreatExfil,
		Technique: "T1048", Severity: SeverityHigh,
		Description: "A user sends a large amount to one internal host (staging), then uploads to external destinations within the staging window; one alert names the staging host and the upload destinations. A large internal transfer alone (a backup) raises nothing.",
		Thresholds: map[string]any{"staging_bytes": d.cfg.StagingBytes, "staged_upload_bytes": d.cfg.StagedUploadBytes,
			"staging_window": d.cfg.StagingWindow.String()},
		Sees: Visibility{
			Privileged:   "Both transfers with their processes, tied by the user that made them.",
			Unprivileged: "Both transfers by the sockets' uid (sock_diag reports it for any user); a transfer that opens and closes between polls has no uid and cannot be tied.",
		},
	}}
}

// groupKey names the process group of pid: its process group id when the
// collector read it, else its parent and uid; "" when the process is unknown.
func groupKey(snap *collector.Snapshot, env *Env, pid int32) string {
	p := env.Process(snap, pid)
	if p == nil {
		return ""
	}
	if p.PGID > 0 {
		return "pgid:" + strconv.Itoa(int(p.PGID))
	}
	return "ppid:" + strconv.Itoa(int(p.PPID)) + "/uid:" + strconv.FormatUint(uint64(p.UID), 10)
}

// userKey names the user of s ("uid:N"), "" when unknown.
func userKey(snap *collector.Snapshot, env *Env, s *collector.Socket) string {
	if uid, ok := socketUID(snap, env, s); ok {
		return "uid:" + strconv.FormatUint(uint64(uid), 10)
	}
	return ""
}

// socketUID is the uid of s's process, else the socket's own when known.
func socketUID(snap *collector.Snapshot, env *Env, s *collector.Socket) (uint32, bool) {
	if p := env.Process(snap, s.PID); p != nil {
		return p.UID, true
	}
	return s.UID, uidKnown(s)
}

func (d *exfil) add(k exfilKey, now time.Time, delta uint64, s *collector.Socket, wider []exfilKey) {
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
	ra := s.Remote.Addr().Unmap()
	if st.dsts == nil {
		st.dsts = map[netip.Addr]uint64{}
	}
	if _, ok := st.dsts[ra]; ok {
		st.dsts[ra] += delta
	} else {
		st.ndst++
		if len(st.dsts) < maxExfilDests {
			st.dsts[ra] = delta
		}
	}
	st.port, st.last = s.Remote.Port(), ra
	st.conns++
	st.sock = *s
	st.wider = wider
}

// total prunes st's buckets to the window and returns their sum.
func (d *exfil) total(st *exfilState, now time.Time) uint64 {
	cut := now.Add(-d.cfg.Window)
	i := 0
	for i < len(st.buckets) && !st.buckets[i].start.Add(d.bucket).After(cut) {
		i++
	}
	st.buckets = append(st.buckets[:0], st.buckets[i:]...)
	var t uint64
	for _, b := range st.buckets {
		t += b.bytes
	}
	return t
}

func (d *exfil) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	first := !d.started
	d.started = true
	self := map[netip.Addr]bool{}
	for _, a := range snap.HostIPs {
		self[a.Unmap()] = true
	}
	touched := map[exfilKey]bool{}
	stagedNow := map[string]bool{}
	type pending struct {
		s     *collector.Socket
		delta uint64
	}
	var external []pending
	same := d.carryFrom(snap, env)
	// count returns true when it ignored s for reasons that hold as long as
	// s is listed unchanged (quiet.go). i is s's index in snap.Sockets, -1
	// for a closed socket.
	count := func(i int, s *collector.Socket, closed bool) (quiet bool) {
		if s.Proto != collector.ProtoTCP || !s.Remote.IsValid() || IsListener(s) {
			return true
		}
		// Bytes to a loopback peer count nowhere (neither upload nor
		// staging) and ingress bytes only with IncludeIngress: such
		// connections need no per-connection state, which on a proxy or
		// load balancer is most of them.
		if s.Remote.Addr().Unmap().IsLoopback() || (!d.cfg.IncludeIngress && Direction(snap, env, s) != DirEgress) {
			return true
		}
		if i >= 0 && same != nil && same[i] >= 0 && int(same[i]) < len(d.prevEnts) {
			// Listed unchanged since the last poll, which left the entry's
			// counters at the socket's (or kept them): nothing moved, the
			// entry is only touched, without a look-up.
			if e := d.prevEnts[same[i]]; e != nil && d.last.touchEntry(e, now) {
				d.ents[i] = e
				return false
			}
		}
		// Only connections that moved bytes are remembered: one with none
		// yet has nothing to subtract (its first bytes all count), and on a
		// busy host most connections are idle.
		id := connIDOf(s)
		var e *windowEntry[connID, connCounters] // the entry (nil when none is kept)
		var known bool
		switch {
		case closed:
			e, known = d.last.getEntry(id)
		case s.BytesAcked == 0:
			if e, known = d.last.getEntry(id); known {
				d.last.touchEntry(e, now) // a TIME_WAIT row keeps its counters
			} else {
				// No counters and none remembered: nothing to do until the
				// socket changes (only its own sighting creates its entry).
				quiet = true
			}
		default:
			e, known = d.last.upsertEntry(id, now)
		}
		var cur *connCounters
		if e != nil {
			cur = &e.val
			if i >= 0 && i < len(d.ents) {
				d.ents[i] = e
			}
		}
		var prev connCounters
		if known {
			prev = *cur
		}
		var delta uint64
		keep := false
		switch {
		case known && s.BytesAcked >= prev.acked:
			delta = s.BytesAcked - prev.acked
		case known && (s.BytesAcked == 0 || s.Cookie != 0):
			// A TIME_WAIT row has no counters: keep the last ones.
			keep = true
		case known: // counters went down on a tuple key: a reused tuple
			delta = s.BytesAcked
		case first && !closed:
			delta = 0 // open before the sensor started: baseline
		case closed && !s.FirstSeen.IsZero() && s.FirstSeen.Before(d.prev) && d.mayHaveDropped(s.FirstSeen):
			delta = 0 // listed at an earlier poll, and its counters may have been dropped since
		default:
			delta = s.BytesAcked // opened (and maybe closed) since the last poll
		}
		switch {
		case closed:
			d.last.Delete(id)
		case keep, cur == nil:
		default:
			*cur = connCounters{acked: s.BytesAcked}
		}
		if delta == 0 {
			return quiet
		}
		ra := s.Remote.Addr().Unmap()
		if !env.IsExternal(ra) {
			user := userKey(snap, env, s)
			if d.cfg.StagedUploadBytes > 0 && user != "" && !ra.IsLoopback() && !self[ra] && !ra.IsLinkLocalUnicast() {
				d.stage(snap, env, s, user, OwnerKey(snap, env, s), ra, delta, now)
			}
			return false
		}
		// External bytes count after this poll's internal ones: a staging
		// copy that ends in the same poll as the upload starts is before it.
		external = append(external, pending{s, delta})
		return false
	}
	upload := func(s *collector.Socket, delta uint64) {
		ra := s.Remote.Addr().Unmap()
		owner := OwnerKey(snap, env, s)
		user := userKey(snap, env, s)
		var wider []exfilKey
		if d.scopes[lvProcess] && s.PID > 0 { // an unowned socket's owner is its uid: the user scope
			wider = append(wider, exfilKey{level: lvProcess, name: owner})
		}
		if g := groupKey(snap, env, s.PID); g != "" && d.scopes[lvGroup] {
			wider = append(wider, exfilKey{level: lvGroup, name: g})
		}
		if user != "" && d.scopes[lvUser] {
			wider = append(wider, exfilKey{level: lvUser, name: user})
		}
		dk := exfilKey{level: lvDest, name: owner, dst: ra}
		d.add(dk, now, delta, s, wider)
		touched[dk] = true
		for i, k := range wider {
			d.add(k, now, delta, s, wider[i+1:])
			touched[k] = true
		}
		if user != "" {
			if st, ok := d.staged.Get(user); ok && !st.alerted {
				st.uploaded += delta
				if _, seen := st.dsts[ra]; seen {
					st.dsts[ra] += delta
				} else {
					st.ndst++
					if len(st.dsts) < maxExfilDests {
						st.dsts[ra] = delta
					}
				}
				if s.PID > 0 {
					st.pidUp = s.PID
				}
				st.procUp, st.lastDst = owner, netip.AddrPortFrom(ra, s.Remote.Port())
				stagedNow[user] = true
			}
		}
	}
	env.visitSocketsAt(snap, quietExfil, func(i int, s *collector.Socket) bool { return count(i, s, false) })
	for i := range snap.Closed {
		count(-1, &snap.Closed[i], true)
	}
	d.prevEnts, d.ents = d.ents, d.prevEnts[:0]
	for _, p := range external {
		upload(p.s, p.delta)
	}
	if d.last.Expire(now) > 0 || d.last.Evicted() != d.evicted {
		d.evicted, d.droppedAt = d.last.Evicted(), now
	}
	d.sums.Expire(now)
	d.staged.Expire(now)
	d.covered.Expire(now)
	d.prev = now

	var out []Alert
	// Staged exfiltration first: it stands for the user's plain alerts.
	users := make([]string, 0, len(stagedNow))
	for u := range stagedNow {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		st, ok := d.staged.Get(u)
		if !ok || st.uploaded < d.cfg.StagedUploadBytes {
			continue
		}
		st.alerted, st.alertedAt = true, now
		out = append(out, d.stagedAlert(snap, env, st, now))
	}

	keys := make([]exfilKey, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.level != b.level {
			return a.level < b.level
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.dst.Less(b.dst)
	})
	for _, k := range keys {
		st, ok := d.sums.Get(k)
		if !ok {
			continue
		}
		total := d.total(st, now)
		if total < d.cfg.ThresholdBytes {
			continue
		}
		// One upload, one alert: a sum that crossed marks the wider sums it
		// feeds as covered for the window, so they do not alert for the
		// same bytes; a staged alert covers every sum of its user.
		_, covered := d.covered.Get(k)
		for _, w := range st.wider {
			d.covered.Put(w, struct{}{}, now)
			if w.level == lvUser && d.stagedRecently(w.name, now) {
				covered = true
			}
		}
		if k.level == lvUser && d.stagedRecently(k.name, now) {
			covered = true
		}
		if covered {
			continue
		}
		out = append(out, d.plainAlert(snap, env, k, st, total, now))
	}
	return out
}

// stagedRecently reports whether user raised staged_exfiltration within the
// window.
func (d *exfil) stagedRecently(user string, now time.Time) bool {
	st, ok := d.staged.Get(user)
	return ok && st.alerted && now.Sub(st.alertedAt) < d.cfg.Window
}

// stage adds delta sent to internal host ra by user; crossing StagingBytes
// makes ra the user's staging host (the latest one wins).
func (d *exfil) stage(snap *collector.Snapshot, env *Env, s *collector.Socket, user, owner string, ra netip.Addr, delta uint64, now time.Time) {
	k := exfilKey{level: lvStage, name: user, dst: ra}
	d.add(k, now, delta, s, nil)
	sum, _ := d.sums.Get(k)
	total := d.total(sum, now)
	if total < d.cfg.StagingBytes {
		return
	}
	st := d.staged.Touch(user, now, nil)
	if st.alerted && st.host == ra && now.Sub(st.alertedAt) < d.cfg.StagingWindow {
		return // the same staging, already reported
	}
	if st.host != ra || st.dsts == nil || st.alerted {
		uid, _ := socketUID(snap, env, s)
		*st = staging{host: ra, dsts: map[netip.Addr]uint64{}, user: user, uid: uid}
	}
	st.bytes, st.at, st.proc = total, now, owner
	if s.PID > 0 {
		st.pid = s.PID
	}
}

func (d *exfil) stagedAlert(snap *collector.Snapshot, env *Env, st *staging, now time.Time) Alert {
	dsts := topDests(st.dsts)
	ev := map[string]any{
		"staging_host": st.host.String(), "staging_bytes": st.bytes, "staging_process": st.proc,
		"staging_time":   st.at.UTC().Format(time.RFC3339),
		"uploaded_bytes": st.uploaded, "upload_destinations": dsts, "distinct_destinations": st.ndst,
		"upload_process": st.procUp,
		"threshold":      d.cfg.StagedUploadBytes, "staging_threshold": d.cfg.StagingBytes,
		"window_seconds": d.cfg.StagingWindow.Seconds(),
		"user":           st.user,
	}
	pid := st.pidUp
	if pid == 0 {
		pid = st.pid
	}
	who := fmt.Sprintf("uid %d", st.uid)
	if u := userName(snap, st.uid); u != "" {
		who = fmt.Sprintf("user %s (uid %d)", u, st.uid)
		ev["owner_user"] = u
	}
	ev["owner_uid"] = st.uid
	a := Alert{
		RuleID: RuleStagedExfiltration, ThreatType: ThreatExfil, Technique: "T1048", Severity: SeverityHigh,
		Start: st.at, End: now,
		Message: fmt.Sprintf("staged exfiltration: %s sent %.1f MB to internal host %s (%s), then %.1f MB to %d external destination(s) (%s)",
			who, float64(st.bytes)/1e6, st.host, st.proc, float64(st.uploaded)/1e6, st.ndst, st.procUp),
		Transport: "tcp", Direction: DirEgress, Dest: st.lastDst,
		Process:        ProcessContext(snap, env, pid),
		Evidence:       ev,
		Recommendation: Recommendation(ThreatExfil),
		Entity:         st.user + "|" + st.host.String(),
	}
	if len(snap.HostIPs) > 0 {
		a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
	}
	return a
}

// topDests lists destinations by bytes, most first.
func topDests(m map[netip.Addr]uint64) []string {
	type db struct {
		a netip.Addr
		b uint64
	}
	var l []db
	for a, b := range m {
		l = append(l, db{a, b})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].b != l[j].b {
			return l[i].b > l[j].b
		}
		return l[i].a.Less(l[j].a)
	})
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, x.a.String())
	}
	return out
}

func (d *exfil) plainAlert(snap *collector.Snapshot, env *Env, k exfilKey, st *exfilState, total uint64, now time.Time) Alert {
	ev := map[string]any{
		"bytes_sent": total, "threshold": d.cfg.ThresholdBytes, "window_seconds": d.cfg.Window.Seconds(),
		"connection_updates": st.conns, "scope": levelNames[k.level],
	}
	var msg, entity string
	dest := netip.AddrPortFrom(st.last, st.port)
	if k.level == lvDest {
		msg = fmt.Sprintf("high-volume upload: %s sent %.1f MB to %s within %s (threshold %.1f MB)",
			k.name, float64(total)/1e6, k.dst, d.cfg.Window, float64(d.cfg.ThresholdBytes)/1e6)
		entity = k.name + "|" + k.dst.String()
		dest = netip.AddrPortFrom(k.dst, st.port)
	} else {
		ev["destinations"] = topDests(st.dsts)
		ev["distinct_destinations"] = st.ndst
		ev[levelNames[k.level]] = k.name
		msg = fmt.Sprintf("high-volume upload: %s %s sent %.1f MB to %d external destinations within %s (threshold %.1f MB)",
			levelNames[k.level], k.name, float64(total)/1e6, st.ndst, d.cfg.Window, float64(d.cfg.ThresholdBytes)/1e6)
		entity = levelNames[k.level] + ":" + k.name
	}
	if st.pid == 0 {
		OwnerEvidence(snap, &st.sock, ev)
	}
	a := Alert{
		ThreatType: ThreatExfil, Technique: "T1048", Severity: SeverityHigh,
		Start: st.buckets[0].start, End: now,
		Message:   msg,
		Transport: "tcp", Direction: DirEgress, Dest: dest,
		Process:        ProcessContext(snap, env, st.pid),
		Evidence:       ev,
		Recommendation: Recommendation(ThreatExfil), Entity: entity,
	}
	if len(snap.HostIPs) > 0 {
		a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
	}
	return a
}
