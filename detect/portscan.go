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

// Port scan detection (T1046), both directions, over sliding windows:
//
//   - scans of this host: per remote source, distinct local ports touched by
//     the sockets that do appear (SYN_RECV, ESTABLISHED, TIME_WAIT ...);
//     probes of closed ports create no socket, so the kernel's Tcp OutRsts and
//     Udp NoPorts counters are diffed too. Those are host-wide: the source is
//     named only when sockets show one;
//   - scans from this host: per process, connection attempts (SYN_SENT sockets,
//     and sockets that closed while still in SYN_SENT) to many ports of one
//     host or many hosts on one port; a Tcp AttemptFails spike; and known
//     scanner tools in the process table (nmap -sS uses raw sockets that
//     sock_diag never lists, so the process itself is the evidence).

// RulePortScan is the registry name (and rule id) of the port scan detector.
const RulePortScan = "port_scan"

// PortScanConfig configures the port scan detector.
type PortScanConfig struct {
	// Window is the sliding window over which distinct ports/hosts count.
	Window time.Duration `yaml:"window"`
	// InboundPorts: distinct local ports one remote source touches (Zeek: 15).
	InboundPorts int `yaml:"inbound_ports"`
	// OutboundPorts: distinct ports of one host one process attempts.
	OutboundPorts int `yaml:"outbound_ports"`
	// OutboundHosts: distinct hosts on one port one process attempts (Zeek: 25).
	OutboundHosts int `yaml:"outbound_hosts"`
	// CounterWindow is the window of the kernel counter deltas.
	CounterWindow time.Duration `yaml:"counter_window"`
	// ClosedPortProbes: Tcp OutRsts + Udp NoPorts rise per counter window
	// that counts as probes of closed ports.
	ClosedPortProbes uint64 `yaml:"closed_port_probes"`
	// AttemptFails: Tcp AttemptFails rise per counter window that counts as
	// an outbound scan.
	AttemptFails uint64 `yaml:"attempt_fails"`
	// KnownScanners are process names of scanning tools.
	KnownScanners []string `yaml:"known_scanners"`
	// MaxSources caps the tracked remote sources and processes.
	MaxSources int `yaml:"max_sources"`
}

func defaultPortScanConfig() *PortScanConfig {
	return &PortScanConfig{
		Window:           5 * time.Minute,
		InboundPorts:     15,
		OutboundPorts:    15,
		OutboundHosts:    25,
		CounterWindow:    time.Minute,
		ClosedPortProbes: 200,
		AttemptFails:     200,
		KnownScanners:    []string{"nmap", "masscan", "zmap", "rustscan", "naabu", "unicornscan", "hping3", "zgrab2"},
		MaxSources:       10000,
	}
}

func init() { registerConfig(RulePortScan, defaultPortScanConfig, newPortScan) }

type counterSample struct {
	t                    time.Time
	rsts, noPorts, fails uint64
}

type portScan struct {
	cfg      PortScanConfig
	scanners map[string]bool
	// inbound: remote source -> distinct local "proto/port"
	inbound *Window[netip.Addr, *Distinct[string]]
	// outbound: process key -> distinct attempted remote endpoints
	outbound *Window[string, *Distinct[netip.AddrPort]]
	// seenTools: known scanner processes already reported (pid+start)
	seenTools *Window[string, struct{}]
	samples   []counterSample // bounded by counter window / poll, capped
}

// maxCounterSamples caps the counter history whatever the poll interval.
const maxCounterSamples = 4096

func newPortScan(c PortScanConfig) (*portScan, error) {
	if c.Window <= 0 || c.CounterWindow <= 0 {
		return nil, fmt.Errorf("window and counter_window must be positive")
	}
	if c.InboundPorts < 2 || c.OutboundPorts < 2 || c.OutboundHosts < 2 {
		return nil, fmt.Errorf("inbound_ports, outbound_ports and outbound_hosts must be at least 2")
	}
	if c.MaxSources <= 0 {
		c.MaxSources = DefaultWindowKeys
	}
	d := &portScan{
		cfg:       c,
		scanners:  map[string]bool{},
		inbound:   NewWindow[netip.Addr, *Distinct[string]](c.MaxSources, c.Window),
		outbound:  NewWindow[string, *Distinct[netip.AddrPort]](c.MaxSources, c.Window),
		seenTools: NewWindow[string, struct{}](c.MaxSources, 24*time.Hour),
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
		Description: "Many ports or hosts probed within a window: per remote source (sockets on this host), " +
			"per process (SYN_SENT and failed attempts), kernel counter spikes (OutRsts/NoPorts, AttemptFails), known scanner tools.",
		Thresholds: map[string]any{
			"window": d.cfg.Window.String(), "inbound_ports": d.cfg.InboundPorts,
			"outbound_ports": d.cfg.OutboundPorts, "outbound_hosts": d.cfg.OutboundHosts,
			"counter_window": d.cfg.CounterWindow.String(), "closed_port_probes": d.cfg.ClosedPortProbes,
			"attempt_fails": d.cfg.AttemptFails, "known_scanners": d.cfg.KnownScanners,
		},
	}}
}

