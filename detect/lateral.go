package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Lateral movement (T1021): one process reaching several internal hosts with
// a remote-access client, on any port (ssh, scp, sftp, FreeRDP, VNC viewers,
// telnet), or with any process on a remote-service port; clients made for
// attacks (Impacket, evil-winrm, NetExec) alert at their first internal
// host. The sub-technique follows the client, else the port: 22 SSH (.004),
// 139/445 SMB (.002), 3389 RDP (.001), 5900 VNC (.005), 5985/5986 WinRM
// (.006), 135 DCOM (.003); telnet (23) has no sub-technique.

// RuleLateralMovement is the registry name (and rule id) of the lateral movement detector.
const RuleLateralMovement = "lateral_movement"

// LateralConfig configures the lateral movement detector.
type LateralConfig struct {
	// Window over which distinct hosts count.
	Window time.Duration `yaml:"window"`
	// MinHosts is the number of distinct internal hosts that alerts.
	MinHosts int `yaml:"min_hosts"`
	// Ports maps a remote-service port to its technique id: any process's
	// connection to one counts.
	Ports map[uint16]string `yaml:"ports"`
	// Clients maps remote-access clients (process name, executable or
	// argv[0] base name, or the script an interpreter runs) to their
	// technique id: their connections count on any port.
	Clients map[string]string `yaml:"clients"`
	// AttackTools are clients whose first internal host alerts.
	AttackTools []string `yaml:"attack_tools"`
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
		Clients:      defaultLateralClients(),
		AttackTools:  defaultAttackTools(),
		MaxProcesses: 10000,
	}
}

func init() { registerConfig(RuleLateralMovement, defaultLateralConfig, newLateral) }

type lateralKey struct{ proc, tech string }

type lateralState struct {
	hosts    *Distinct[netip.Addr]
	ports    map[uint16]bool
	pid      int32
	last     netip.AddrPort
	client   string // the remote-access client, "" for a port match
	inferred bool   // pid tied to an unowned socket by its command line
}

type lateral struct {
	cfg        LateralConfig
	keys       *Window[lateralKey, lateralState]
	clientList []string // Clients' names, sorted
	attack     map[string]bool
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
	d := &lateral{cfg: c, keys: NewWindow[lateralKey, lateralState](c.MaxProcesses, c.Window), attack: map[string]bool{}}
	for n, tech := range c.Clients {
		if t, ok := Technique(tech); !ok || !t.Live() {
			return nil, fmt.Errorf("clients: %q: %q is not a live ATT&CK technique", n, tech)
		}
		d.clientList = append(d.clientList, n)
	}
	sort.Strings(d.clientList)
	for _, n := range c.AttackTools {
		if _, ok := c.Clients[n]; !ok {
			return nil, fmt.Errorf("attack_tools: %q is not in clients", n)
		}
		d.attack[n] = true
	}
	return d, nil
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
		Description: "One process connects to several internal hosts within a window with a remote-access client (ssh, scp, sftp, FreeRDP, VNC, telnet) on any port, or with any process on remote-service ports (SSH, SMB, RDP, VNC, WinRM, DCOM, telnet); attack tools (Impacket, evil-winrm, NetExec) at their first internal host. The sub-technique follows the client, else the port.",
		Thresholds: map[string]any{"window": d.cfg.Window.String(), "min_hosts": d.cfg.MinHosts, "ports": ports,
			"clients": len(d.cfg.Clients), "attack_tools": d.cfg.AttackTools},
		Sees: Visibility{
			Privileged:   "Every outbound connection to home_net with its owning process: clients on any port, any process on remote-service ports. A connection that opens and closes between two polls comes only from its destroy event, without an owner: it counts on a remote-service port only.",
			Unprivileged: "Other users' connections to remote-service ports by socket and UID; a client on another port only when a client process of the socket's UID names the destination address on its command line (a host name from ssh_config or /etc/hosts, or a connection that ends between polls, is missed).",
		},
	}}
}

