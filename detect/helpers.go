package detect

// Shared helpers for detectors. The API below is stable; detectors in this
// package build on it.
//
// Process context:
//
//	ProcessContext(snap, env, pid) *ProcessInfo   // nil when pid unknown; includes ParentName
//	ProcessName(snap, env, pid) string            // "" when unknown
//	ProcessKey(snap, env, pid) string             // name, else "pid:N", else "unknown" (for entities)
//	Ancestors(snap, env, pid, max) []*collector.Process // parent first, bounded, cycle-safe
//
// Sockets and addresses:
//
//	IsListener(s) bool                  // TCP LISTEN, or UDP bound with no remote peer
//	Direction(snap, env, s) string      // DirIngress / DirEgress / DirInternal / DirUnknown
//	ConnKey(s) string                   // stable identity of a connection (cookie, else 5-tuple)
//	(*Env).IsExternal(a) bool           // routable and not in home_net / loopback / link-local
//	(*Env).Claim(s, rules...)           // drop other rules' alerts about this connection in this snapshot
//
// Ports:
//
//	PortSet, NewPortSet(ports...), ParsePorts([]string{"80", "6666-6669"}), (PortSet).Has, (PortSet).Sorted
//
// Bounded state, expired by snapshot time (never time.Now):
//
//	Window[K, V]: a map with an LRU size cap and a TTL on last touch:
//	    w := NewWindow[string, myState](10000, 10*time.Minute)
//	    st := w.Touch(key, snap.Time, func() myState { return myState{} }) // *myState, update in place
//	    w.Expire(snap.Time)
//	Distinct[T]: distinct items seen within a sliding window, capped:
//	    d := NewDistinct[netip.Addr](5*time.Minute, 1024)
//	    d.Add(ip, snap.Time); d.Prune(snap.Time); d.Len()
//
// Factories: ConfigAs[MyConfig](name, cfg) turns Factory.New's cfg into
// *MyConfig or an error naming the detector (engine.go). Recommendation(threatType)
// gives the response text (recommend.go); the engine fills Alert.Recommendation,
// ID, Count, RuleID (detector name) and Time (snap.Time) when left empty.
//
// Evidence conventions: figures under their own names ("distinct_hosts": 4),
// the threshold as "threshold" (or "<figure>_threshold"), the window as
// "window_seconds", lists sorted so output is deterministic.