// ephemeralLow is the bottom of Linux's default ip_local_port_range.
const ephemeralLow = 32768

// inboundAttempt reports whether s looks like a connection a remote peer
// opened to this host: to a listening port, or (listener gone, TIME_WAIT /
// SYN_RECV) to a low local port from an unprivileged remote port.
func inboundAttempt(snap *collector.Snapshot, env *Env, s *collector.Socket) bool {
	if s.Proto != "tcp" || !s.Remote.IsValid() || IsListener(s) || s.Remote.Addr().Unmap().IsLoopback() {
		return false
	}
	if Direction(snap, env, s) == DirIngress {
		return true
	}
	switch s.State {
	case "SYN_RECV", "TIME_WAIT", "NEW_SYN_RECV":
		return s.Local.Port() < ephemeralLow && s.Remote.Port() >= 1024
	}
	return false
}

func (d *portScan) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	var out []Alert
	touchedIn := map[netip.Addr]bool{}
	touchedOut := map[string]int32{}

	visit := func(s *collector.Socket) {
		if inboundAttempt(snap, env, s) {
			src := s.Remote.Addr().Unmap()
			dist := *d.inbound.Touch(src, now, func() *Distinct[string] {
				return NewDistinct[string](d.cfg.Window, 4*d.cfg.InboundPorts)
			})
			dist.Add(fmt.Sprintf("%s/%d", s.Proto, s.Local.Port()), now)
			touchedIn[src] = true
			return
		}
		if s.Proto == "tcp" && s.State == "SYN_SENT" && s.Remote.IsValid() {
			key := OwnerKey(snap, env, s)
			if s.PID > 0 {
				key = fmt.Sprintf("%s[%d]", key, s.PID)
			}
			dist := *d.outbound.Touch(key, now, func() *Distinct[netip.AddrPort] {
				return NewDistinct[netip.AddrPort](d.cfg.Window, 4*max(d.cfg.OutboundPorts, d.cfg.OutboundHosts))
			})
			dist.Add(netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port()), now)
			touchedOut[key] = s.PID
		}
	}
	for i := range snap.Sockets {
		visit(&snap.Sockets[i])
	}
	for i := range snap.Closed {
		visit(&snap.Closed[i])
	}
	d.inbound.Expire(now)
	d.outbound.Expire(now)

	// Scans of this host, per observable source.
	var srcs []netip.Addr
	for src := range touchedIn {
		srcs = append(srcs, src)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Less(srcs[j]) })
	bestSrc, bestPorts := netip.Addr{}, 0
	for _, src := range srcs {
		pd, ok := d.inbound.Get(src)
		if !ok {
			continue
		}
		dist := *pd
		dist.Prune(now)
		n := dist.Len()
		if n > bestPorts {
			bestSrc, bestPorts = src, n
		}
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

	// Scans from this host, per process.
	var keys []string
	for k := range touchedOut {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		pd, ok := d.outbound.Get(key)
		if !ok {
			continue
		}
		dist := *pd
		dist.Prune(now)
		targets := dist.Items()
		portsPerHost := map[netip.Addr]map[uint16]bool{}
		hostsPerPort := map[uint16]map[netip.Addr]bool{}
		for _, t := range targets {
			if portsPerHost[t.Addr()] == nil {
				portsPerHost[t.Addr()] = map[uint16]bool{}
			}
			portsPerHost[t.Addr()][t.Port()] = true
			if hostsPerPort[t.Port()] == nil {
				hostsPerPort[t.Port()] = map[netip.Addr]bool{}
			}
			hostsPerPort[t.Port()][t.Addr()] = true
		}
		var vHost netip.Addr
		vN := 0
		for h, ps := range portsPerHost {
			if len(ps) > vN || (len(ps) == vN && h.Less(vHost)) {
				vHost, vN = h, len(ps)
			}
		}
		var hPort uint16
		hN := 0
		for p, hs := range hostsPerPort {
			if len(hs) > hN || (len(hs) == hN && p < hPort) {
				hPort, hN = p, len(hs)
			}
		}
		pid := touchedOut[key]
		var kind string
		var dest netip.AddrPort
		switch {
		case vN >= d.cfg.OutboundPorts:
			kind, dest = fmt.Sprintf("%d ports of %s", vN, vHost), netip.AddrPortFrom(vHost, 0)
		case hN >= d.cfg.OutboundHosts:
			kind, dest = fmt.Sprintf("port %d on %d hosts", hPort, hN), netip.AddrPortFrom(netip.Addr{}, hPort)
		default:
			continue
		}
		a := Alert{
			ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
			Start: dist.Earliest(), End: now,
			Message:   fmt.Sprintf("outbound port scan by %s: connection attempts to %s within %s", key, kind, d.cfg.Window),
			Transport: "tcp", Direction: DirEgress, Dest: dest,
			Process: ProcessContext(snap, env, pid),
			Evidence: map[string]any{
				"attempted_targets": len(targets), "max_ports_one_host": vN, "max_hosts_one_port": hN,
				"ports_threshold": d.cfg.OutboundPorts, "hosts_threshold": d.cfg.OutboundHosts,
				"window_seconds": d.cfg.Window.Seconds(),
			},
			Recommendation: Recommendation(ThreatPortScan), Entity: "out:" + key,
		}
		if len(snap.HostIPs) > 0 {
			a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
		}
		out = append(out, a)
	}

	out = append(out, d.counterAlerts(snap, bestSrc, bestPorts)...)
	out = append(out, d.toolAlerts(snap, env)...)
	return out
}

