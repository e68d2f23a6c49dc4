package detect

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Port scan detection (T1046), both directions, over sliding windows long
// enough for slow scans (one probe every few seconds):
//
//   - scans of this host: per remote source, distinct local ports touched by
//     the sockets that do appear (SYN_RECV, ESTABLISHED, TIME_WAIT ...);
//     probes of closed ports create no socket, so the kernel's Tcp OutRsts and
//     Udp NoPorts counters are watched too, against a baseline learned per
//     host (portscan_counters.go). Those are host-wide: the source is named
//     only when sockets show one;
//   - scans from this host: per process group (portscan_out.go), connection
//     attempts (SYN_SENT sockets, and sockets destroyed before they ever
//     connected) to many ports of one host or many hosts on one port, so a
//     loop of short-lived `nc -z` processes is one scanner; a Tcp
//     AttemptFails rise above its baseline; and known scanner tools in the
//     process table (nmap -sS uses raw sockets that sock_diag never lists, so
//     the process itself is the evidence).

// RulePortScan is the registry name (and rule id) of the port scan detector.
const RulePortScan = "port_scan"

// PortScanConfig configures the port scan detector.
type PortScanConfig struct {
	// Window is the sliding window over which distinct ports/hosts count.
	Window time.Duration `yaml:"window"`
	// InboundPorts: distinct local ports one remote source touches (Zeek: 15).
	InboundPorts int `yaml:"inbound_ports"`
	// OutboundPorts: distinct ports of one host one process group attempts.
	OutboundPorts int `yaml:"outbound_ports"`
	// OutboundHosts: distinct hosts on one port one process group attempts (Zeek: 25).
	OutboundHosts int `yaml:"outbound_hosts"`
	// CounterWindow is the longest run of polls the counter rules add up.
	CounterWindow time.Duration `yaml:"counter_window"`
	// ClosedPortProbes: Tcp OutRsts + Udp NoPorts above the learned baseline
	// within the counter window that count as probes of closed ports (the
	// least; a noisy host needs more, see CounterZ).
	ClosedPortProbes uint64 `yaml:"closed_port_probes"`
	// AttemptFails: Tcp AttemptFails above the learned baseline within the
	// counter window that count as an outbound scan (the least).
	AttemptFails uint64 `yaml:"attempt_fails"`
	// CounterHalfLife is how fast the counters' baseline rate follows the host.
	CounterHalfLife time.Duration `yaml:"counter_half_life"`
	// CounterZ: how many of the counter's own standard deviations (robust,
	// from its median absolute deviation) a rise must exceed.
	CounterZ float64 `yaml:"counter_z"`
	// CounterRatio: a rise must also be this many times what the baseline
	// predicts (traffic surges raise resets in proportion; scans multiply them).
	CounterRatio float64 `yaml:"counter_ratio"`
	// KnownScanners are process names of scanning tools.
	KnownScanners []string `yaml:"known_scanners"`
	// MaxSources caps the tracked remote sources and process groups.
	MaxSources int `yaml:"max_sources"`
}

func defaultPortScanConfig() *PortScanConfig {
	return &PortScanConfig{
		Window:           5 * time.Minute,
		InboundPorts:     15,
		OutboundPorts:    15,
		OutboundHosts:    25,
		CounterWindow:    5 * time.Minute,
		ClosedPortProbes: 15,
		AttemptFails:     15,
		CounterHalfLife:  30 * time.Minute,
		CounterZ:         6,
		CounterRatio:     5,
		KnownScanners:    []string{"nmap", "masscan", "zmap", "rustscan", "naabu", "unicornscan", "hping3", "zgrab2"},
		MaxSources:       10000,
	}
}

func init() { registerConfig(RulePortScan, defaultPortScanConfig, newPortScan) }

type portScan struct {
	cfg      PortScanConfig
	scanners map[string]bool
	// inbound: remote source -> distinct local "proto/port"
	inbound *Window[netip.Addr, *Distinct[string]]
	out     *outboundScans
	// seenTools: known scanner processes already reported (pid+start)
	seenTools *Window[string, struct{}]
	// host-wide counters against their learned baselines
	closedPorts, attemptFails *counterBaseline
	// prev is the previous snapshot's time: an inbound connection first
	// seen before it touched its port then, and was counted then.
	prev time.Time
}

