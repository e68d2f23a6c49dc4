package dashboard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

// Event is one alert made ready to show: every string is Safe.
type Event struct {
	Time     time.Time
	Severity detect.Severity
	Rule     string
	TechID   string
	TechName string
	Tactic   string
	Process  string
	Dest     string
	search   string // lower-case text the filter looks in
	alert    detect.Alert
}

// Conn is one active connection.
type Conn struct {
	Proto     string
	Local     string
	Remote    string
	State     string
	PID       int32
	Process   string
	Bytes     uint64 // sent + received (TCP)
	External  bool   // the remote address is outside home_net
	remote    netip.AddrPort
	search    string
	procLower string
}

func (c *Conn) matches(filter string) bool {
	return filter == "" || strings.Contains(c.search, filter) || strings.Contains(c.procLower, filter)
}

// Listener is one listening socket.
type Listener struct {
	Proto   string
	Addr    string
	Port    uint16
	PID     int32
	Process string
	Risky   bool
}

// System holds host metrics from the snapshot (gopsutil; /proc/net/dev).
type System struct {
	Valid                          bool
	CPU, Mem                       float64
	ErrIn, ErrOut, DropIn, DropOut uint64
}

// SinkStat is one sink's delivery counters.
type SinkStat struct {
	Name                       string
	Delivered, Failed, Spooled uint64
}

// sevName is the severity's label; it is always shown, so NO_COLOR loses
// nothing.
func sevName(s detect.Severity) string {
	switch s {
	case detect.SeverityCritical:
		return "CRIT"
	case detect.SeverityHigh:
		return "HIGH"
	case detect.SeverityMedium:
		return "MED"
	case detect.SeverityLow:
		return "LOW"
	}
	return "?"
}

// newEvent turns an alert into a display row.
func newEvent(a *detect.Alert, lookup schemas.TechniqueLookup) Event {
	e := Event{Time: a.Time, Severity: a.Severity, Rule: Safe(a.RuleID), TechID: Safe(a.Technique), alert: *a}
	if lookup != nil {
		if ref, ok := lookup(a.Technique); ok {
			e.TechName = Safe(ref.Name)
			if ref.ParentName != "" && ref.ParentName != ref.Name {
				e.TechName = Safe(ref.ParentName + ": " + ref.Name)
			}
			names := make([]string, 0, len(ref.Tactics))
			for _, t := range ref.Tactics {
				names = append(names, t.Name)
			}
			e.Tactic = Safe(strings.Join(names, ", "))
		}
	}
	if a.Process != nil {
		e.Process = Safe(a.Process.Name)
		if a.Process.PID > 0 {
			e.Process = fmt.Sprintf("%s[%d]", e.Process, a.Process.PID)
		}
	}
	switch {
	case a.Dest.IsValid():
		e.Dest = endpoint(a.Dest)
	case a.Source.IsValid(): // a listener: where it listens
		e.Dest = "on " + endpoint(a.Source)
	}
	e.search = strings.ToLower(strings.Join([]string{e.Rule, sevName(e.Severity), e.TechID, e.TechName, e.Tactic, e.Process, e.Dest, Safe(a.Message)}, "\x00"))
	return e
}

