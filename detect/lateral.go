package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Lateral movement (T1021): one process reaching several internal hosts on
// remote-service ports within a window. The sub-technique follows the port:
// 22 SSH (.004), 139/445 SMB (.002), 3389 RDP (.001), 5900 VNC (.005),
// 5985/5986 WinRM (.006), 135 DCOM (.003); telnet (23) has no sub-technique.

// RuleLateralMovement is the registry name (and rule id) of the lateral movement detector.
const RuleLateralMovement = "lateral_movement"

// LateralConfig configures the lateral movement detector.
type LateralConfig struct {
	// Window over which distinct hosts count.
	Window time.Duration `yaml:"window"`
	// MinHosts is the number of distinct internal hosts that alerts.
	MinHosts int `yaml:"min_hosts"`
	// Ports maps a remote-service port to its technique id.
	Ports map[uint16]string `yaml:"ports"`
	// MaxProcesses caps the tracked (process, technique) keys.
	MaxProcesses int `yaml:"max_processes"`
}

func defaultLateralConfig() *LateralConfig {
	return &LateralConfig{
		Window:   10 * time.Minute,
		MinHosts: 3,
		Ports: map[uint16]string{
			22: "T1021.004", 23: "T1021", 135: "T1021.003", 139: "T1021.002", 445: "T1021.002",
			3389: "T1021.001", 5900: "T1021.005", 5985: "T1021.006", 5986: "T1021.006",
		},
		MaxProcesses: 10000,
	}
}

func init() { registerConfig(RuleLateralMovement, defaultLateralConfig, newLateral) }

type lateralKey struct{ proc, tech string }

type lateralState struct {
	hosts *Distinct[netip.Addr]
	ports map[uint16]bool
	pid   int32
	last  netip.AddrPort
}

type lateral struct {
	cfg  LateralConfig
	keys *Window[lateralKey, lateralState]
}

func newLateral(c LateralConfig) (*lateral, error) {
	if c.Window <= 0 || c.MinHosts < 1 {
		return nil, fmt.Errorf("window must be positive and min_hosts at least 1")
	}
	for p, tech := range c.Ports {
		if t, ok := Technique(tech); !ok || !t.Live() {
			return nil, fmt.Errorf("ports: port %d: %q is not a live ATT&CK technique", p, tech)
		}
	}
	return &lateral{cfg: c, keys: NewWindow[lateralKey, lateralState](c.MaxProcesses, c.Window)}, nil
}

func (d *lateral) Name() string { return RuleLateralMovement }

func (d *lateral) Rules() []RuleInfo {
	ports := make([]string, 0, len(d.cfg.Ports))
	for p, t := range d.cfg.Ports {
		ports = append(ports, strconv.Itoa(int(p))+"="+t)
	}
	sort.Strings(ports)
	return []RuleInfo{{
		ID: RuleLateralMovement, Name: "Lateral movement fan-out", ThreatType: ThreatLateral, Technique: "T1021",
		Severity:    SeverityCritical,
		Description: "One process connects to several internal hosts on remote-service ports (SSH, SMB, RDP, VNC, WinRM, DCOM, telnet) within a window; the sub-technique follows the port.",
		Thresholds:  map[string]any{"window": d.cfg.Window.String(), "min_hosts": d.cfg.MinHosts, "ports": ports},
	}}
}

func (d *lateral) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	self := map[netip.Addr]bool{}
	for _, a := range snap.HostIPs {
		self[a.Unmap()] = true
	}
	touched := map[lateralKey]bool{}
	visit := func(s *collector.Socket) {
		if !s.Remote.IsValid() || IsListener(s) {
			return
		}
		tech, ok := d.cfg.Ports[s.Remote.Port()]
		if !ok {
			return
		}
		ra := s.Remote.Addr().Unmap()
		if ra.IsLoopback() || self[ra] || !env.IsInternal(ra) || Direction(snap, env, s) != DirEgress {
			return
		}
		k := lateralKey{ProcessKey(snap, env, s.PID), tech}
		st := d.keys.Touch(k, now, func() lateralState {
			return lateralState{hosts: NewDistinct[netip.Addr](d.cfg.Window, 4*d.cfg.MinHosts+16), ports: map[uint16]bool{}}
		})
		st.hosts.Add(ra, now)
		if len(st.ports) < 16 {
			st.ports[s.Remote.Port()] = true
		}
		if s.PID > 0 {
			st.pid = s.PID
		}
		st.last = netip.AddrPortFrom(ra, s.Remote.Port())
		touched[k] = true
	}
	for i := range snap.Sockets {
		visit(&snap.Sockets[i])
	}
	for i := range snap.Closed {
		visit(&snap.Closed[i])
	}
	d.keys.Expire(now)

	keys := make([]lateralKey, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].proc != keys[j].proc {
			return keys[i].proc < keys[j].proc
		}
		return keys[i].tech < keys[j].tech
	})
	var out []Alert
	for _, k := range keys {
		st, ok := d.keys.Get(k)
		if !ok {
			continue
		}
		st.hosts.Prune(now)
		n := st.hosts.Len()
		if n < d.cfg.MinHosts {
			continue
		}
		hosts := st.hosts.Items()
		sort.Slice(hosts, func(i, j int) bool { return hosts[i].Less(hosts[j]) })
		hs := make([]string, 0, min(len(hosts), 20))
		for _, h := range hosts[:min(len(hosts), 20)] {
			hs = append(hs, h.String())
		}
		var ports []uint16
		for p := range st.ports {
			ports = append(ports, p)
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		a := Alert{
			ThreatType: ThreatLateral, Technique: k.tech, Severity: SeverityCritical,
			Start: st.hosts.Earliest(), End: now,
			Message:   fmt.Sprintf("lateral movement: %s reached %d internal hosts on port(s) %v within %s", k.proc, n, ports, d.cfg.Window),
			Transport: "tcp", Direction: DirEgress, Dest: st.last,
			Process: ProcessContext(snap, env, st.pid),
			Evidence: map[string]any{
				"distinct_hosts": n, "threshold": d.cfg.MinHosts, "window_seconds": d.cfg.Window.Seconds(),
				"hosts": hs, "ports": ports,
			},
			Recommendation: Recommendation(ThreatLateral), Entity: k.proc + "|" + k.tech,
		}
		if len(snap.HostIPs) > 0 {
			a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
		}
		out = append(out, a)
	}
	return out
}
