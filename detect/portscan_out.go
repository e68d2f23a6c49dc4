package detect

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Outbound scans per process group. A scanner is often many processes: a
// shell loop of `nc -z host $p`, xargs -P, a script forking a probe per
// port. Each probe process lives milliseconds, so attempts are added up per
// group, not per process:
//
//   - group: the process's session (the leader's PID and the user) when
//     the process table says which, else its parent and user, else the
//     process itself when its parent is init (a daemon is its own scanner,
//     not one with every other daemon);
//   - an attempt whose socket has no owner (another user's socket seen
//     unprivileged, or a connect refused between two polls, known only from
//     its destroy notification) joins the group that was seen attempting the
//     same host within the window, or whose process has the host on its
//     command line (/proc/<pid>/cmdline is readable by every user); with no
//     such evidence, or two groups claiming the host, it counts under an
//     "unowned" scanner keyed by the socket's uid when the kernel reported
//     one.
type outboundScans struct {
	cfg    PortScanConfig
	groups *Window[string, *scanGroup]
	// orphans: ownerless attempts, per unowned key.
	orphans *Window[string, *Distinct[netip.AddrPort]]
	// hosts: target host -> the group seen attempting it or naming it.
	hosts *Window[netip.Addr, hostClaim]
	// per poll
	touched     map[string]bool
	argHosts    map[netip.Addr][]int32 // host -> pids whose command line names it (this poll)
	argHostsFor *collector.Snapshot
}

type scanGroup struct {
	kind    string // "session", "parent" or "process"
	leader  int32  // the session leader, the parent or the process
	uid     uint32
	proc    *collector.Process // the leader as last seen (it may exit first)
	targets *Distinct[netip.AddrPort]
	members map[int32]string // processes seen attempting (pid -> name), capped
	byArgs  int              // ownerless attempts tied through a command line
}

type hostClaim struct {
	group     string
	ambiguous bool
}

const maxGroupMembers = 64

func newOutboundScans(c PortScanConfig) *outboundScans {
	return &outboundScans{
		cfg:     c,
		groups:  NewWindow[string, *scanGroup](c.MaxSources, c.Window),
		orphans: NewWindow[string, *Distinct[netip.AddrPort]](c.MaxSources, c.Window),
		hosts:   NewWindow[netip.Addr, hostClaim](c.MaxSources, c.Window),
		touched: map[string]bool{},
	}
}

func (o *outboundScans) takeState(old *outboundScans) {
	o.groups, o.orphans, o.hosts = carry(o.groups, old.groups), carry(o.orphans, old.orphans), carry(o.hosts, old.hosts)
}

func (o *outboundScans) begin(snap *collector.Snapshot, env *Env) {
	clear(o.touched)
	o.argHosts, o.argHostsFor = nil, nil
}

// initNames are parents whose children are unrelated services.
var initNames = map[string]bool{"systemd": true, "init": true, "tini": true, "dumb-init": true}

// groupOf returns the group key of pid and fills a new group's identity.
func groupOf(snap *collector.Snapshot, env *Env, pid int32) (string, scanGroup) {
	p := env.Process(snap, pid)
	if p == nil {
		return "pid:" + strconv.Itoa(int(pid)), scanGroup{kind: "process", leader: pid}
	}
	if sid := processSession(p); sid > 1 && sid != p.PID {
		leader := env.Process(snap, sid)
		return fmt.Sprintf("session:%d:uid:%d", sid, p.UID), scanGroup{kind: "session", leader: sid, uid: p.UID, proc: leader}
	}
	if parent := env.Process(snap, p.PPID); p.PPID > 1 && parent != nil && !initNames[parent.Name] {
		return fmt.Sprintf("parent:%d@%d:uid:%d", p.PPID, parent.StartTime.UnixNano(), p.UID),
			scanGroup{kind: "parent", leader: p.PPID, uid: p.UID, proc: parent}
	}
	return fmt.Sprintf("process:%d@%d", p.PID, p.StartTime.UnixNano()), scanGroup{kind: "process", leader: p.PID, uid: p.UID, proc: p}
}

// processSession is the session ID of p (0: unknown, or a session whose
// leader is outside the sensor's PID namespace).
func processSession(p *collector.Process) int32 { return p.Session }

