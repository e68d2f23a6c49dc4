package sinks

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// The sink registry. Each sink kind registers itself, in its own file, with
// RegisterKind from an init function:
//
//	func init() {
//		RegisterKind(KindInfo{Name: KindKafka, Parse: parseKafkaSpec, Buffer: BufferDisk})
//	}
//
// ParseSpec then knows the kind: it cuts the options common to every kind
// (Options: buffer and the route keys, parsed once in options.go) off the
// spec, looks the kind up here, and hands the rest (the target) to its
// Parse. BufferType takes the kind's default buffer from here. A new kind
// (the syslog sink, say) is one file with its parser, its sink and its
// init; nothing else in this package changes. The command opens every sink
// through Open (open_env.go), which calls the kind's Open: it holds no
// switch on kinds.
type KindInfo struct {
	// Name is the spec's prefix ("kafka" in kafka:host:9092/topic).
	Name string
	// Parse validates the target (no I/O); hasTarget is false for a spec
	// with no ':' at all. Its error is wrapped in ErrBadSpec naming the spec.
	Parse func(target string, hasTarget bool) error
	// Open builds the sink from its parsed spec and the environment (config
	// sections, logger, dead-letter directory). It may do I/O (a startup
	// check); a sink it returns is the caller's to close.
	Open func(ctx context.Context, spec Spec, env Env) (Sink, error)
	// Buffer is the kind's default buffer type (BufferMemory when empty):
	// disk for network sinks, so an outage and a crash lose nothing.
	Buffer string
	// NoConfigBuffer keeps the kind on its own default even when the
	// config's buffer.type says otherwise (stdout: a `| head` must never
	// replay old alerts); a spec's ?buffer= still applies.
	NoConfigBuffer bool
	// OwnOptions: the kind's target takes query options of its own
	// (syslog: format, facility ...); SplitOptions leaves every key that is
	// neither common nor a route key in the target for Parse to check.
	OwnOptions bool
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]KindInfo{}
)

// RegisterKind adds a sink kind; registering a name twice panics (a
// programming error caught at start).
func RegisterKind(k KindInfo) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if k.Name == "" || k.Parse == nil || k.Open == nil {
		panic("sinks: RegisterKind needs a name, a parser and an opener")
	}
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("sinks: kind %q registered twice", k.Name))
	}
	if k.Buffer == "" {
		k.Buffer = BufferMemory
	}
	kinds[k.Name] = k
}

// lookupKind returns the registered kind.
func lookupKind(name string) (KindInfo, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds lists the registered kind names, sorted.
func Kinds() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// kindList is "a, b or c" for error messages.
func kindList() string {
	ks := Kinds()
	if len(ks) <= 1 {
		return strings.Join(ks, "")
	}
	return strings.Join(ks[:len(ks)-1], ", ") + " or " + ks[len(ks)-1]
}