func endpoint(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// details are the detail pane's lines for e (unwrapped, Safe).
func (e *Event) details() []string {
	a := &e.alert
	l := []string{
		fmt.Sprintf("%s  %s  %s  %s (%s)  count %d", a.Time.Format(time.RFC3339), sevName(a.Severity), Safe(a.ID), e.Rule, Safe(a.ThreatType), a.Count),
		fmt.Sprintf("Technique %s %s; tactic %s", e.TechID, e.TechName, e.Tactic),
		"Message: " + Safe(a.Message),
	}
	if a.Source.IsValid() || a.Dest.IsValid() {
		flow := endpoint(a.Source)
		if a.Dest.IsValid() {
			flow += " -> " + endpoint(a.Dest)
		}
		l = append(l, fmt.Sprintf("Flow: %s  %s %s", flow, Safe(a.Transport), Safe(a.Direction)))
	}
	if p := a.Process; p != nil {
		l = append(l, fmt.Sprintf("Process: pid %d name %s exe %s user %s (uid %d) parent %d %s",
			p.PID, Safe(p.Name), Safe(p.Executable), Safe(p.User), p.UID, p.PPID, Safe(p.ParentName)))
	}
	if len(a.Evidence) > 0 {
		l = append(l, "Evidence:")
		keys := make([]string, 0, len(a.Evidence))
		for k := range a.Evidence {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := json.Marshal(a.Evidence[k])
			if err != nil {
				v = []byte(fmt.Sprint(a.Evidence[k]))
			}
			l = append(l, "  "+Safe(k)+": "+Safe(string(v)))
		}
	}
	if a.Recommendation != "" {
		l = append(l, "Recommendation: "+Safe(a.Recommendation))
	}
	if p := a.Process; p != nil && len(p.Args) > 0 {
		args := make([]string, 0, len(p.Args))
		for i, s := range p.Args {
			if i == 16 {
				args = append(args, fmt.Sprintf("… %d more", len(p.Args)-i))
				break
			}
			args = append(args, Safe(s))
		}
		l = append(l, "Args: "+strings.Join(args, " "))
	}
	return l
}

// classify picks connections and listeners out of a snapshot.
type classify struct {
	homeNet []netip.Prefix
	risky   detect.PortSet
}

// external reports an address outside home_net, loopback and link-local
// (the engine's definition).
func (c *classify) external(a netip.Addr) bool {
	env := detect.Env{Common: detect.Common{HomeNet: c.homeNet}}
	return env.IsExternal(a)
}

// rows builds the connection and listener rows of snap.
func (c *classify) rows(snap *collector.Snapshot) ([]Conn, []Listener) {
	if snap == nil {
		return nil, nil
	}
	conns := make([]Conn, 0, len(snap.Sockets))
	var lis []Listener
	type procName struct{ safe, lower string }
	names := map[int32]procName{}
	name := func(pid int32) procName {
		if pid <= 0 {
			return procName{}
		}
		if n, ok := names[pid]; ok {
			return n
		}
		var n procName
		if p := snap.Processes[pid]; p != nil {
			n.safe = Safe(p.Name)
			n.lower = strings.ToLower(n.safe)
		}
		names[pid] = n
		return n
	}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		if s.Destroyed {
			continue
		}
		if detect.IsListener(s) {
			if s.Local.Port() == 0 {
				continue
			}
			lis = append(lis, Listener{Proto: s.Proto.String(), Addr: s.Local.Addr().Unmap().String(), Port: s.Local.Port(),
				PID: s.PID, Process: name(s.PID).safe, Risky: c.risky.Has(s.Local.Port())})
			continue
		}
		if s.Proto == collector.ProtoTCP && s.State != collector.StateEstablished && s.State != collector.StateSynSent {
			continue
		}
		pn := name(s.PID)
		cn := Conn{Proto: s.Proto.String(), Local: endpoint(s.Local), Remote: endpoint(s.Remote), State: s.State.String(), PID: s.PID,
			Process: pn.safe, Bytes: s.BytesReceived + max(s.BytesSent, s.BytesAcked),
			External: c.external(s.Remote.Addr()), remote: s.Remote}
		if cn.State == "" {
			cn.State = "UNCONN"
		}
		// Addresses print in lower case already; the process name is
		// shared by all of its connections, not copied.
		cn.search, cn.procLower = cn.Proto+" "+cn.Local+" "+cn.Remote, pn.lower
		conns = append(conns, cn)
	}
	slices.SortFunc(lis, func(a, b Listener) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Addr, b.Addr))
	})
	return conns, lis
}

// sortConns orders connections by bytes (largest first) or by remote
// address; ties keep a stable order.
func sortConns(c []Conn, byBytes bool) {
	slices.SortFunc(c, func(a, b Conn) int {
		if byBytes {
			if r := cmp.Compare(b.Bytes, a.Bytes); r != 0 {
				return r
			}
		}
		return cmp.Or(a.remote.Compare(b.remote), cmp.Compare(a.Local, b.Local))
	})
}

// DefaultRiskyPorts are the listening ports marked risky: the
// suspicious_port and tor detectors' default ports, and cleartext or
// commonly attacked remote-access services (FTP, telnet, RPC, NetBIOS, SMB,
// RDP, VNC, Redis).
func DefaultRiskyPorts() detect.PortSet {
	ps, err := detect.ParsePorts(detect.DefaultSuspiciousPorts)
	if err != nil {
		ps = detect.PortSet{}
	}
	for _, p := range detect.DefaultTorPorts.Sorted() {
		ps.Add(p)
	}
	for _, p := range []uint16{21, 23, 135, 139, 445, 3389, 5900, 6379} {
		ps.Add(p)
	}
	return ps
}

func systemOf(snap *collector.Snapshot) System {
	if snap == nil {
		return System{}
	}
	m := snap.System
	return System{Valid: m != (collector.SystemMetrics{}), CPU: m.CPUPercent, Mem: m.MemoryPercent,
		ErrIn: m.ErrIn, ErrOut: m.ErrOut, DropIn: m.DropIn, DropOut: m.DropOut}
}
