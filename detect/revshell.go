package detect

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netsentinel/netsentinel/collector"
)

// Reverse shells without a socket on stdio (rule reverse_shell). A shell or
// interpreter is relayed to the network when a process near it — its pty's
// session (the session leader's parent holds the pty master in socat
// EXEC:...,pty and Python pty relays), its pipeline (the other end of its
// stdin/stdout pipe: mkfifo + nc, nc | sh | nc) or its parent (socat EXEC
// without pty gives the child a socketpair) — holds an outbound connection to
// a non-loopback host. The relay is found by what it does, never by its name:
// a renamed socat or nc is still a relay.
//
// How the relay's connection is tied to the relay:
//   - privileged: the connection's owner (Socket.PID), or a socket on the
//     relay's own stdio; the shell's fds say whether it is on a pty, a pipe
//     whose other end the relay holds (same pipe inode on the relay's stdio),
//     or a socketpair;
//   - unprivileged (other users' fds unreadable): the connection has no
//     owner, so it is tied to a relay of the socket's user whose command line
//     names both its remote address and port (socat TCP:a:p, nc a p, gawk
//     /inet/tcp/0/a/p, python connect(("a",p))); the shell's stdio is
//     unknown, so its place (pty session from stat, pipeline or parent) is
//     taken from the process tree.

// relayRole is how a relay is related to the shell.
const (
	relayPTY      = "pty session"   // the pty master's holder, else the parent of the shell's session leader
	relayPipe     = "pipe"          // the other end of a stdio pipe (same inode)
	relayParent   = "parent"        // the parent, feeding the shell's stdio
	relayPipeline = "pipeline peer" // same process group or parent as the shell (unprivileged)
	relaySelf     = "self"          // an interpreter holding the connection itself, with a reverse-shell idiom (gawk /inet/, perl IO::Socket)
)

// revIndex indexes one snapshot for relay look-ups. The socket indexes
// (byPID, unowned) are built on the first conn call: most polls ask only
// about the process tree.
type revIndex struct {
	kind     func(p *collector.Process) (string, string)
	snap     *collector.Snapshot
	env      *Env
	byPID    map[int32]*collector.Socket    // an owner's first outbound connection (nil until built)
	unowned  map[uint32][]*collector.Socket // outbound, no owner, by socket UID
	children map[int32][]int32
	pgroup   map[int32][]int32
}

func newRevIndex(snap *collector.Snapshot, env *Env) *revIndex {
	x := &revIndex{snap: snap, env: env, children: map[int32][]int32{}, pgroup: map[int32][]int32{}}
	for pid, p := range snap.Processes {
		if p == nil {
			continue
		}
		x.children[p.PPID] = append(x.children[p.PPID], pid)
		if p.PGID > 0 {
			x.pgroup[p.PGID] = append(x.pgroup[p.PGID], pid)
		}
	}
	return x
}

func (x *revIndex) indexSockets() {
	x.byPID, x.unowned = map[int32]*collector.Socket{}, map[uint32][]*collector.Socket{}
	x.env.visitSockets(x.snap, quietRelayConn, func(s *collector.Socket) bool {
		if s.PID > 0 && x.byPID[s.PID] != nil {
			// A relay is tied to its first outbound connection: a proxy's
			// thousands of others are neither read nor kept (not quiet:
			// unread).
			return false
		}
		if !outboundConn(x.snap, x.env, s) {
			return true // protocol, state and Direction only
		}
		if s.PID > 0 {
			x.byPID[s.PID] = s
		} else {
			x.unowned[s.UID] = append(x.unowned[s.UID], s)
		}
		return false
	})
}

// outboundConn reports a connection this host opened to a non-loopback peer:
// TCP being set up or established, or connected UDP.
func outboundConn(snap *collector.Snapshot, env *Env, s *collector.Socket) bool {
	if s.Proto == collector.ProtoTCP && s.State != collector.StateEstablished && s.State != collector.StateSynSent {
		return false
	}
	return Direction(snap, env, s) == DirEgress
}

// relayTie is a relay's connection and how it was tied to the relay.
type relayTie struct {
	sock *collector.Socket
	// inferred: the socket had no readable owner; the relay's command line
	// names its remote address and port.
	inferred bool
}