import (
	"container/list"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Direction values (ECS network.direction, from the host's point of view).
const (
	DirIngress  = "ingress"  // the remote peer opened the connection to a local listener
	DirEgress   = "egress"   // this host opened the connection
	DirInternal = "internal" // both ends on this host (loopback)
	DirUnknown  = "unknown"  // no remote peer (a listener) or not decidable
)

// maxArgs caps the command line copied into an alert.
const maxArgs = 64

// ProcessContext returns the alert process context for pid (from the snapshot,
// else the engine's recent-process cache), with the parent's name; nil when
// the pid is unknown.
func ProcessContext(snap *collector.Snapshot, env *Env, pid int32) *ProcessInfo {
	p := env.Process(snap, pid)
	if p == nil {
		return nil
	}
	info := &ProcessInfo{
		PID:        p.PID,
		Name:       p.Name,
		Executable: p.Exe,
		User:       p.User,
		UID:        p.UID,
		PPID:       p.PPID,
	}
	if len(p.Cmdline) > 0 {
		n := min(len(p.Cmdline), maxArgs)
		info.Args = append([]string(nil), p.Cmdline[:n]...)
	}
	if parent := env.Process(snap, p.PPID); parent != nil && p.PPID != p.PID {
		info.ParentName = parent.Name
	}
	return info
}

// ProcessName returns the name of pid, or "" when unknown.
func ProcessName(snap *collector.Snapshot, env *Env, pid int32) string {
	if p := env.Process(snap, pid); p != nil {
		return p.Name
	}
	return ""
}

// ProcessKey names a process for alert entities: its name when known, else
// "pid:N" when a pid is known, else "unknown".
func ProcessKey(snap *collector.Snapshot, env *Env, pid int32) string {
	if n := ProcessName(snap, env, pid); n != "" {
		return n
	}
	if pid > 0 {
		return "pid:" + strconv.Itoa(int(pid))
	}
	return "unknown"
}

// Ancestors returns up to max ancestors of pid, parent first. It stops at an
// unknown pid, pid <= 1's parent, or a cycle.
func Ancestors(snap *collector.Snapshot, env *Env, pid int32, max int) []*collector.Process {
	var out []*collector.Process
	p := env.Process(snap, pid)
	seen := map[int32]bool{pid: true}
	for p != nil && len(out) < max {
		if p.PPID <= 0 || seen[p.PPID] {
			break
		}
		seen[p.PPID] = true
		parent := env.Process(snap, p.PPID)
		if parent == nil {
			break
		}
		out = append(out, parent)
		p = parent
	}
	return out
}

// IsListener reports whether s is a listening socket: TCP in LISTEN, or UDP
// with no remote peer.
func IsListener(s *collector.Socket) bool {
	if s.Proto == "udp" {
		return !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || s.Remote.Port() == 0
	}
	return s.State == "LISTEN"
}

// ConnKey identifies a connection across polls and destroy events: the kernel
// socket cookie when known, else the protocol and both endpoints.
func ConnKey(s *collector.Socket) string {
	if s.Cookie != 0 {
		return "c:" + strconv.FormatUint(s.Cookie, 16)
	}
	return s.Proto + "|" + s.Local.String() + "|" + s.Remote.String()
}

// IsExternal reports whether a is a routable peer outside home_net: valid,
// not unspecified, multicast, loopback or link-local, and not internal.
func (e *Env) IsExternal(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	return !e.IsInternal(a)
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
	k := tupleKey(s.Proto, s.Local, s.Remote)
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
	return proto + "|" + local.String() + "|" + remote.String()
}

type listenKey struct {
	proto string
	port  uint16
}

// listenerIndex maps (proto, port) to the local addresses listening on it.
type listenerIndex map[listenKey][]netip.Addr

func buildListeners(snap *collector.Snapshot) listenerIndex {
	idx := listenerIndex{}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		if !IsListener(s) || !s.Local.IsValid() {
			continue
		}
		k := listenKey{s.Proto, s.Local.Port()}
		idx[k] = append(idx[k], s.Local.Addr().Unmap())
	}
	return idx
}

func (idx listenerIndex) accepts(s *collector.Socket) bool {
	for _, a := range idx[listenKey{s.Proto, s.Local.Port()}] {
		if a.IsUnspecified() || a == s.Local.Addr().Unmap() {
			return true
		}
	}
	return false
}

// Direction tells who opened s, from this host's point of view: ingress when
// the local endpoint is a port this host listens on, egress otherwise,
// internal when the peer is loopback, unknown for a listener.
func Direction(snap *collector.Snapshot, env *Env, s *collector.Socket) string {
	if !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || IsListener(s) {
		return DirUnknown
	}
	if s.Remote.Addr().Unmap().IsLoopback() {
		return DirInternal
	}
	if env.listenersFor(snap).accepts(s) {
		return DirIngress
	}
	return DirEgress
}

// PortSet is a set of ports.
type PortSet map[uint16]struct{}

// NewPortSet returns a set holding ports.
func NewPortSet(ports ...uint16) PortSet {
	s := make(PortSet, len(ports))
	for _, p := range ports {
		s[p] = struct{}{}
	}
	return s
}

// maxPortSpan bounds how many ports one ParsePorts call may expand to.
const maxPortSpan = 65536

// ParsePorts parses port specs: "80" or an inclusive range "6666-6669".
// Port 0 and reversed ranges are errors naming the spec.
func ParsePorts(specs []string) (PortSet, error) {
	s := PortSet{}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		lo, hi, isRange := strings.Cut(spec, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", spec, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("port range %q: %w", spec, err)
			}
			if b < a {
				return nil, fmt.Errorf("port range %q: end before start", spec)
			}
		}
		for p := int(a); p <= int(b) && len(s) < maxPortSpan; p++ {
			s[uint16(p)] = struct{}{}
		}
	}
	return s, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("not a port number in 1-65535")
	}
	return uint16(n), nil
}

// Has reports whether p is in the set.
func (s PortSet) Has(p uint16) bool {
	_, ok := s[p]
	return ok
}

