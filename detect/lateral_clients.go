package detect

import (
	"net/netip"
	"path"
	"sort"
	"strings"

	"github.com/netsentinel/netsentinel/collector"
)

// Remote-access clients for the lateral movement detector: which process is
// one, by name; which technique its connections use; and, for a socket whose
// owner is not readable (another user's, unprivileged sensor), which client
// process of the socket's user names the destination on its command line.

// defaultLateralClients maps remote-access clients to their technique. A
// name is a process name (comm), an executable's base name or the script an
// interpreter runs (Impacket's examples are Python, evil-winrm is Ruby).
func defaultLateralClients() map[string]string {
	m := map[string]string{}
	add := func(tech string, names ...string) {
		for _, n := range names {
			m[n] = tech
		}
	}
	add("T1021.004", "ssh", "scp", "sftp", "dbclient")
	add("T1021.001", "xfreerdp", "xfreerdp3", "sdl-freerdp", "sdl-freerdp3", "wlfreerdp", "rdesktop")
	add("T1021.005", "vncviewer", "xtightvncviewer", "xtigervncviewer", "xvnc4viewer")
	add("T1021.006", "evil-winrm")
	add("T1021.002", "psexec.py", "smbexec.py", "atexec.py", "impacket-psexec", "impacket-smbexec", "impacket-atexec")
	add("T1021.003", "wmiexec.py", "dcomexec.py", "impacket-wmiexec", "impacket-dcomexec")
	// NetExec / CrackMapExec: the protocol argument picks the sub-technique
	// (netexecProtocols); T1021 otherwise.
	add("T1021", "crackmapexec", "cme", "nxc", "netexec", "telnet")
	return m
}

// defaultAttackTools are clients made for attacking Windows and Linux
// estates, not for administration: one internal host is enough.
func defaultAttackTools() []string {
	return []string{"evil-winrm", "psexec.py", "smbexec.py", "atexec.py", "wmiexec.py", "dcomexec.py",
		"impacket-psexec", "impacket-smbexec", "impacket-atexec", "impacket-wmiexec", "impacket-dcomexec",
		"crackmapexec", "cme", "nxc", "netexec"}
}

// netexecProtocols maps NetExec/CrackMapExec protocol arguments to techniques.
var netexecProtocols = map[string]string{
	"smb": "T1021.002", "ssh": "T1021.004", "rdp": "T1021.001", "winrm": "T1021.006", "vnc": "T1021.005", "wmi": "T1021.003",
}

// interpreters run the script named by their first non-option argument.
var interpreters = []string{"python", "ruby", "perl"}

// commLen is the kernel's limit on a process name (TASK_COMM_LEN - 1).
const commLen = 15

// clientNames are the names a process may be known by: its comm, the base
// names of its executable and argv[0], and the script an interpreter runs.
func clientNames(p *collector.Process) []string {
	names := []string{p.Name}
	if p.Exe != "" {
		names = append(names, path.Base(p.Exe))
	}
	if len(p.Cmdline) > 0 {
		a0 := path.Base(p.Cmdline[0])
		names = append(names, a0)
		if isInterpreter(a0) || isInterpreter(p.Name) {
			for _, a := range p.Cmdline[1:] {
				if !strings.HasPrefix(a, "-") {
					names = append(names, path.Base(a))
					break
				}
			}
		}
	}
	return names
}

func isInterpreter(name string) bool {
	for _, i := range interpreters {
		if strings.HasPrefix(name, i) {
			return true
		}
	}
	return false
}

// client returns the configured client name p is, or "".
func (d *lateral) client(p *collector.Process) string {
	if p == nil {
		return ""
	}
	for _, n := range clientNames(p) {
		if _, ok := d.cfg.Clients[n]; ok {
			return n
		}
	}
	// comm is cut at 15 bytes: impacket-wmiexec runs as "impacket-wmiexe".
	if len(p.Name) == commLen {
		for _, n := range d.clientList {
			if len(n) > commLen && strings.HasPrefix(n, p.Name) {
				return n
			}
		}
	}
	return ""
}

