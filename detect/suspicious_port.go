package detect

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// RuleSuspiciousPort is the registry name (and rule id) of the suspicious port detector.
const RuleSuspiciousPort = "suspicious_port"

// DefaultSuspiciousPorts is the original's RAT/C2 port list without the Tor
// ports, which the tor detector owns.
var DefaultSuspiciousPorts = []string{"1080", "3333", "4444", "4545", "5555", "6666-6669", "12345", "14444", "31337", "45560", "54321"}

// SuspiciousPortConfig is the detect.detectors.suspicious_port section.
type SuspiciousPortConfig struct {
	// Ports are single ports or ranges ("6666-6669"). Tor ports are refused:
	// the tor detector alerts on them.
	Ports []string `yaml:"ports"`
	// Listening also alerts on local listeners on these ports (default true).
	Listening bool `yaml:"listening"`
}

func init() {
	registerConfig(RuleSuspiciousPort, func() *SuspiciousPortConfig {
		return &SuspiciousPortConfig{Ports: append([]string(nil), DefaultSuspiciousPorts...), Listening: true}
	}, newSuspiciousPort)
}

type suspiciousPort struct {
	ports     PortSet
	listening bool
	// alerted holds the connections already alerted (protocol and both
	// endpoints, which a connection keeps through TIME_WAIT and its destroy
	// notification): each is alerted once, however its owner is read later.
	alerted *Window[string, struct{}]
}

// Bounds of the per-connection memory: a connection is remembered while
// listed, and this long after its last sighting.
const (
	maxAlertedConns = 1 << 16
	alertedConnTTL  = 10 * time.Minute
)

func newSuspiciousPort(c SuspiciousPortConfig) (*suspiciousPort, error) {
	ports, err := ParsePorts(c.Ports)
	if err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	for _, p := range DefaultTorPorts.Sorted() {
		if ports.Has(p) {
			return nil, fmt.Errorf("ports: %d is a Tor port, alerted by the tor detector; remove it here", p)
		}
	}
	return &suspiciousPort{ports: ports, listening: c.Listening,
		alerted: NewWindow[string, struct{}](maxAlertedConns, alertedConnTTL)}, nil
}

func (d *suspiciousPort) Name() string { return RuleSuspiciousPort }

func (d *suspiciousPort) Rules() []RuleInfo {
	return []RuleInfo{{
		ID:         RuleSuspiciousPort,
		Name:       "Connection to or listener on a known RAT/C2 port",
		ThreatType: ThreatSuspiciousPort,
		Technique:  "T1571",
		Severity:   SeverityHigh,
		Description: "An outbound connection (TCP or connected UDP) to a remote port on the list, or a local " +
			"listener on such a port, with the owning process. Tor ports are left to the tor detector.",
		Recommendation: Recommendation(ThreatSuspiciousPort),
		Thresholds:     map[string]any{"ports": portsAsInts(d.ports), "listening": d.listening},
		Sees: Visibility{
			Privileged: "Every TCP/UDP socket and listener of the network namespace with its process (name, command line, " +
				"parent), also for connections shorter than a poll (destroy notifications; their process only if a " +
				"poll listed them). A connection alerts at most once; further connections of the same owner to the " +
				"same destination fold into the cooldown's count.",
			Unprivileged: "The same sockets and ports, a connection at most once; another user's socket is keyed by its " +
				"uid and user name, and its process named only when inferred from /proc (a process of that user whose " +
				"command line names the peer, or the user's only process; marked inferred); a connection shorter " +
				"than a poll has no uid.",
		},
	}}
}