// Sorted returns the ports in ascending order.
func (s PortSet) Sorted() []uint16 {
	out := make([]uint16, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// DefaultWindowKeys is the size cap NewWindow uses when given max <= 0.
const DefaultWindowKeys = 10000

// Window is a map from K to V bounded in size (least recently touched key
// evicted first) and in time (keys not touched for ttl are dropped by Expire).
// Times are snapshot times. Not safe for concurrent use.
type Window[K comparable, V any] struct {
	ttl     time.Duration
	max     int
	items   map[K]*list.Element
	order   *list.List // front: most recently touched
	evicted uint64
}

type windowEntry[K comparable, V any] struct {
	key         K
	val         V
	first, last time.Time
}

// NewWindow returns a Window holding at most max keys (DefaultWindowKeys when
// max <= 0); ttl <= 0 means keys expire only by the size cap.
func NewWindow[K comparable, V any](max int, ttl time.Duration) *Window[K, V] {
	if max <= 0 {
		max = DefaultWindowKeys
	}
	return &Window[K, V]{ttl: ttl, max: max, items: map[K]*list.Element{}, order: list.New()}
}

// Touch returns a pointer to k's value, creating it with init (zero value when
// init is nil) when absent, and marks k touched at now. The pointer stays
// valid until k is deleted, expired or evicted.
func (w *Window[K, V]) Touch(k K, now time.Time, init func() V) *V {
	if el, ok := w.items[k]; ok {
		e := el.Value.(*windowEntry[K, V])
		if now.After(e.last) {
			e.last = now
		}
		w.order.MoveToFront(el)
		return &e.val
	}
	e := &windowEntry[K, V]{key: k, first: now, last: now}
	if init != nil {
		e.val = init()
	}
	w.items[k] = w.order.PushFront(e)
	for len(w.items) > w.max {
		w.removeElement(w.order.Back())
		w.evicted++
	}
	return &e.val
}

// Put sets k's value and marks it touched at now.
func (w *Window[K, V]) Put(k K, v V, now time.Time) {
	*w.Touch(k, now, nil) = v
}

// Get returns a pointer to k's value without touching it.
func (w *Window[K, V]) Get(k K) (*V, bool) {
	el, ok := w.items[k]
	if !ok {
		return nil, false
	}
	return &el.Value.(*windowEntry[K, V]).val, true
}

// Seen returns when k was first and last touched.
func (w *Window[K, V]) Seen(k K) (first, last time.Time, ok bool) {
	el, ok := w.items[k]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	e := el.Value.(*windowEntry[K, V])
	return e.first, e.last, true
}

// Delete removes k.
func (w *Window[K, V]) Delete(k K) {
	if el, ok := w.items[k]; ok {
		w.removeElement(el)
	}
}

// Expire drops keys last touched more than ttl before now and returns how
// many it dropped.
func (w *Window[K, V]) Expire(now time.Time) int {
	if w.ttl <= 0 {
		return 0
	}
	cutoff := now.Add(-w.ttl)
	n := 0
	// Keys are ordered by touch order; with out-of-order times a stale key may
	// sit behind a fresher one, so scan the whole list (bounded by max).
	for el := w.order.Back(); el != nil; {
		prev := el.Prev()
		if el.Value.(*windowEntry[K, V]).last.Before(cutoff) {
			w.removeElement(el)
			n++
		}
		el = prev
	}
	return n
}

// Len is the number of keys held.
func (w *Window[K, V]) Len() int { return len(w.items) }

// Evicted counts keys dropped by the size cap since creation.
func (w *Window[K, V]) Evicted() uint64 { return w.evicted }

// Range calls fn for each key, most recently touched first, until fn returns
// false. fn must not add or remove keys.
func (w *Window[K, V]) Range(fn func(k K, v *V) bool) {
	for el := w.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*windowEntry[K, V])
		if !fn(e.key, &e.val) {
			return
		}
	}
}

func (w *Window[K, V]) removeElement(el *list.Element) {
	e := el.Value.(*windowEntry[K, V])
	delete(w.items, e.key)
	w.order.Remove(el)
}

// DefaultDistinctMax is the cap NewDistinct uses when given max <= 0.
const DefaultDistinctMax = 1024

// Distinct counts distinct items seen within a sliding window. It holds at
// most max items: when full, the item seen longest ago is dropped (a count at
// the cap is already past any sensible threshold). Not safe for concurrent use.
type Distinct[T comparable] struct {
	window time.Duration
	max    int
	seen   map[T]time.Time
}

// NewDistinct returns an empty Distinct over window holding at most max items
// (DefaultDistinctMax when max <= 0).
func NewDistinct[T comparable](window time.Duration, max int) *Distinct[T] {
	if max <= 0 {
		max = DefaultDistinctMax
	}
	return &Distinct[T]{window: window, max: max, seen: map[T]time.Time{}}
}

// Add records item as seen at t.
func (d *Distinct[T]) Add(item T, t time.Time) {
	if old, ok := d.seen[item]; ok {
		if t.After(old) {
			d.seen[item] = t
		}
		return
	}
	if len(d.seen) >= d.max {
		var oldest T
		var ot time.Time
		first := true
		for k, v := range d.seen {
			if first || v.Before(ot) {
				oldest, ot, first = k, v, false
			}
		}
		delete(d.seen, oldest)
	}
	d.seen[item] = t
}

// Prune drops items last seen more than the window before now.
func (d *Distinct[T]) Prune(now time.Time) {
	cutoff := now.Add(-d.window)
	for k, v := range d.seen {
		if v.Before(cutoff) {
			delete(d.seen, k)
		}
	}
}

// Len is the number of distinct items held.
func (d *Distinct[T]) Len() int { return len(d.seen) }

// Items returns the items held, in no particular order.
func (d *Distinct[T]) Items() []T {
	out := make([]T, 0, len(d.seen))
	for k := range d.seen {
		out = append(out, k)
	}
	return out
}

// Earliest returns the oldest last-seen time among the items (the effective
// window start), or the zero time when empty.
func (d *Distinct[T]) Earliest() time.Time {
	var t time.Time
	for _, v := range d.seen {
		if t.IsZero() || v.Before(t) {
			t = v
		}
	}
	return t
}
