package detect

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
)

// DefaultCooldown is how long the same (rule, entity) stays quiet after an
// alert.
const DefaultCooldown = 10 * time.Minute

// Bounds of the engine's own state.
const (
	// MaxCooldownKeys caps the (rule, entity) cooldown table; the least
	// recently seen key is dropped first (and may then alert early).
	MaxCooldownKeys = 50000
	// MaxProcessCache caps the recent-process cache behind Env.Process.
	MaxProcessCache = 16384
	// ProcessCacheTTL is how long an exited process stays in that cache.
	ProcessCacheTTL = 5 * time.Minute
)

// DefaultHomeNet returns the default internal networks: RFC 1918, the
// shared address space 100.64.0.0/10 (RFC 6598: carrier-grade NAT, and the
// addresses Tailscale gives its nodes) and the IPv6 unique-local range.
func DefaultHomeNet() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// Config configures the Engine.
type Config struct {
	// Cooldown per (rule, entity); 0 means DefaultCooldown, negative is an
	// error.
	Cooldown time.Duration
	// Disabled names detectors not to run.
	Disabled []string
	// HomeNet are the internal networks; nil means DefaultHomeNet.
	HomeNet []netip.Prefix
	// Detectors holds per-detector configs as returned by the factory's
	// DefaultConfig (then decoded from the user's section); a detector with no
	// entry runs with its defaults.
	Detectors map[string]any
	// Exceptions silence matching alerts (nil: none).
	Exceptions *Exceptions
}

// DetectorStats are one detector's counters since the engine started.
type DetectorStats struct {
	Name       string `json:"name"`
	Runs       uint64 `json:"runs"`
	Alerts     uint64 `json:"alerts"`     // alerts emitted
	Suppressed uint64 `json:"suppressed"` // candidate alerts held back by the cooldown
	Superseded uint64 `json:"superseded"` // candidate alerts dropped because another detector claimed the connection
	Excepted   uint64 `json:"excepted"`   // candidate alerts silenced by an exception
	Panics     uint64 `json:"panics"`     // Detect calls that panicked (their alerts dropped)
	LastPanic  string `json:"last_panic,omitempty"`
}

// EngineStats are the engine's counters.
type EngineStats struct {
	Detectors []DetectorStats `json:"detectors"`
	// CooldownEvicted counts (rule, entity) keys dropped by MaxCooldownKeys.
	CooldownEvicted uint64 `json:"cooldown_evicted"`
	// Exceptions counts alerts silenced per exception name.
	Exceptions map[string]uint64 `json:"exceptions,omitempty"`
}

// Starter is implemented by a detector with background work (such as the tor
// relay list refresh). NewEngine calls Start once, with a logger scoped to the
// detector, after every detector is built; such a detector also implements
// io.Closer, which Engine.Close calls. Start must not block.
type Starter interface {
	Start(log *zap.Logger)
}

type runner struct {
	det   Detector
	cfg   any // the config det was built from (Reconfigure compares it)
	stats DetectorStats
}

type coolKey struct{ rule, entity string }

type coolState struct {
	lastEmit   time.Time
	suppressed int // occurrences held back since lastEmit
}

// Engine runs the enabled detectors over each snapshot and applies the
// cooldown. Run, Rules and Stats are safe for concurrent use.
type Engine struct {
	log      *zap.Logger
	cooldown time.Duration

	factories []Factory
	reMu      sync.Mutex // serialises Reconfigure

	mu         sync.Mutex
	runners    []*runner // sorted by name
	env        Env
	cool       *Window[coolKey, coolState]
	warnedID   map[string]bool // techniques already warned about
	exceptions *Exceptions
	excepted   ExceptionCounts
}

// NewEngine builds every registered detector that is not disabled. An unknown
// detector name in Disabled or Detectors, or a detector that fails to build,
// is an error naming it.
func NewEngine(cfg Config, log *zap.Logger) (*Engine, error) {
	return newEngine(cfg, log, Factories())
}