func (d *suspiciousPort) Detect(snap *collector.Snapshot, env *Env) []Alert {
	var out []Alert
	listeners := map[string]bool{}
	// visit returns true when it ignored s for reasons that hold as long as
	// s is listed unchanged (quiet.go): a listener or connection off the
	// port list, an accepted side, a loopback peer.
	visit := func(s *collector.Socket, closed bool) (quiet bool) {
		if IsListener(s) {
			if d.listening && s.Local.IsValid() && d.ports.Has(s.Local.Port()) {
				a := d.listenAlert(snap, env, s)
				if !listeners[a.Entity] {
					listeners[a.Entity] = true
					out = append(out, a)
				}
				return false
			}
			return true
		}
		if !s.Remote.IsValid() || !d.ports.Has(s.Remote.Port()) {
			return true
		}
		// The accepted side of a connection to a local listener has the
		// client's (ephemeral) port as remote port: not an outbound use.
		if env.listenersFor(snap).accepts(s) {
			return true
		}
		// Loopback peers are the local listener's business (alerted above).
		if s.Remote.Addr().Unmap().IsLoopback() {
			return true
		}
		// One alert per connection: its later listings (TIME_WAIT, closed)
		// only keep it remembered.
		k := tupleKey(s.Proto.String(), s.Local, s.Remote)
		if _, done := d.alerted.Get(k); done {
			d.alerted.Touch(k, snap.Time, nil)
			return
		}
		d.alerted.Put(k, struct{}{}, snap.Time)
		out = append(out, d.outAlert(snap, env, s, closed))
		return false
	}
	env.visitSockets(snap, quietSuspiciousPort, func(s *collector.Socket) bool { return visit(s, false) })
	for i := range snap.Closed {
		visit(&snap.Closed[i], true)
	}
	d.alerted.Expire(snap.Time)
	return out
}

func (d *suspiciousPort) base(s *collector.Socket, snap *collector.Snapshot, env *Env) Alert {
	return Alert{
		RuleID:     RuleSuspiciousPort,
		ThreatType: ThreatSuspiciousPort,
		Technique:  "T1571",
		Severity:   SeverityHigh,
		Transport:  s.Proto.String(),
		Source:     s.Local,
	}
}

// outAlert describes one outbound connection. Its entity is the owner and
// the destination: a process that reconnects every few seconds is one alert
// per cooldown with an occurrence count, not one alert per connection (the
// per-connection memory in Detect keeps one connection from alerting again
// under another owner reading).
func (d *suspiciousPort) outAlert(snap *collector.Snapshot, env *Env, s *collector.Socket, closed bool) Alert {
	a := d.base(s, snap, env)
	a.Dest = s.Remote
	a.Direction = Direction(snap, env, s)
	port := s.Remote.Port()
	dst := netip.AddrPortFrom(s.Remote.Addr().Unmap(), port)
	a.Entity = "out:" + OwnerKey(snap, env, s) + ":" + dst.String()
	a.Evidence = map[string]any{
		"port":      int(port),
		"state":     s.State.String(),
		"port_list": portsAsInts(d.ports),
		"closed":    closed,
	}
	a.Process = ownerContext(snap, env, s, a.Evidence)
	a.Message = fmt.Sprintf("%s connection to %s on suspicious port %d by %s", s.Proto, dst, port, describeOwner(snap, a.Process, s))
	return a
}

func (d *suspiciousPort) listenAlert(snap *collector.Snapshot, env *Env, s *collector.Socket) Alert {
	a := d.base(s, snap, env)
	a.Direction = DirIngress
	port := s.Local.Port()
	a.Entity = "listen:" + s.Proto.String() + ":" + strconv.Itoa(int(port))
	a.Evidence = map[string]any{
		"port":      int(port),
		"listening": true,
		"local":     s.Local.String(),
		"port_list": portsAsInts(d.ports),
	}
	a.Process = ownerContext(snap, env, s, a.Evidence)
	a.Message = fmt.Sprintf("%s listener on suspicious port %d (%s) by %s", s.Proto, port, s.Local, describeOwner(snap, a.Process, s))
	return a
}

// describeProc renders a process for messages: "nc (pid 42)" or "pid 42" or
// "an unknown process".
func describeProc(p *ProcessInfo, pid int32) string {
	switch {
	case p != nil:
		return fmt.Sprintf("%s (pid %d)", p.Name, p.PID)
	case pid > 0:
		return fmt.Sprintf("pid %d", pid)
	default:
		return "an unknown process"
	}
}

func portsAsInts(s PortSet) []int {
	sorted := s.Sorted()
	out := make([]int, len(sorted))
	for i, p := range sorted {
		out[i] = int(p)
	}
	return out
}