// add records one attempt.
func (o *outboundScans) add(snap *collector.Snapshot, env *Env, s *collector.Socket) {
	now := snap.Time
	target := netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port())
	pid, byArgs := s.PID, false
	if pid <= 0 {
		pid, byArgs = o.pidFromArgs(snap, env, s, target.Addr())
	}
	if pid <= 0 {
		key := "unowned"
		if uidKnown(s) { // the uid came with a listing, not a destroy notification
			key = "unowned:uid:" + strconv.FormatUint(uint64(s.UID), 10)
		}
		dist := *o.orphans.Touch(key, now, func() *Distinct[netip.AddrPort] { return o.newTargets() })
		dist.Add(target, now)
		o.touched[key] = true
		if c, ok := o.hosts.Get(target.Addr()); ok && !c.ambiguous {
			o.touched[c.group] = true
		}
		return
	}
	key, ident := groupOf(snap, env, pid)
	g := *o.groups.Touch(key, now, func() *scanGroup {
		ng := ident
		ng.targets, ng.members = o.newTargets(), map[int32]string{}
		return &ng
	})
	if ident.proc != nil {
		g.proc = ident.proc
	}
	g.targets.Add(target, now)
	if len(g.members) < maxGroupMembers {
		g.members[pid] = ProcessName(snap, env, pid)
	}
	if byArgs {
		g.byArgs++
	}
	o.touched[key] = true
	c := o.hosts.Touch(target.Addr(), now, nil)
	switch {
	case c.group == "":
		c.group = key
	case c.group != key:
		c.ambiguous = true
	}
}

func (o *outboundScans) newTargets() *Distinct[netip.AddrPort] {
	return NewDistinct[netip.AddrPort](o.cfg.Window, 4*max(o.cfg.OutboundPorts, o.cfg.OutboundHosts))
}

// pidFromArgs returns a process of the snapshot whose command line names
// host (namesAddr: an address argument, user@addr, addr:port, a URL; or a
// script opening /dev/tcp/host/...), of the
// socket's user when the kernel reported one, or 0 when none does or
// processes of two groups do.
func (o *outboundScans) pidFromArgs(snap *collector.Snapshot, env *Env, s *collector.Socket, host netip.Addr) (int32, bool) {
	if o.argHostsFor != snap {
		o.argHosts, o.argHostsFor = map[netip.Addr][]int32{}, snap
	}
	pids, done := o.argHosts[host]
	if !done {
		for pid, p := range snap.Processes {
			if p != nil && len(p.Cmdline) > 1 && (namesAddr(p.Cmdline[1:], host) || devTCPNames(p.Cmdline[1:], host)) {
				pids = append(pids, pid)
			}
		}
		sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
		o.argHosts[host] = pids
	}
	var pid int32
	var first string
	names := make(map[int32]bool, len(pids))
	for _, id := range pids {
		names[id] = true
	}
	for _, id := range pids {
		p := snap.Processes[id]
		if uidKnown(s) && p.UID != s.UID {
			continue
		}
		if names[p.PPID] && p.PPID != id {
			continue // a forked copy (a subshell) of a process that names it too
		}
		// Several processes may name the host (a script and the probe it
		// runs): one group is evidence, two groups are not.
		k, _ := groupOf(snap, env, id)
		if first != "" && k != first {
			return 0, false
		}
		first, pid = k, id
	}
	return pid, pid > 0
}

