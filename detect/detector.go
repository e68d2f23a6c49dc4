package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/netsentinel/netsentinel/collector"
)

// Detector finds one kind of threat.
type Detector interface {
	// Name is the registry name, e.g. "suspicious_port".
	Name() string
	// Rules describes what the detector can emit (for `netsentinel rules`).
	Rules() []RuleInfo
	// Detect inspects one snapshot and returns candidate alerts. The engine
	// sets ID, Count and Time when they are zero.
	Detect(snap *collector.Snapshot, env *Env) []Alert
}

// RuleInfo documents one rule a detector emits.
type RuleInfo struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	ThreatType     string         `json:"threat_type"`
	Technique      string         `json:"technique"` // technique or sub-technique id
	Severity       Severity       `json:"severity"`
	Description    string         `json:"description"`
	Recommendation string         `json:"recommendation"`
	Thresholds     map[string]any `json:"thresholds,omitempty"`
	// Sees states what the rule observes in each sensor mode: as root (or
	// with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, so every process's fds
	// are readable) and as an unprivileged user without capabilities,
	// watching other users' processes. `netsentinel rules` prints both.
	Sees Visibility `json:"sees"`
}

// Visibility is what a rule sees per sensor mode (see RuleInfo.Sees).
type Visibility struct {
	Privileged   string `json:"privileged"`
	Unprivileged string `json:"unprivileged"`
}

// Common is configuration shared by all detectors.
type Common struct {
	// HomeNet are the internal networks (default DefaultHomeNet: RFC 1918,
	// 100.64.0.0/10 and IPv6 ULA fc00::/7).
	HomeNet []netip.Prefix
}

// Env is the engine's context handed to every Detect call. Detectors read it
// (HomeNet, Process, IsInternal, IsExternal, Direction) and write to it:
// Claim records connections whose other alerts the engine drops after all
// detectors ran, and Direction caches a listener index. It belongs to the
// engine: not safe for concurrent use, and not to be kept past the call.
type Env struct {
	Common
	// procs holds processes seen in recent snapshots, so sockets that closed
	// after their process exited still get process context.
	procs *Window[int32, *collector.Process]
	// listeners indexes the listening sockets of listenSnap, built on first
	// use by Direction and shared by the detectors of one Run.
	listenSnap *collector.Snapshot
	listeners  *listenerIndex
	// stdio indexes the sockets of stdioSnap that some process holds on
	// its fds 0-2 (Process.StdioSockets), by inode, built on first use.
	stdioSnap *collector.Snapshot
	stdio     map[uint64]*collector.Socket
	// claims are connections a detector accounted for in this Run, by the
	// rule whose alerts about them are dropped (see Claim).
	claims map[string]map[string]struct{}
	// quiet are the per-socket marks of detectors that ignored a socket
	// (quiet.go).
	quiet quietMarks
}

// stdioSocket returns the socket of snap with inode ino when some process
// of snap holds it on a standard stream. The index holds only those sockets:
// a poll with no such process costs one pass over the processes, not a map
// of every socket.
func (e *Env) stdioSocket(snap *collector.Snapshot, ino uint64) *collector.Socket {
	if e.stdioSnap != snap || e.stdio == nil {
		e.stdioSnap, e.stdio = snap, map[uint64]*collector.Socket{}
		for _, p := range snap.Processes {
			if p == nil {
				continue
			}
			for _, i := range p.StdioSockets {
				e.stdio[i] = nil
			}
		}
		if len(e.stdio) > 0 {
			for i := range snap.Sockets {
				s := &snap.Sockets[i]
				if _, want := e.stdio[s.Inode]; want && s.Inode != 0 {
					e.stdio[s.Inode] = s
				}
			}
		}
	}
	return e.stdio[ino]
}

// listenersFor returns the listening-socket index of snap, building it once.
func (e *Env) listenersFor(snap *collector.Snapshot) *listenerIndex {
	if e.listenSnap != snap || e.listeners == nil {
		e.listeners = buildListeners(snap, e.listeners, e)
		e.listenSnap = snap
	}
	return e.listeners
}

// IsInternal reports whether a is in home_net (or loopback / link-local).
func (e *Env) IsInternal(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range e.HomeNet {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Process returns the process with pid from the snapshot, or from the recent
// process cache; nil when unknown.
func (e *Env) Process(snap *collector.Snapshot, pid int32) *collector.Process {
	if pid <= 0 {
		return nil
	}
	if p := snap.Processes[pid]; p != nil {
		return p
	}
	if e.procs != nil {
		if p, ok := e.procs.Get(pid); ok {
			return *p
		}
	}
	return nil
}

// Factory builds one detector from its configuration section.
type Factory struct {
	Name string
	// DefaultConfig returns a pointer to a fresh config struct holding the
	// defaults; the config loader decodes the user's section into it strictly.
	DefaultConfig func() any
	// New builds the detector from the (decoded) config DefaultConfig returned.
	New func(cfg any, common Common) (Detector, error)
}

var (
	regMu    sync.Mutex
	registry = map[string]Factory{}
)

// Register adds a detector factory; it panics on a duplicate name (a
// programming error caught at init).
func Register(f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[f.Name]; dup {
		panic(fmt.Sprintf("detect: detector %q registered twice", f.Name))
	}
	registry[f.Name] = f
}

// registerConfig registers a detector whose config section decodes into C:
// defaults returns a fresh *C holding the defaults, build makes the detector
// from the decoded copy. It saves each detector the Factory boilerplate.
func registerConfig[C any, D Detector](name string, defaults func() *C, build func(C) (D, error)) {
	Register(Factory{
		Name:          name,
		DefaultConfig: func() any { return defaults() },
		New: func(cfg any, _ Common) (Detector, error) {
			c, err := ConfigAs[C](name, cfg)
			if err != nil {
				return nil, err
			}
			d, err := build(*c)
			if err != nil {
				return nil, err // not a typed nil inside a Detector
			}
			return d, nil
		},
	})
}

// Factories returns the registered factories sorted by name.
func Factories() []Factory {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Factory, 0, len(registry))
	for _, f := range registry {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	f, ok := registry[name]
	return f, ok
}

// AllRuleIDs lists, sorted, the rule ids of every registered detector,
// enabled or not (what an exception may name). Each detector is built from
// its defaults without being started.
func AllRuleIDs() []string {
	var out []string
	for _, f := range Factories() {
		d, err := f.New(f.DefaultConfig(), Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			out = append(out, f.Name) // the registry name is its main rule id
			continue
		}
		for _, r := range d.Rules() {
			out = append(out, r.ID)
		}
		closeDetector(d)
	}
	sort.Strings(out)
	return slices.Compact(out)
}