func newPortScan(c PortScanConfig) (*portScan, error) {
	if c.Window <= 0 || c.CounterWindow <= 0 || c.CounterHalfLife <= 0 {
		return nil, fmt.Errorf("window, counter_window and counter_half_life must be positive")
	}
	if c.InboundPorts < 2 || c.OutboundPorts < 2 || c.OutboundHosts < 2 {
		return nil, fmt.Errorf("inbound_ports, outbound_ports and outbound_hosts must be at least 2")
	}
	if c.ClosedPortProbes < 1 || c.AttemptFails < 1 {
		return nil, fmt.Errorf("closed_port_probes and attempt_fails must be at least 1")
	}
	if !(c.CounterZ >= 1) || !(c.CounterRatio >= 1) {
		return nil, fmt.Errorf("counter_z and counter_ratio must be at least 1")
	}
	if c.MaxSources <= 0 {
		c.MaxSources = DefaultWindowKeys
	}
	d := &portScan{
		cfg:          c,
		scanners:     map[string]bool{},
		inbound:      NewWindow[netip.Addr, *Distinct[string]](c.MaxSources, c.Window),
		out:          newOutboundScans(c),
		seenTools:    NewWindow[string, struct{}](c.MaxSources, 24*time.Hour),
		closedPorts:  newCounterBaseline(c.CounterWindow, c.CounterHalfLife, float64(c.ClosedPortProbes), c.CounterZ, c.CounterRatio),
		attemptFails: newCounterBaseline(c.CounterWindow, c.CounterHalfLife, float64(c.AttemptFails), c.CounterZ, c.CounterRatio),
	}
	for _, n := range c.KnownScanners {
		d.scanners[strings.ToLower(n)] = true
	}
	return d, nil
}

func (d *portScan) Name() string { return RulePortScan }

func (d *portScan) Rules() []RuleInfo {
	return []RuleInfo{{
		ID: RulePortScan, Name: "Port scan (inbound and outbound)", ThreatType: ThreatPortScan,
		Technique: "T1046", Severity: SeverityHigh,
		Description: "Many ports or hosts probed within a window, slow scans included: per remote source (sockets on this host), " +
			"per process group (parent, session, user: SYN_SENT and never-connected attempts, so a loop of short-lived nc -z is one scanner), " +
			"kernel counter rises above a learned baseline (OutRsts/NoPorts for closed-port probes, AttemptFails), known scanner tools.",
		Thresholds: map[string]any{
			"window": d.cfg.Window.String(), "inbound_ports": d.cfg.InboundPorts,
			"outbound_ports": d.cfg.OutboundPorts, "outbound_hosts": d.cfg.OutboundHosts,
			"counter_window": d.cfg.CounterWindow.String(), "closed_port_probes": d.cfg.ClosedPortProbes,
			"attempt_fails": d.cfg.AttemptFails, "counter_half_life": d.cfg.CounterHalfLife.String(),
			"counter_z": d.cfg.CounterZ, "counter_ratio": d.cfg.CounterRatio, "known_scanners": d.cfg.KnownScanners,
		},
		Sees: Visibility{
			Privileged: "Every socket with its owner: inbound probes per source on open ports (closed-port probes only as " +
				"host-wide OutRsts/NoPorts rises, source named when the same source touched an open port); outbound attempts " +
				"per process group, including connects that failed between two polls (destroy notifications, joined to the group " +
				"that was seen attempting that host or whose command line names it; a refused blocking connect reports port 0 " +
				"there and counts only in AttemptFails); scanner tools by name.",
			Unprivileged: "The same sockets and counters (sock_diag and /proc/net/snmp need no privilege), but other users' " +
				"sockets have no owner: their outbound attempts join a process group only through a command line naming the " +
				"target host (/proc/<pid>/cmdline is readable), else they count as one unattributed scanner per socket uid; " +
				"raw-socket SYN scans (nmap -sS) are seen by the counters and the tool name only.",
		},
	}}
}

// ephemeralLow is the bottom of Linux's default ip_local_port_range.
const ephemeralLow = 32768

// inboundAttempt reports whether s looks like a connection a remote peer
// opened to this host: to a listening port, or (listener gone, TIME_WAIT /
// SYN_RECV) to a low local port from an unprivileged remote port.
func inboundAttempt(snap *collector.Snapshot, env *Env, s *collector.Socket) bool {
	if s.Proto != collector.ProtoTCP || !s.Remote.IsValid() || IsListener(s) || s.Remote.Addr().Unmap().IsLoopback() {
		return false
	}
	if Direction(snap, env, s) == DirIngress {
		return true
	}
	switch s.State {
	case collector.StateSynRecv, collector.StateTimeWait: // the kernel lists NEW_SYN_RECV as SYN_RECV
		return s.Local.Port() < ephemeralLow && s.Remote.Port() >= 1024
	}
	return false
}

// outboundAttempt reports whether s is a connection attempt from this host
// that has not (yet) connected: SYN_SENT, or destroyed before it ever
// exchanged a byte (a refused or timed-out connect ends in CLOSE with
// tcp_info's bytes_acked and bytes_received both 0; a connection that was
// established has at least its SYN or FIN acknowledged).
func outboundAttempt(snap *collector.Snapshot, env *Env, s *collector.Socket) bool {
	if s.Proto != collector.ProtoTCP || !s.Remote.IsValid() || s.Remote.Addr().Unmap().IsLoopback() || s.Remote.Port() == 0 {
		return false
	}
	switch {
	case s.State == collector.StateSynSent:
		return true
	case s.Destroyed && s.State == collector.StateClose && s.BytesAcked == 0 && s.BytesReceived == 0:
		return Direction(snap, env, s) == DirEgress
	}
	return false
}