// conn returns the outbound connection held by relay, if any.
func (x *revIndex) conn(relay *collector.Process) (relayTie, bool) {
	if relay == nil {
		return relayTie{}, false
	}
	if x.byPID == nil {
		x.indexSockets()
	}
	if s := x.byPID[relay.PID]; s != nil {
		return relayTie{sock: s}, true
	}
	for _, ino := range relay.StdioSockets {
		if s := x.env.stdioSocket(x.snap, ino); s != nil && outboundConn(x.snap, x.env, s) {
			return relayTie{sock: s}, true
		}
	}
	if len(relay.Cmdline) == 0 {
		return relayTie{}, false
	}
	line := strings.Join(relay.Cmdline, " ")
	for _, s := range x.unowned[relay.UID] {
		if namesEndpoint(line, s.Remote) {
			return relayTie{sock: s, inferred: true}, true
		}
	}
	return relayTie{}, false
}

// namesEndpoint reports whether line holds the address and the port of ap as
// separate tokens (not inside a longer number or address): "TCP:a:p",
// "a p", "/inet/tcp/0/a/p", `("a",p)`.
func namesEndpoint(line string, ap netip.AddrPort) bool {
	return hasToken(line, ap.Addr().Unmap().String()) && hasToken(line, strconv.Itoa(int(ap.Port())))
}

func hasToken(line, tok string) bool {
	inTok := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':' && strings.Contains(tok, ":")
	}
	for i := 0; ; {
		j := strings.Index(line[i:], tok)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(tok)
		if (j == 0 || !inTok(line[j-1])) && (end == len(line) || !inTok(line[end])) {
			return true
		}
		i = j + 1
	}
}

// relayFound is one relay of a shell.
type relayFound struct {
	relay *collector.Process
	role  string
	fd    int    // the shell's fd it feeds, -1 when unknown (unprivileged)
	via   string // what the fd is: "/dev/pts/3", "pipe", "socketpair", or the tree relation
	tie   relayTie
	// master: the relay holds the pty's master side (/dev/ptmx with its
	// tty-index, read from the relay's fds), not only the process tree.
	master bool
}

