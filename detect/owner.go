package detect

import (
	"fmt"
	"strconv"

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
