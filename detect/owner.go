package detect

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Owners of sockets. As root every socket with a file descriptor has a PID;
// an unprivileged sensor cannot read other users' /proc/<pid>/fd, so their
// sockets come without one. Such a socket is never pooled with every other
// unreadable socket: sock_diag reports the socket's uid, so it is keyed by
// that user. Only a socket first seen already closed (a TIME_WAIT listing
// or a destroy notification, which carry no uid) has no owner at all.

// UnknownOwner is OwnerKey's value for a socket with neither a PID nor a
// uid (first seen already closed).
const UnknownOwner = "unknown"

// OwnerKey names a socket's owner for alert entities and per-owner state:
// the process name (ProcessKey) when its PID is known; "uid:N" when only the
// socket's uid is (another user's process while unprivileged); UnknownOwner
// when neither is. The collector keeps a connection's owner from its first
// sighting with one to its end, so the key of one connection only changes
// if its owner is first unreadable and read later.
func OwnerKey(snap *collector.Snapshot, env *Env, s *collector.Socket) string {
	if s.PID > 0 {
		return ProcessKey(snap, env, s.PID)
	}
	if uidKnown(s) {
		return "uid:" + strconv.FormatUint(uint64(s.UID), 10)
	}
	return UnknownOwner
}

// uidKnown reports whether s.UID is the socket's uid: sock_diag reports it
// for a socket that has an inode (or an owner seen earlier); a TIME_WAIT
// listing and a destroy notification report 0 instead.
func uidKnown(s *collector.Socket) bool { return s.PID > 0 || s.Inode != 0 }

// OwnerEvidence adds to ev what is known of an unowned socket's owner:
// process_unknown (why there is no PID), owner_uid and owner_user (from
// a running process of that uid). Nothing is added for an owned socket.
func OwnerEvidence(snap *collector.Snapshot, s *collector.Socket, ev map[string]any) {
	if s.PID > 0 {
		return
	}
	if !uidKnown(s) {
		ev["process_unknown"] = "socket first seen closed (TIME_WAIT or its destroy notification): no owner, uid or inode reported"
		return
	}
	ev["process_unknown"] = "socket owner not readable: another user's process, and the sensor may not read its /proc/<pid>/fd"
	ev["owner_uid"] = s.UID
	if u := userName(snap, s.UID); u != "" {
		ev["owner_user"] = u
	}
}

// userName returns the name of uid from a running process of that user,
// "" when none runs.
func userName(snap *collector.Snapshot, uid uint32) string {
	for _, p := range snap.Processes {
		if p != nil && p.UID == uid && p.User != "" {
			return p.User
		}
	}
	return ""
}

// describeOwner renders a socket's owner for messages: "nc (pid 42)",
// "pid 42", "a process of user www-data (uid 33)", "a process of uid 33",
// or "an unknown process".
func describeOwner(snap *collector.Snapshot, p *ProcessInfo, s *collector.Socket) string {
	switch {
	case p != nil && s.PID <= 0:
		return fmt.Sprintf("%s (pid %d, inferred)", p.Name, p.PID)
	case p != nil:
		return fmt.Sprintf("%s (pid %d)", p.Name, p.PID)
	case s.PID > 0:
		return fmt.Sprintf("pid %d", s.PID)
	case uidKnown(s):
		if u := userName(snap, s.UID); u != "" {
			return fmt.Sprintf("a process of user %s (uid %d)", u, s.UID)
		}
		return fmt.Sprintf("a process of uid %d", s.UID)
	default:
		return "an unknown process"
	}
}

// maxChainDepth bounds the parent walk when inferred candidates are
// checked for forming one chain.
const maxChainDepth = 64

// Why InferOwner tied a socket to a process.
const (
	InferredByCmdline = "cmdline"      // its command line names the peer's address and port
	InferredBySole    = "sole_process" // the only process of the socket's user
)

// inferStartSlack is how much later than the socket's first sighting a
// process may seem to have started and still own it: FirstSeen is the poll's
// time, taken before the socket dump (which takes up to a few hundred ms at
// 50k sockets), and start times are known to a clock tick plus the estimate
// of the boot time (about 10 ms each). A process that starts and connects
// while the dump runs would otherwise be skipped.
const inferStartSlack = 500 * time.Millisecond