// newEngine builds an engine over the given factories (tests pass their own).
func newEngine(cfg Config, log *zap.Logger, factories []Factory) (*Engine, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Cooldown < 0 {
		return nil, fmt.Errorf("detect: cooldown %v is negative", cfg.Cooldown)
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.HomeNet == nil {
		cfg.HomeNet = DefaultHomeNet()
	}
	known := map[string]bool{}
	for _, f := range factories {
		known[f.Name] = true
	}
	disabled := map[string]bool{}
	for _, name := range cfg.Disabled {
		if !known[name] {
			return nil, fmt.Errorf("detect: disabled: unknown detector %q", name)
		}
		disabled[name] = true
	}
	for name := range cfg.Detectors {
		if !known[name] {
			return nil, fmt.Errorf("detect: detectors: unknown detector %q", name)
		}
	}
	common := Common{HomeNet: append([]netip.Prefix(nil), cfg.HomeNet...)}
	e := &Engine{
		log:        log,
		cooldown:   cfg.Cooldown,
		factories:  factories,
		env:        Env{Common: common, procs: NewWindow[int32, *collector.Process](MaxProcessCache, ProcessCacheTTL)},
		cool:       NewWindow[coolKey, coolState](MaxCooldownKeys, cfg.Cooldown),
		warnedID:   map[string]bool{},
		exceptions: cfg.Exceptions,
	}
	for _, f := range factories {
		if disabled[f.Name] {
			continue
		}
		dc, ok := cfg.Detectors[f.Name]
		if !ok || dc == nil {
			dc = f.DefaultConfig()
		}
		det, err := f.New(dc, common)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("detect: detector %q: %w", f.Name, err)
		}
		e.runners = append(e.runners, &runner{det: det, cfg: dc, stats: DetectorStats{Name: f.Name}})
	}
	for _, r := range e.runners {
		if s, ok := r.det.(Starter); ok {
			s.Start(log.With(zap.String("detector", r.stats.Name)))
		}
	}
	return e, nil
}

// Detectors returns the names of the enabled detectors, sorted.
func (e *Engine) Detectors() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.runners))
	for i, r := range e.runners {
		out[i] = r.stats.Name
	}
	return out
}

// Run runs every enabled detector over snap and returns the alerts that pass
// the cooldown, in detector-name order. A panicking detector is logged and
// counted; the others still run.
func (e *Engine) Run(snap *collector.Snapshot) []Alert {
	if snap == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()

	// Processes of this snapshot feed the recent-process cache after the
	// detectors ran (Env.Process prefers the snapshot anyway).
	defer e.rememberProcesses(snap)
	e.env.listenSnap, e.env.claims = nil, nil // the listener index is rebuilt in place
	e.env.stdio, e.env.stdioSnap = nil, nil
	e.env.quiet.begin(snap, &e.env)

	type cand struct {
		r *runner
		a Alert
	}
	var cands []cand
	claims := map[string]map[string]struct{}{}
	for _, r := range e.runners {
		e.env.claims = nil
		alerts, ok := e.runOne(r, snap)
		if !ok {
			continue // a panicking detector's alerts and claims are dropped
		}
		for _, a := range alerts {
			cands = append(cands, cand{r, a})
		}
		for rule, keys := range e.env.claims {
			if claims[rule] == nil {
				claims[rule] = keys
				continue
			}
			for k := range keys {
				claims[rule][k] = struct{}{}
			}
		}
	}
	e.env.claims = claims
	var out []Alert
	for i := range cands {
		c := &cands[i]
		if c.a.RuleID == "" {
			c.a.RuleID = c.r.stats.Name
		}
		if e.env.claimed(&c.a) {
			c.r.stats.Superseded++
			continue
		}
		if name, ok := e.exceptions.Match(&c.a); ok {
			// Before the cooldown: a silenced alert does not start one.
			c.r.stats.Excepted++
			e.excepted.Add(name)
			continue
		}
		e.fill(&c.a, c.r, snap)
		if !e.admit(&c.a, snap.Time) {
			c.r.stats.Suppressed++
			continue
		}
		c.r.stats.Alerts++
		out = append(out, c.a)
	}
	e.env.claims = nil
	e.cool.Expire(snap.Time)
	e.env.quiet.end(snap)
	e.env.listenSnap = nil
	e.env.stdio, e.env.stdioSnap = nil, nil
	return out
}

// runOne calls Detect with panic isolation.
func (e *Engine) runOne(r *runner, snap *collector.Snapshot) (alerts []Alert, ok bool) {
	r.stats.Runs++
	defer func() {
		if p := recover(); p != nil {
			r.stats.Panics++
			r.stats.LastPanic = fmt.Sprint(p)
			e.log.Error("detector panicked; its alerts for this snapshot are dropped",
				zap.String("detector", r.stats.Name), zap.Any("panic", p),
				zap.ByteString("stack", debug.Stack()))
			alerts, ok = nil, false
		}
	}()
	return r.det.Detect(snap, &e.env), true
}

