package detect

import (
	"strconv"

	"github.com/netsentinel/netsentinel/collector"
)

// maxArgs caps the command line copied into an alert.
const maxArgs = 64

// ProcessContext returns the alert process context for pid (from the snapshot,
// else the engine's recent-process cache), with the parent's name; nil when
// the pid is unknown.
func ProcessContext(snap *collector.Snapshot, env *Env, pid int32) *ProcessInfo {
	p := env.Process(snap, pid)
	if p == nil {
		return nil
	}
	info := &ProcessInfo{
		PID:        p.PID,
		Name:       p.Name,
		Executable: p.Exe,
		User:       p.User,
		UID:        p.UID,
		PPID:       p.PPID,
	}
	if len(p.Cmdline) > 0 {
		n := min(len(p.Cmdline), maxArgs)
		info.Args = append([]string(nil), p.Cmdline[:n]...)
	}
	if parent := env.Process(snap, p.PPID); parent != nil && p.PPID != p.PID {
		info.ParentName = parent.Name
	}
	return info
}

// ProcessName returns the name of pid, or "" when unknown.
func ProcessName(snap *collector.Snapshot, env *Env, pid int32) string {
	if p := env.Process(snap, pid); p != nil {
		return p.Name
	}
	return ""
}

// ProcessKey names a process for alert entities: its name when known, else
// "pid:N" when a pid is known, else "unknown".
func ProcessKey(snap *collector.Snapshot, env *Env, pid int32) string {
	if n := ProcessName(snap, env, pid); n != "" {
		return n
	}
	if pid > 0 {
		return "pid:" + strconv.Itoa(int(pid))
	}
	return "unknown"
}

// Ancestors returns up to max ancestors of pid, parent first. It stops at an
// unknown pid, pid <= 1's parent, or a cycle.
func Ancestors(snap *collector.Snapshot, env *Env, pid int32, max int) []*collector.Process {
	var out []*collector.Process
	p := env.Process(snap, pid)
	seen := map[int32]bool{pid: true}
	for p != nil && len(out) < max {
		if p.PPID <= 0 || seen[p.PPID] {
			break
		}
		seen[p.PPID] = true
		parent := env.Process(snap, p.PPID)
		if parent == nil {
			break
		}
		out = append(out, parent)
		p = parent
	}
	return out
}