// InferOwner ties a socket whose owner cannot be read to a process, from
// what /proc shows every user (command lines, uids, start times, parents),
// and only where the evidence is strong. It returns the PID and the rule
// that held (InferredByCmdline or InferredBySole), or 0 and "":
//
//  1. Command line: the processes of the socket's uid, started no later than
//     the socket was first seen, whose command line names the socket's
//     remote address and port as separate tokens ("ncat 198.51.100.7 4444",
//     "TCP:198.51.100.7:4444", "/dev/tcp/198.51.100.7/4444"). One such
//     process, or several forming one parent chain (a shell and the tool it
//     started), gives the deepest; unrelated processes naming the same peer
//     give nothing, and stop the second rule too.
//  2. Sole process: the socket is open (it has an inode) and belongs to a
//     non-root uid of which exactly one process runs, started no later than
//     the socket was first seen.
//
// A socket with a PID, or whose uid is not known, is never inferred. Not
// inferred: a peer named by host name, a listener, a socket handed to a
// process of another uid, root's sockets unless a command line names them.
func InferOwner(snap *collector.Snapshot, env *Env, s *collector.Socket) (int32, string) {
	if s.PID > 0 || !uidKnown(s) {
		return 0, ""
	}
	after := func(p *collector.Process) bool {
		return !s.FirstSeen.IsZero() && !p.StartTime.IsZero() && p.StartTime.After(s.FirstSeen.Add(inferStartSlack))
	}
	if !IsListener(s) && s.Remote.IsValid() && s.Remote.Port() != 0 {
		var cands []*collector.Process
		for _, p := range snap.Processes {
			if p == nil || p.UID != s.UID || len(p.Cmdline) == 0 || after(p) {
				continue
			}
			if namesEndpoint(strings.Join(p.Cmdline, " "), s.Remote) {
				cands = append(cands, p)
			}
		}
		if p := deepestOfChain(snap, env, cands); p != nil {
			return p.PID, InferredByCmdline
		}
		if len(cands) > 0 {
			return 0, "" // unrelated processes name the peer: ambiguous
		}
	}
	if s.UID == 0 || s.Inode == 0 || s.Destroyed || s.State == collector.StateTimeWait || s.State == collector.StateClose {
		return 0, ""
	}
	var only *collector.Process
	for _, p := range snap.Processes {
		if p == nil || p.UID != s.UID {
			continue
		}
		if only != nil {
			return 0, ""
		}
		only = p
	}
	if only == nil || after(only) {
		return 0, ""
	}
	return only.PID, InferredBySole
}

// deepestOfChain returns the candidate of which every other candidate is an
// ancestor, or nil when there is none (no candidate, or unrelated ones).
func deepestOfChain(snap *collector.Snapshot, env *Env, cands []*collector.Process) *collector.Process {
	if len(cands) == 1 {
		return cands[0]
	}
	var found *collector.Process
	for _, c := range cands {
		anc := map[int32]bool{}
		for _, a := range Ancestors(snap, env, c.PID, maxChainDepth) {
			anc[a.PID] = true
		}
		all := true
		for _, o := range cands {
			if o != c && !anc[o.PID] {
				all = false
				break
			}
		}
		if all {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// ownerContext returns the process context of s's owner for an alert: the
// readable owner; else the process InferOwner ties it to, with ev["owner"]
// saying it is inferred and why; else nil. ev also gets OwnerEvidence.
func ownerContext(snap *collector.Snapshot, env *Env, s *collector.Socket, ev map[string]any) *ProcessInfo {
	if s.PID > 0 {
		return ProcessContext(snap, env, s.PID)
	}
	OwnerEvidence(snap, s, ev)
	pid, by := InferOwner(snap, env, s)
	p := ProcessContext(snap, env, pid)
	if p == nil {
		return nil
	}
	switch by {
	case InferredByCmdline:
		ev["owner"] = fmt.Sprintf("inferred: the socket's owner was not readable; %s (pid %d), a process of its user, "+
			"names its peer's address and port on its command line", p.Name, p.PID)
	case InferredBySole:
		ev["owner"] = fmt.Sprintf("inferred: the socket's owner was not readable; %s (pid %d) is the only process of "+
			"its user (uid %d) and started before the socket was seen", p.Name, p.PID, s.UID)
	}
	return p
}