func (e *Engine) fill(a *Alert, r *runner, snap *collector.Snapshot) {
	if a.Time.IsZero() {
		a.Time = snap.Time
	}
	if a.Recommendation == "" {
		a.Recommendation = Recommendation(a.ThreatType)
	}
	if t, ok := Technique(a.Technique); (!ok || !t.Live()) && !e.warnedID[a.Technique] {
		e.warnedID[a.Technique] = true
		e.log.Warn("alert names a technique that is not live in the ATT&CK catalogue",
			zap.String("detector", r.stats.Name), zap.String("technique", a.Technique))
	}
	a.ID = newID()
}

// admit applies the cooldown: the first (rule, entity) alert passes with
// Count 1; later ones within the cooldown are held back and counted; the first
// one after the cooldown passes with Count = occurrences since the previous
// emitted alert, itself included.
func (e *Engine) admit(a *Alert, now time.Time) bool {
	k := coolKey{a.RuleID, a.Entity}
	evicted := e.cool.Evicted()
	st, ok := e.cool.Get(k)
	if ok && now.Sub(st.lastEmit) < e.cooldown {
		st.suppressed++
		e.cool.Touch(k, now, nil)
		return false
	}
	count := 1
	if ok {
		count += st.suppressed
	}
	e.cool.Put(k, coolState{lastEmit: now}, now)
	if e.cool.Evicted() != evicted {
		e.log.Debug("cooldown table full; dropped the least recently seen key", zap.Int("max", MaxCooldownKeys))
	}
	a.Count = count
	return true
}

func (e *Engine) rememberProcesses(snap *collector.Snapshot) {
	for pid, p := range snap.Processes {
		if p != nil {
			e.env.procs.Put(pid, p, snap.Time)
		}
	}
	e.env.procs.Expire(snap.Time)
}

// Rules lists the rules of the enabled detectors, sorted by rule id, with the
// recommendation filled in from the threat type where the detector left it
// empty.
func (e *Engine) Rules() []RuleInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []RuleInfo
	for _, r := range e.runners {
		for _, ri := range r.det.Rules() {
			if ri.Recommendation == "" {
				ri.Recommendation = Recommendation(ri.ThreatType)
			}
			out = append(out, ri)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats returns per-detector counters, in detector-name order.
func (e *Engine) Stats() EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := EngineStats{CooldownEvicted: e.cool.Evicted(), Exceptions: e.excepted.Snapshot()}
	for _, r := range e.runners {
		s.Detectors = append(s.Detectors, r.stats)
	}
	return s
}

// Close releases detectors that hold resources (those implementing
// io.Closer, such as a background list refresh).
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var first error
	for _, r := range e.runners {
		if c, ok := r.det.(io.Closer); ok {
			if err := c.Close(); err != nil && first == nil {
				first = fmt.Errorf("detect: closing %q: %w", r.stats.Name, err)
			}
		}
	}
	return first
}

// newID returns a random UUIDv4-format id from crypto/rand.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read does not fail on supported platforms (Go >= 1.24
		// crashes the program instead); keep a defined value regardless.
		panic(fmt.Sprintf("detect: crypto/rand: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// ConfigAs returns a detector's config as *T, for use in Factory.New: cfg is
// what DefaultConfig returned (possibly decoded from the user's section). A
// nil cfg or one of another type is an error naming the detector.
func ConfigAs[T any](detector string, cfg any) (*T, error) {
	c, ok := cfg.(*T)
	if !ok || c == nil {
		var zero T
		return nil, fmt.Errorf("detector %q: config is %T, want *%T", detector, cfg, zero)
	}
	return c, nil
}

// Claim records that the calling detector accounts for connection s in this
// snapshot: candidate alerts of the named rules whose Transport, Source and
// Dest equal s.Proto, s.Local and s.Remote are dropped by the engine (counted
// as superseded), whatever order the detectors ran in. Used so one connection
// is not alerted twice (the tor detector claims Tor connections from
// suspicious_port).
func (e *Env) Claim(s *collector.Socket, rules ...string) {
	if e.claims == nil {
		e.claims = map[string]map[string]struct{}{}
	}
	k := tupleKey(s.Proto.String(), s.Local, s.Remote)
	for _, r := range rules {
		m := e.claims[r]
		if m == nil {
			m = map[string]struct{}{}
			e.claims[r] = m
		}
		m[k] = struct{}{}
	}
}

func (e *Env) claimed(a *Alert) bool {
	m := e.claims[a.RuleID]
	if m == nil {
		return false
	}
	_, ok := m[tupleKey(a.Transport, a.Source, a.Dest)]
	return ok
}

func tupleKey(proto string, local, remote netip.AddrPort) string {
	var b [128]byte
	k := append(append(b[:0], proto...), '|')
	k = append(local.AppendTo(k), '|')
	return string(remote.AppendTo(k))
}