// clientTechnique is the technique of client's connection to port: the
// client's own, refined by a NetExec protocol argument or, for a generic
// client, by the port.
func (d *lateral) clientTechnique(client string, p *collector.Process, port uint16) string {
	tech := d.cfg.Clients[client]
	if tech == "T1021" && p != nil && len(p.Cmdline) > 1 {
		for _, a := range p.Cmdline[1:] {
			if t, ok := netexecProtocols[a]; ok {
				return t
			}
		}
	}
	if tech == "T1021" {
		if t, ok := d.cfg.Ports[port]; ok {
			return t
		}
	}
	return tech
}

// ownerAddr is a user and an address one of their clients names.
type ownerAddr struct {
	uid  uint32
	addr netip.Addr
}

// clientRef is the client process naming an ownerAddr; pid 0 when clients
// of different kinds name it (ambiguous).
type clientRef struct {
	pid    int32
	client string
}

// clientIndex maps (uid, address) to the client process whose command line
// names the address, for tying unowned sockets to processes. Built once per
// snapshot, only when an unowned socket needs it: its cost is one pass over
// the process table plus the arguments of the clients found.
func (d *lateral) clientIndex(snap *collector.Snapshot) map[ownerAddr]clientRef {
	idx := map[ownerAddr]clientRef{}
	pids := make([]int32, 0, len(snap.Processes))
	for pid := range snap.Processes {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		p := snap.Processes[pid]
		if p == nil || len(p.Cmdline) < 2 {
			continue
		}
		c := d.client(p)
		if c == "" {
			continue
		}
		for _, arg := range p.Cmdline[1:] {
			a, ok := argAddr(arg)
			if !ok {
				continue
			}
			k := ownerAddr{p.UID, a}
			switch prev, seen := idx[k]; {
			case !seen:
				idx[k] = clientRef{pid, c} // the lowest pid of that client
			case prev.client != c:
				idx[k] = clientRef{} // different clients: ambiguous
			}
		}
	}
	return idx
}

// inferOwner finds, for a socket with no readable owner, a client process of
// the socket's user whose command line names the remote address (as an
// argument, user@addr, addr:port or a URL with it). It returns the lowest
// such pid, or 0 when no process, or processes of different clients, match:
// only unambiguous evidence ties a socket to a process.
func (d *lateral) inferOwner(idx map[ownerAddr]clientRef, s *collector.Socket) int32 {
	if !uidKnown(s) {
		return 0
	}
	return idx[ownerAddr{s.UID, s.Remote.Addr().Unmap()}].pid
}

// namesAddr reports whether one of args names a (see argAddr).
func namesAddr(args []string, a netip.Addr) bool {
	for _, arg := range args {
		if x, ok := argAddr(arg); ok && x == a {
			return true
		}
	}
	return false
}

// argAddr is the address an argument names: "a", "user@a", "a:port",
// "[a]:port", "proto://[user@]a[:port][/...]", "domain/user:pass@a"
// (Impacket) or "/v:a[:port]" (FreeRDP).
func argAddr(arg string) (netip.Addr, bool) {
	arg = strings.TrimPrefix(arg, "/v:")
	if i := strings.Index(arg, "://"); i >= 0 {
		arg = arg[i+3:]
	}
	if i := strings.LastIndexByte(arg, '@'); i >= 0 {
		arg = arg[i+1:]
	}
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		arg = arg[:i]
	}
	if ap, err := netip.ParseAddrPort(arg); err == nil {
		return ap.Addr().Unmap(), true
	}
	arg = strings.TrimSuffix(strings.TrimPrefix(arg, "["), "]")
	if x, err := netip.ParseAddr(arg); err == nil {
		return x.Unmap(), true
	}
	// "host:port" or "host:/path" (scp) with an IPv4 host.
	if i := strings.IndexByte(arg, ':'); i > 0 {
		if x, err := netip.ParseAddr(arg[:i]); err == nil && x.Is4() {
			return x, true
		}
	}
	return netip.Addr{}, false
}