func (d *lateral) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	self := map[netip.Addr]bool{}
	for _, a := range snap.HostIPs {
		self[a.Unmap()] = true
	}
	touched := map[lateralKey]bool{}
	var clients map[ownerAddr]clientRef // built on first need
	known := map[int32]string{}         // pid -> client ("" none), per poll
	// visit returns true when it ignored s for reasons that hold as long as
	// s is listed unchanged (quiet.go): before the process is looked at.
	visit := func(s *collector.Socket) (quiet bool) {
		if !s.Remote.IsValid() || IsListener(s) {
			return true
		}
		ra := s.Remote.Addr().Unmap()
		if ra.IsLoopback() || self[ra] || !env.IsInternal(ra) || Direction(snap, env, s) != DirEgress {
			return true
		}
		pid, inferred := s.PID, false
		if pid <= 0 && !s.Destroyed {
			if clients == nil {
				clients = d.clientIndex(snap)
			}
			if pid = d.inferOwner(clients, s); pid > 0 {
				inferred = true
			}
		}
		p := env.Process(snap, pid)
		client, ok := known[pid]
		if !ok {
			client = d.client(p)
			known[pid] = client
		}
		var tech string
		if client != "" {
			tech = d.clientTechnique(client, p, s.Remote.Port())
		} else if t, ok := d.cfg.Ports[s.Remote.Port()]; ok {
			tech = t
		} else {
			return false
		}
		pk := ProcessKey(snap, env, pid)
		if pid <= 0 {
			pk = OwnerKey(snap, env, s) // the socket's uid, never one pool for every unreadable owner
		}
		if client != "" && d.attack[client] {
			pk = client // python3 running psexec.py is psexec.py
		}
		k := lateralKey{pk, tech}
		st := d.keys.Touch(k, now, func() lateralState {
			return lateralState{hosts: NewDistinct[netip.Addr](d.cfg.Window, 4*d.cfg.MinHosts+16), ports: map[uint16]bool{}}
		})
		st.hosts.Add(ra, now)
		if len(st.ports) < 16 {
			st.ports[s.Remote.Port()] = true
		}
		if pid > 0 {
			st.pid, st.inferred = pid, inferred
		}
		if client != "" {
			st.client = client
		}
		st.last = netip.AddrPortFrom(ra, s.Remote.Port())
		touched[k] = true
		return false
	}
	env.visitSockets(snap, quietLateral, visit)
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
		need := d.cfg.MinHosts
		if d.attack[st.client] {
			need = 1
		}
		if n < need {
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
		ev := map[string]any{
			"distinct_hosts": n, "threshold": need, "window_seconds": d.cfg.Window.Seconds(),
			"hosts": hs, "ports": ports,
		}
		msg := fmt.Sprintf("lateral movement: %s reached %d internal hosts on port(s) %v within %s", k.proc, n, ports, d.cfg.Window)
		if st.client != "" {
			ev["client"] = st.client
			if d.attack[st.client] {
				ev["attack_tool"] = true
				msg = fmt.Sprintf("lateral movement: attack tool %s reached %d internal host(s) on port(s) %v", st.client, n, ports)
			}
		}
		if st.inferred {
			ev["owner"] = "inferred: the socket's owner was not readable; a process of its user names the destination on its command line"
		}
		a := Alert{
			ThreatType: ThreatLateral, Technique: k.tech, Severity: SeverityCritical,
			Start: st.hosts.Earliest(), End: now,
			Message:   msg,
			Transport: "tcp", Direction: DirEgress, Dest: st.last,
			Process:        ProcessContext(snap, env, st.pid),
			Evidence:       ev,
			Recommendation: Recommendation(ThreatLateral), Entity: k.proc + "|" + k.tech,
		}
		if len(snap.HostIPs) > 0 {
			a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
		}
		out = append(out, a)
	}
	return out
}