func (d *portScan) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	var out []Alert
	touchedIn := map[netip.Addr]bool{}
	d.out.begin(snap, env)
	prev := d.prev
	d.prev = now
	// visit returns true when it ignored s for reasons that hold as long as
	// s is listed unchanged (quiet.go): counted already (FirstSeen does not
	// move and prev only grows) and no outbound attempt.
	visit := func(s *collector.Socket) (quiet bool) {
		// A connection touches its port once, when it is first seen: one
		// listed at an earlier poll was counted then (a busy server's
		// clients would otherwise cost a look-up each, every poll).
		counted := !s.FirstSeen.IsZero() && !prev.IsZero() && !s.FirstSeen.After(prev)
		if !counted && inboundAttempt(snap, env, s) {
			src := s.Remote.Addr().Unmap()
			dist := *d.inbound.Touch(src, now, func() *Distinct[string] {
				return NewDistinct[string](d.cfg.Window, 4*d.cfg.InboundPorts)
			})
			dist.Add(fmt.Sprintf("%s/%d", s.Proto, s.Local.Port()), now)
			touchedIn[src] = true
			return false
		}
		if outboundAttempt(snap, env, s) {
			d.out.add(snap, env, s)
			return false
		}
		return counted
	}
	env.visitSockets(snap, quietPortScan, visit)
	for i := range snap.Closed {
		visit(&snap.Closed[i])
	}
	d.inbound.Expire(now)

	// Scans of this host, per observable source.
	var srcs []netip.Addr
	for src := range touchedIn {
		srcs = append(srcs, src)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Less(srcs[j]) })
	for _, src := range srcs {
		pd, ok := d.inbound.Get(src)
		if !ok {
			continue
		}
		dist := *pd
		dist.Prune(now)
		n := dist.Len()
		if n < d.cfg.InboundPorts {
			continue
		}
		ports := dist.Items()
		sort.Strings(ports)
		out = append(out, Alert{
			ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
			Start: dist.Earliest(), End: now,
			Message:   fmt.Sprintf("inbound port scan: %s touched %d distinct local ports within %s", src, n, d.cfg.Window),
			Transport: "tcp", Direction: DirIngress,
			Source: netip.AddrPortFrom(src, 0),
			Evidence: map[string]any{
				"distinct_ports": n, "threshold": d.cfg.InboundPorts, "window_seconds": d.cfg.Window.Seconds(),
				"ports": capStrings(ports, 50),
			},
			Recommendation: Recommendation(ThreatPortScan), Entity: "in:" + src.String(),
		})
	}

	out = append(out, d.out.alerts(snap, env)...)
	out = append(out, d.counterAlerts(snap)...)
	out = append(out, d.toolAlerts(snap, env)...)
	return out
}

// likelySource is the remote source that touched the most local ports within
// the window, the most recent among equals (the best guess at who sent the
// closed-port probes), or false.
func (d *portScan) likelySource(now time.Time) (netip.Addr, int, bool) {
	var best netip.Addr
	bestN := 0
	d.inbound.Range(func(src netip.Addr, pd **Distinct[string]) bool {
		dist := *pd
		dist.Prune(now)
		if n := dist.Len(); n > bestN { // ties: the most recently touched (Range order)
			best, bestN = src, n
		}
		return true
	})
	return best, bestN, bestN > 0
}

// toolAlerts reports known scanner processes, once per process.
func (d *portScan) toolAlerts(snap *collector.Snapshot, env *Env) []Alert {
	var out []Alert
	pids := make([]int32, 0)
	for pid, p := range snap.Processes {
		if p != nil && d.isScanner(p) {
			pids = append(pids, pid)
		}
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		p := snap.Processes[pid]
		id := fmt.Sprintf("%d@%d", pid, p.StartTime.UnixNano())
		if _, seen := d.seenTools.Get(id); seen {
			d.seenTools.Touch(id, snap.Time, nil)
			continue
		}
		d.seenTools.Touch(id, snap.Time, nil)
		out = append(out, Alert{
			ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
			Message:  fmt.Sprintf("known network scanner running: %s (pid %d): %s", p.Name, pid, strings.Join(capStrings(p.Cmdline, 16), " ")),
			Process:  ProcessContext(snap, env, pid),
			Evidence: map[string]any{"tool": p.Name, "known_scanners": d.cfg.KnownScanners},
			Entity:   "tool:" + id, Recommendation: Recommendation(ThreatPortScan),
		})
	}
	d.seenTools.Expire(snap.Time)
	return out
}

func (d *portScan) isScanner(p *collector.Process) bool {
	if d.scanners[strings.ToLower(p.Name)] {
		return true
	}
	return p.Exe != "" && d.scanners[strings.ToLower(filepath.Base(p.Exe))]
}

// capStrings returns at most n items of s.
func capStrings(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
