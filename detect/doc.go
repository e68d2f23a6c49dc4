// Package detect turns snapshots into alerts.
//
// A Detector is registered by name (one file per detector, registering itself
// in init) and runs over (snapshot, env): it reads the snapshot and its own
// state and returns candidate alerts. The clock is snap.Time, never time.Now,
// so detectors are deterministic under replay and in tests. Detector state
// (windows, trackers) is bounded in size and expired by snapshot time.
//
// The Engine runs every enabled detector, fills alert ids, and applies the
// cooldown: the same (rule, entity) is emitted once per cooldown (default
// 10 min) with an occurrence count.
//
// # Helpers for detectors
//
// The API below is stable; detectors in this package build on it (process.go,
// sockets.go, ports.go, window.go, distinct.go; Claim in engine.go).
//
// Process context:
//
//	ProcessContext(snap, env, pid) *ProcessInfo   // nil when pid unknown; includes ParentName
//	ProcessName(snap, env, pid) string            // "" when unknown
//	ProcessKey(snap, env, pid) string             // name, else "pid:N", else "unknown" (for entities)
//	Ancestors(snap, env, pid, max) []*collector.Process // parent first, bounded, cycle-safe
//
// Socket owners (owner.go; a socket keeps its owner through TIME_WAIT):
//
//	OwnerKey(snap, env, s) string       // process key, else "uid:N" (unreadable owner), else UnknownOwner
//	OwnerEvidence(snap, s, ev)          // process_unknown, owner_uid, owner_user for an unowned socket
//	InferOwner(snap, env, s) (pid, by)  // a process tied from /proc only on strong evidence, or 0
//
// Sockets and addresses:
//
//	IsListener(s) bool                  // TCP LISTEN, or UDP bound with no remote peer
//	Direction(snap, env, s) string      // DirIngress / DirEgress / DirInternal / DirUnknown
//	ConnKey(s) string                   // stable identity of a connection (cookie, else 5-tuple)
//	(*Env).IsExternal(a) bool           // routable and not in home_net / loopback / link-local
//	(*Env).Claim(s, rules...)           // drop other rules' alerts about this connection in this snapshot
//
// Skipping unchanged sockets (quiet.go): a detector that walks
// snap.Sockets marks a socket it ignored for reasons that read only the
// socket, its configuration and the poll's listeners/host addresses; while
// the collector lists the socket unchanged (Snapshot.SameAs) the engine
// keeps the mark and the detector skips the socket unread:
//
//	env.visitSockets(snap, quietMine, visit) // visit returns true: ignored, nothing else read
//	env.QuietKey(quietMine, digest)     // marks that also depend on other state: dropped when it changes
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
// Names: every rule id is a constant Rule<Id in CamelCase> ("port_scan" is
// RulePortScan) in its detector's file; a detector's registry name is the id
// of its main rule.
//
// Evidence conventions: figures under their own names ("distinct_hosts": 4),
// the threshold as "threshold" (or "<figure>_threshold"), the window as
// "window_seconds", lists sorted so output is deterministic.
package detect