// relays finds the network relay of p, or nil. With p's stdio readable the
// relation is checked on its fds; otherwise it is taken from the process tree.
//
// With both set (a process of no shell shape, judged by its stdio alone),
// its stdin and its stdout or stderr must both be relayed, from and to the
// same host (nc | x | nc).
func (x *revIndex) relays(p *collector.Process, both bool) *relayFound {
	env, snap := x.env, x.snap
	parent := env.Process(snap, p.PPID)
	if p.PPID == p.PID {
		parent = nil
	}
	// The pty master side: the session leader's parent (socat's or
	// python's child calls setsid, then runs the shell).
	ptyRelay := func() *collector.Process {
		if p.Session <= 0 {
			return nil
		}
		if p.Session == p.PID {
			return parent
		}
		if leader := env.Process(snap, p.Session); leader != nil {
			return env.Process(snap, leader.PPID)
		}
		return nil
	}
	try := func(r *collector.Process, role string, fd int, via string) *relayFound {
		if r == nil || r.PID == p.PID || r.PID <= 1 {
			return nil
		}
		if tie, ok := x.conn(r); ok {
			return &relayFound{relay: r, role: role, fd: fd, via: via, tie: tie}
		}
		return nil
	}
	// The interpreter is its own relay: gawk's /inet/tcp coprocess, a perl
	// or ruby one-liner reading commands from its socket and running them.
	if kind, _ := x.kind(p); (kind == "interpreter" || isAwk(p)) && reverseIdiom(p.Cmdline) != "" {
		if tie, ok := x.conn(p); ok {
			return &relayFound{relay: p, role: relaySelf, fd: -1, via: "its own connection", tie: tie}
		}
	}
	if p.Stdio != nil {
		var in, out *relayFound
		stdinFed := false // stdin from a pipe, FIFO or socketpair, not a terminal or file
		for _, f := range p.Stdio {
			var got *relayFound
			switch f.Kind {
			case collector.StdioPTY:
				relay := ptyRelay()
				if f.Peer > 0 { // the master's holder, read from its fds
					relay = env.Process(snap, f.Peer)
				}
				if got = try(relay, relayPTY, f.FD, f.Path); got != nil {
					got.master = f.Peer > 0
				}
			case collector.StdioPipe, collector.StdioFIFO:
				if f.FD == 0 {
					stdinFed = true
				}
				for _, q := range x.pipePeers(p, true) {
					if holdsInode(q, f.Kind, f.Inode) {
						if got = try(q, relayPipe, f.FD, f.Kind); got != nil {
							break
						}
					}
				}
				if got == nil {
					got = try(parent, relayParent, f.FD, f.Kind)
				}
			case collector.StdioUnix:
				if f.FD == 0 {
					stdinFed = true
				}
				got = try(parent, relayParent, f.FD, "socketpair")
			}
			if got == nil {
				continue
			}
			if got.role == relayPTY {
				return got // a terminal driven from the network
			}
			if f.FD == 0 {
				if in == nil {
					in = got
				}
			} else if out == nil {
				out = got
			}
		}
		switch {
		case both:
			// One host on both ends (nc c2 p | x | nc c2 q); two hosts is a
			// copy pipeline (ssh a 'tar c' | pv | ssh b 'tar x').
			if in != nil && out != nil && in.tie.sock.Remote.Addr() == out.tie.sock.Remote.Addr() {
				return in
			}
		case in != nil:
			return in // commands from the network
		case out != nil && stdinFed:
			// Output to the network with stdin from a pipe or FIFO (the
			// mkfifo loop feeds it through cat): a shell talking to the network.
			return out
		}
		return nil
	}
	if both {
		return nil // needs the fds
	}
	// Unprivileged: the process tree only.
	if n, ok := collector.PTSIndex(p.TTY); ok {
		return try(ptyRelay(), relayPTY, -1, "/dev/pts/"+strconv.Itoa(n))
	}
	if p.TTY != 0 {
		return nil // a console or serial terminal
	}
	// A process that names the endpoint itself is the holder or the
	// pipeline's builder (sh -c "... | nc a p"), not a relayed shell; its
	// launcher (timeout, sudo) names it too.
	own := strings.Join(p.Cmdline, " ")
	plausible := func(got *relayFound) bool {
		return got != nil && !(got.tie.inferred && namesEndpoint(own, got.tie.sock.Remote))
	}
	if got := try(parent, relayParent, -1, "parent"); plausible(got) {
		return got
	}
	for _, q := range x.pipePeers(p, false) {
		if got := try(q, relayPipeline, -1, "pipeline"); plausible(got) {
			return got
		}
	}
	return nil
}

// pipePeers are the processes that may hold the other end of p's stdio
// pipes: its process group (a pipeline) and, when the pipe inode is checked
// (siblings), the other children of its parent.
func (x *revIndex) pipePeers(p *collector.Process, siblings bool) []*collector.Process {
	var out []*collector.Process
	seen := map[int32]bool{p.PID: true}
	add := func(pids []int32) {
		for _, pid := range pids {
			if !seen[pid] && len(out) < 64 {
				seen[pid] = true
				if q := x.snap.Processes[pid]; q != nil {
					out = append(out, q)
				}
			}
		}
	}
	if p.PGID > 1 {
		add(x.pgroup[p.PGID])
	}
	if siblings && p.PPID > 1 {
		add(x.children[p.PPID])
	}
	return out
}

// holdsInode reports whether q has the pipe or FIFO inode on its stdio.
func holdsInode(q *collector.Process, kind string, ino uint64) bool {
	for _, f := range q.Stdio {
		if f.Kind == kind && f.Inode == ino {
			return true
		}
	}
	return false
}

// shellShaped reports a process that runs like a shell whatever its name:
// a login shell (argv[0] "-bash"), an interactive flag (-i), or "-c CMD".
func shellShaped(p *collector.Process) bool {
	if len(p.Cmdline) == 0 {
		return false
	}
	if strings.HasPrefix(p.Cmdline[0], "-") && len(p.Cmdline[0]) > 1 {
		return true
	}
	// Only the leading options: "timeout 25 sh -c ..." is not itself a shell.
	for _, a := range p.Cmdline[1:] {
		if !strings.HasPrefix(a, "-") {
			break
		}
		if a == "-i" || a == "-li" || a == "-il" || a == "-c" {
			return true
		}
	}
	return false
}

