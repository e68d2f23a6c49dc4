package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/netsentinel/netsentinel/collector"
)

// RuleSocksProxy is the rule id of a local proxy fanning out (the tor
// detector emits it).
const RuleSocksProxy = "socks_proxy"

// DefaultProxyMinHosts is the socks_proxy fan-out threshold.
const DefaultProxyMinHosts = 3

func (d *torDetector) proxyRule() RuleInfo {
	return RuleInfo{
		ID:         RuleSocksProxy,
		Name:       "Local proxy fanning out (SOCKS / multi-hop client)",
		ThreatType: ThreatTor,
		Technique:  "T1090.003",
		Severity:   SeverityMedium,
		Description: "A process, under any name and on any port, that serves a client on this host through its own " +
			"TCP listener while it holds connections to several distinct external hosts on TLS-ish ports: what a " +
			"SOCKS proxy or a multi-hop proxy client (Tor, renamed or not) looks like. Browsers and package " +
			"managers hold no listener their own connections go through; forward proxies run on purpose are " +
			"listed in proxy_allow_names. Tor processes are left to the tor rule.",
		Recommendation: Recommendation(ThreatTor),
		Thresholds: map[string]any{
			"proxy_min_hosts":   d.cfg.ProxyMinHosts,
			"proxy_ports":       portsAsInts(d.proxyPorts),
			"proxy_allow_names": sortedKeys(d.proxyAllow),
		},
		Sees: Visibility{
			Privileged: "Every process's listeners, accepted local clients and outbound connections.",
			Unprivileged: "Only proxies run by the sensor's own user: the rule needs the owner of both the listener " +
				"and the outbound sockets, which /proc/<pid>/fd hides for other users.",
		},
	}
}

// proxyProc is one process's listener use and fan-out in a snapshot.
type proxyProc struct {
	listeners []*collector.Socket
	clients   map[uint16]int // listener port -> accepted connections from this host
	hosts     map[netip.Addr]bool
	dests     map[string]bool
	candidate bool // fans out enough to alert: its local clients are counted
}

// proxies finds processes (other than Tor's) serving a local client on their
// own listener while reaching at least ProxyMinHosts external hosts.
func (d *torDetector) proxies(snap *collector.Snapshot, env *Env, g torGroups) []Alert {
	if d.cfg.ProxyMinHosts <= 0 {
		return nil
	}
	procs := map[int32]*proxyProc{}
	// One pass finds the listeners and the connections to a proxy port;
	// a socket that is neither is marked quiet (quiet.go: it reads only the
	// socket and the configuration).
	var fanout []*collector.Socket
	env.visitSockets(snap, quietProxy, func(s *collector.Socket) bool {
		switch {
		case s.Proto == collector.ProtoTCP && s.State == collector.StateListen && s.PID > 0 && s.Local.IsValid():
			pp := procs[s.PID]
			if pp == nil {
				pp = &proxyProc{clients: map[uint16]int{}, hosts: map[netip.Addr]bool{}, dests: map[string]bool{}}
				procs[s.PID] = pp
			}
			pp.listeners = append(pp.listeners, s)
		case s.Remote.IsValid() && d.proxyPorts.Has(s.Remote.Port()):
			fanout = append(fanout, s)
		default:
			return true
		}
		return false
	})
	if len(procs) == 0 {
		return nil
	}
	// Fan-out first: only a process reaching ProxyMinHosts external hosts
	// can alert, so the local-client check below (an index of every local
	// connection) runs only when there is one.
	established := func(s *collector.Socket) *proxyProc {
		if s.Proto != collector.ProtoTCP || s.State != collector.StateEstablished || !s.Remote.IsValid() {
			return nil
		}
		return procs[s.PID]
	}
	for _, s := range fanout {
		pp := established(s)
		if pp == nil || !env.IsExternal(s.Remote.Addr()) {
			continue
		}
		if _, ok := pp.accepts(s); ok {
			continue
		}
		pp.hosts[s.Remote.Addr().Unmap()] = true
		pp.dests[s.Remote.String()] = true
	}
	var pids []int32
	for pid, pp := range procs {
		if _, tor := g.member[pid]; tor || len(pp.hosts) < d.cfg.ProxyMinHosts {
			continue
		}
		if p := env.Process(snap, pid); p != nil && hasName(d.proxyAllow, p) {
			continue
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		return nil
	}
	// Both ends of a connection between two local sockets are in the dump.
	type ends struct{ local, remote netip.AddrPort }
	local := map[ends]bool{}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		if s.Proto == collector.ProtoTCP && s.State != collector.StateListen && s.Remote.IsValid() {
			local[ends{s.Local, s.Remote}] = true
		}
	}
	for _, pid := range pids {
		procs[pid].candidate = true
	}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		pp := established(s)
		if pp == nil || !pp.candidate {
			continue
		}
		if port, ok := pp.accepts(s); ok && local[ends{s.Remote, s.Local}] {
			pp.clients[port]++
		}
	}
	kept := pids[:0]
	for _, pid := range pids {
		if len(procs[pid].clients) > 0 {
			kept = append(kept, pid)
		}
	}
	pids = kept
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	out := make([]Alert, 0, len(pids))
	for _, pid := range pids {
		out = append(out, d.proxyAlert(snap, env, pid, procs[pid]))
	}
	return out
}

// accepts reports whether s was accepted on one of pp's listeners, and on
// which port.
func (pp *proxyProc) accepts(s *collector.Socket) (uint16, bool) {
	for _, l := range pp.listeners {
		if l.Local.Port() == s.Local.Port() && (l.Local.Addr().IsUnspecified() || l.Local.Addr().Unmap() == s.Local.Addr().Unmap()) {
			return l.Local.Port(), true
		}
	}
	return 0, false
}

func (d *torDetector) proxyAlert(snap *collector.Snapshot, env *Env, pid int32, pp *proxyProc) Alert {
	// The listener with the most local clients (lowest port on a tie).
	var best *collector.Socket
	for _, l := range pp.listeners {
		c := pp.clients[l.Local.Port()]
		if best == nil || c > pp.clients[best.Local.Port()] || (c == pp.clients[best.Local.Port()] && l.Local.Port() < best.Local.Port()) {
			best = l
		}
	}
	port := best.Local.Port()
	dests := sortedKeys(pp.dests)
	if len(dests) > maxTorDestinations {
		dests = dests[:maxTorDestinations]
	}
	a := Alert{
		RuleID:     RuleSocksProxy,
		ThreatType: ThreatTor,
		Technique:  "T1090.003",
		Severity:   SeverityMedium,
		Process:    ProcessContext(snap, env, pid),
		Transport:  "tcp",
		Source:     best.Local,
		Direction:  DirEgress,
	}
	a.Entity = "proxy:" + ProcessKey(snap, env, pid) + ":" + strconv.Itoa(int(port))
	a.Message = fmt.Sprintf("%s serves %d local client connection(s) on %s while connected to %d external hosts on TLS ports: a proxy fanning out",
		describeProc(a.Process, pid), pp.clients[port], best.Local, len(pp.hosts))
	a.Evidence = map[string]any{
		"reasons":        []string{"proxy_fanout"},
		"listener":       best.Local.String(),
		"local_clients":  pp.clients[port],
		"external_hosts": len(pp.hosts),
		"destinations":   dests,
		"min_hosts":      d.cfg.ProxyMinHosts,
		"proxy_ports":    portsAsInts(d.proxyPorts),
	}
	return a
}