// counterAlerts diffs the kernel counters over the counter window.
func (d *portScan) counterAlerts(snap *collector.Snapshot, bestSrc netip.Addr, bestPorts int) []Alert {
	c := snap.Counters
	if !c.Valid {
		return nil
	}
	now := snap.Time
	d.samples = append(d.samples, counterSample{now, c.TCPOutRsts, c.UDPNoPorts, c.TCPAttemptFails})
	cut := 0
	for cut < len(d.samples)-1 && now.Sub(d.samples[cut].t) > d.cfg.CounterWindow {
		cut++
	}
	if cut > 0 || len(d.samples) > maxCounterSamples {
		cut = max(cut, len(d.samples)-maxCounterSamples)
		d.samples = append(d.samples[:0], d.samples[cut:]...)
	}
	old := d.samples[0]
	if len(d.samples) < 2 {
		return nil
	}
	delta := func(cur, prev uint64) uint64 {
		if cur < prev { // counter reset (namespace or reboot)
			return 0
		}
		return cur - prev
	}
	rsts, noPorts, fails := delta(c.TCPOutRsts, old.rsts), delta(c.UDPNoPorts, old.noPorts), delta(c.TCPAttemptFails, old.fails)
	span := now.Sub(old.t)
	var out []Alert
	if probes := rsts + noPorts; probes >= d.cfg.ClosedPortProbes {
		a := Alert{
			ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
			Start: old.t, End: now, Direction: DirIngress,
			Evidence: map[string]any{
				"tcp_out_rsts": rsts, "udp_no_ports": noPorts, "threshold": d.cfg.ClosedPortProbes,
				"window_seconds": span.Seconds(),
			},
			Recommendation: Recommendation(ThreatPortScan), Entity: "counters:closed_ports",
		}
		if bestPorts > 0 {
			a.Source = netip.AddrPortFrom(bestSrc, 0)
			a.Evidence["likely_source_ports_seen"] = bestPorts
			a.Message = fmt.Sprintf("probes of closed ports: %d TCP resets and %d UDP port-unreachables sent in %s; likely source %s (seen on %d local ports)",
				rsts, noPorts, span, bestSrc, bestPorts)
		} else {
			a.Message = fmt.Sprintf("probes of closed ports: %d TCP resets and %d UDP port-unreachables sent in %s; source not observable (closed-port probes leave no socket)",
				rsts, noPorts, span)
		}
		out = append(out, a)
		d.samples = d.samples[len(d.samples)-1:] // alert once per spike
	}
	if fails >= d.cfg.AttemptFails {
		out = append(out, Alert{
			ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
			Start: old.t, End: now, Direction: DirEgress,
			Message: fmt.Sprintf("outbound scan: %d failed TCP connection attempts in %s (host-wide counter; process not attributable from the counter)", fails, span),
			Evidence: map[string]any{
				"tcp_attempt_fails": fails, "threshold": d.cfg.AttemptFails, "window_seconds": span.Seconds(),
			},
			Recommendation: Recommendation(ThreatPortScan), Entity: "counters:attempt_fails",
		})
		if len(d.samples) > 1 {
			d.samples = d.samples[len(d.samples)-1:]
		}
	}
	return out
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