// relayCandidate: p may be a relayed shell: a shell or interpreter by name,
// shaped like a shell (-i, -c, a login argv[0]), or a pty session leader
// whatever its name.
func (d *processSpawn) relayCandidate(p *collector.Process, kind string) bool {
	return d.shellLike(p, kind) || stdioPiped(p)
}

// shellLike: a shell or interpreter by name, shaped like a shell, awk, or a
// pty session leader whatever its name.
func (d *processSpawn) shellLike(p *collector.Process, kind string) bool {
	_, onPTS := collector.PTSIndex(p.TTY)
	return kind == "shell" || kind == "interpreter" || shellShaped(p) || (onPTS && p.Session == p.PID) || isAwk(p)
}

// stdioPiped: stdin and stdout are both pipes, FIFOs or socketpairs (read
// from the fds, so privileged or the sensor's own user).
func stdioPiped(p *collector.Process) bool {
	var in, out bool
	for _, f := range p.Stdio {
		switch f.Kind {
		case collector.StdioPipe, collector.StdioFIFO, collector.StdioUnix:
			in = in || f.FD == 0
			out = out || f.FD == 1
		}
	}
	return in && out
}

// isAwk: awk runs shell commands (system(), |&) and gawk opens /inet/ sockets.
func isAwk(p *collector.Process) bool {
	return anyIn(awkNames, names(p)) != ""
}

var awkNames = map[string]bool{"awk": true, "gawk": true, "mawk": true, "nawk": true, "original-awk": true}

// relayedShell returns the alert for p (a relayCandidate) when it is relayed
// to the network without a socket on its own stdio, or nil.
func (d *processSpawn) relayedShell(x *revIndex, p *collector.Process, kind, kname string, start int64) *Alert {
	snap, env := x.snap, x.env
	_, onPTS := collector.PTSIndex(p.TTY)
	r := x.relays(p, !d.shellLike(p, kind))
	if r == nil || d.relayAllowed(r.relay) {
		return nil
	}
	s := r.tie.sock
	tech := spawnTechnique(kind, kname)
	if rk, rn := d.kind(r.relay); rk == "interpreter" {
		tech = spawnTechnique(rk, rn) // a python relay is the implant: T1059.006
	} else if tech == "T1059" && (kind == "shell" || shellShaped(p) || onPTS || isAwk(p)) {
		tech = "T1059.004"
	}
	where := r.via
	if r.role == relaySelf {
		where = "runs commands from " + reverseIdiom(p.Cmdline)
	} else if r.fd >= 0 {
		where = fmt.Sprintf("fd %d on %s", r.fd, r.via)
	}
	ev := map[string]any{"kind": kind, "relay_pid": r.relay.PID, "relay": r.relay.Name, "relay_role": r.role,
		"via": r.via, "remote": s.Remote.String(), "relay_cmdline": strings.Join(capStrings(r.relay.Cmdline, 32), " ")}
	if r.fd >= 0 {
		ev["fd"] = r.fd
	}
	if r.master {
		ev["pty_master"] = "held by the relay (/dev/ptmx with the pty's tty-index on its fds)"
	}
	if r.tie.inferred {
		ev["owner"] = "inferred: the connection's owner was not readable; the relay (same user) names its address and port on its command line"
	}
	name := p.Name
	if name == "" {
		name = filepath.Base(p.Exe)
	}
	return &Alert{
		RuleID: RuleReverseShell, ThreatType: ThreatReverse, Technique: tech, Severity: SeverityCritical,
		Message: fmt.Sprintf("reverse shell: %s (pid %d) %s, relayed by %s (pid %d, %s) over a %s connection to %s",
			name, p.PID, where, r.relay.Name, r.relay.PID, r.role, s.Proto, s.Remote),
		Transport: s.Proto.String(), Direction: Direction(snap, env, s), Source: s.Local, Dest: s.Remote,
		Process: ProcessContext(snap, env, p.PID), Evidence: ev,
		Entity: fmt.Sprintf("rev:%d@%d", p.PID, start), Recommendation: Recommendation(ThreatReverse),
	}
}

// relayAllowed: remote-access agents that relay shells by design.
func (d *processSpawn) relayAllowed(r *collector.Process) bool {
	return anyIn(d.relayAllow, names(r)) != ""
}