// devTCPNames reports whether one of args (a shell script) opens
// bash's /dev/tcp/HOST/PORT or /dev/udp/HOST/PORT with HOST a, as Atomic Red
// Team's T1046 port-scan loop does.
func devTCPNames(args []string, a netip.Addr) bool {
	for _, arg := range args {
		for rest := arg; ; {
			i := strings.Index(rest, "/dev/tcp/")
			if j := strings.Index(rest, "/dev/udp/"); j >= 0 && (i < 0 || j < i) {
				i = j
			}
			if i < 0 {
				break
			}
			rest = rest[i+len("/dev/tcp/"):]
			h, _, _ := strings.Cut(rest, "/")
			if x, err := netip.ParseAddr(h); err == nil && x.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// alerts evaluates the groups touched at this poll.
func (o *outboundScans) alerts(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	o.groups.Expire(now)
	o.orphans.Expire(now)
	o.hosts.Expire(now)
	keys := make([]string, 0, len(o.touched))
	for k := range o.touched {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Alert
	for _, key := range keys {
		if a, ok := o.evaluate(snap, env, key); ok {
			out = append(out, a)
		}
	}
	return out
}

// targetsOf gathers key's attempts within the window: its own and the
// ownerless ones to hosts it claims (for a group), or the ownerless ones to
// hosts no group claims (for an unowned key). It also returns how many were
// joined from ownerless sockets.
func (o *outboundScans) targetsOf(now time.Time, key string) (targets []netip.AddrPort, joined int, earliest time.Time) {
	seen := map[netip.AddrPort]bool{}
	take := func(d *Distinct[netip.AddrPort], own bool) {
		d.Prune(now)
		for _, t := range d.Items() {
			if seen[t] {
				continue
			}
			if !own {
				c, ok := o.hosts.Get(t.Addr())
				claimed := ok && !c.ambiguous
				if strings.HasPrefix(key, "unowned") == claimed || (claimed && c.group != key) {
					continue
				}
				if claimed {
					joined++
				}
			}
			seen[t] = true
			targets = append(targets, t)
		}
		if e := d.Earliest(); !e.IsZero() && (earliest.IsZero() || e.Before(earliest)) {
			earliest = e
		}
	}
	if strings.HasPrefix(key, "unowned") {
		if d, ok := o.orphans.Get(key); ok {
			take(*d, false)
		}
		return targets, 0, earliest
	}
	g, ok := o.groups.Get(key)
	if !ok {
		return nil, 0, earliest
	}
	take((*g).targets, true)
	o.orphans.Range(func(_ string, d **Distinct[netip.AddrPort]) bool {
		take(*d, false)
		return true
	})
	return targets, joined, earliest
}

func (o *outboundScans) evaluate(snap *collector.Snapshot, env *Env, key string) (Alert, bool) {
	now := snap.Time
	targets, joined, earliest := o.targetsOf(now, key)
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
	var kind string
	var dest netip.AddrPort
	switch {
	case vN >= o.cfg.OutboundPorts:
		kind, dest = fmt.Sprintf("%d ports of %s", vN, vHost), netip.AddrPortFrom(vHost, 0)
	case hN >= o.cfg.OutboundHosts:
		kind, dest = fmt.Sprintf("port %d on %d hosts", hPort, hN), netip.AddrPortFrom(netip.Addr{}, hPort)
	default:
		return Alert{}, false
	}
	a := Alert{
		ThreatType: ThreatPortScan, Technique: "T1046", Severity: SeverityHigh,
		Start: earliest, End: now,
		Transport: "tcp", Direction: DirEgress, Dest: dest,
		Evidence: map[string]any{
			"attempted_targets": len(targets), "max_ports_one_host": vN, "max_hosts_one_port": hN,
			"ports_threshold": o.cfg.OutboundPorts, "hosts_threshold": o.cfg.OutboundHosts,
			"window_seconds": o.cfg.Window.Seconds(),
		},
		Recommendation: Recommendation(ThreatPortScan),
	}
	if len(snap.HostIPs) > 0 {
		a.Source = netip.AddrPortFrom(snap.HostIPs[0], 0)
	}
	if strings.HasPrefix(key, "unowned") {
		who := "an unattributed process (socket owner not readable, no command line naming the target)"
		if uid, ok := strings.CutPrefix(key, "unowned:uid:"); ok {
			who = "an unattributed process of uid " + uid + " (socket owner not readable)"
			a.Evidence["socket_uid"] = uid
		}
		a.Message = fmt.Sprintf("outbound port scan by %s: connection attempts to %s within %s", who, kind, o.cfg.Window)
		a.Entity = "out:" + key
		return a, true
	}
	gp, _ := o.groups.Get(key)
	g := *gp
	members := make([]int32, 0, len(g.members))
	names := map[string]bool{}
	for pid, n := range g.members {
		members = append(members, pid)
		if n != "" {
			names[n] = true
		}
	}
	sort.Slice(members, func(i, j int) bool { return members[i] < members[j] })
	var nameList []string
	for n := range names {
		nameList = append(nameList, n)
	}
	sort.Strings(nameList)
	a.Process = ProcessContext(snap, env, g.leader)
	if a.Process == nil && g.proc != nil {
		a.Process = processInfoOf(g.proc)
	}
	leaderName := ProcessKey(snap, env, g.leader)
	if a.Process != nil {
		leaderName = a.Process.Name
	}
	a.Entity = fmt.Sprintf("out:%s[%d]", leaderName, g.leader)
	a.Evidence["group"] = g.kind
	a.Evidence["group_leader_pid"] = g.leader
	a.Evidence["uid"] = g.uid
	a.Evidence["processes_seen"] = len(members)
	a.Evidence["process_names"] = nameList
	a.Evidence["pids"] = members
	if joined > 0 || g.byArgs > 0 {
		a.Evidence["ownerless_attempts_joined"] = joined
		a.Evidence["attempts_tied_by_command_line"] = g.byArgs
	}
	switch g.kind {
	case "process":
		a.Message = fmt.Sprintf("outbound port scan by %s (pid %d): connection attempts to %s within %s", leaderName, g.leader, kind, o.cfg.Window)
	default:
		a.Message = fmt.Sprintf("outbound port scan by the processes of %s %s (pid %d, uid %d): connection attempts to %s within %s from %d processes (%s)",
			g.kind, leaderName, g.leader, g.uid, kind, o.cfg.Window, len(members), strings.Join(nameList, ", "))
	}
	return a, true
}

// processInfoOf is ProcessContext for a process no longer in any table.
func processInfoOf(p *collector.Process) *ProcessInfo {
	info := &ProcessInfo{PID: p.PID, Name: p.Name, Executable: p.Exe, User: p.User, UID: p.UID, PPID: p.PPID}
	if len(p.Cmdline) > 0 {
		info.Args = append([]string(nil), p.Cmdline[:min(len(p.Cmdline), maxArgs)]...)
	}
	return info
}
