package detect

import (
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func TestOwnerKey(t *testing.T) {
	snap := snapAt(t0)
	snap.Processes[300] = &collector.Process{PID: 300, Name: "nc", UID: 1000, User: "alice"}
	env := testEnv()
	owned := collector.Socket{PID: 300, Inode: 1, UID: 1000}
	gonePID := collector.Socket{PID: 301, Inode: 2, UID: 1000}
	unreadable := collector.Socket{Inode: 3, UID: 33}
	root := collector.Socket{Inode: 4, UID: 0}
	closedOnly := collector.Socket{State: collector.StateTimeWait} // no inode, no uid
	for _, c := range []struct {
		s    collector.Socket
		want string
	}{
		{owned, "nc"},
		{gonePID, "pid:301"},
		{unreadable, "uid:33"},
		{root, "uid:0"},
		{closedOnly, UnknownOwner},
	} {
		if got := OwnerKey(snap, env, &c.s); got != c.want {
			t.Errorf("OwnerKey(%+v) = %q, want %q", c.s, got, c.want)
		}
	}

	ev := map[string]any{}
	OwnerEvidence(snap, &owned, ev)
	if len(ev) != 0 {
		t.Errorf("owned socket evidence %v, want nothing added", ev)
	}
	OwnerEvidence(snap, &unreadable, ev)
	if ev["owner_uid"] != uint32(33) || ev["process_unknown"] == nil || ev["owner_user"] != nil {
		t.Errorf("unreadable socket of uid 33 (no process of it running) evidence %v", ev)
	}
	ev = map[string]any{}
	alice := collector.Socket{Inode: 5, UID: 1000}
	OwnerEvidence(snap, &alice, ev)
	if ev["owner_user"] != "alice" {
		t.Errorf("uid 1000 evidence %v, want owner_user alice", ev)
	}
	ev = map[string]any{}
	OwnerEvidence(snap, &closedOnly, ev)
	if ev["owner_uid"] != nil || ev["process_unknown"] == nil {
		t.Errorf("closed-only socket evidence %v: want no uid (it is not known), a process_unknown note", ev)
	}
}

func TestInferOwner(t *testing.T) {
	at := t0.Add(time.Minute)
	before, later := at.Add(-time.Second), at.Add(time.Second)
	base := func() *collector.Snapshot {
		snap := snapAt(at)
		add := func(pid, ppid int32, uid uint32, start time.Time, args ...string) {
			snap.Processes[pid] = &collector.Process{PID: pid, PPID: ppid, UID: uid, Name: args[0], Cmdline: args, StartTime: start}
		}
		add(1, 0, 0, before, "init")
		add(10, 1, 0, before, "sh", "-c", "sleep 2 | ncat --send-only 198.51.100.10 4444")
		add(11, 10, 0, before, "sleep", "2")
		add(12, 10, 0, before, "ncat", "--send-only", "198.51.100.10", "4444")
		add(20, 1, 1000, before, "socat", "-", "TCP:198.51.100.20:5555")
		add(21, 1, 1000, before, "bash")
		add(30, 1, 33, before, "php-fpm", "php-fpm: pool www")
		add(40, 1, 1001, later, "late-daemon")
		add(50, 1, 1002, before, "curl", "http://c2.example.net:8080/")
		return snap
	}
	conn := func(remote string, uid uint32) collector.Socket {
		s := sock("tcp", "ESTABLISHED", "10.0.0.5:40000", remote, 0)
		s.Inode, s.UID, s.FirstSeen = 77, uid, at
		return s
	}
	for _, c := range []struct {
		name string
		edit func(*collector.Snapshot)
		s    collector.Socket
		pid  int32
		by   string
	}{
		{"shell and the tool it started name the peer: the tool", nil, conn("198.51.100.10:4444", 0), 12, InferredByCmdline},
		{"one process of the uid names the peer", nil, conn("198.51.100.20:5555", 1000), 20, InferredByCmdline},
		{"another uid's command line is not evidence", nil, conn("198.51.100.20:5555", 1001), 0, ""},
		{"the address inside a longer one is not named", nil, conn("198.51.100.1:4444", 0), 0, ""},
		{"the address without the port is not named", nil, conn("198.51.100.10:4445", 0), 0, ""},
		{"two unrelated processes name the peer: ambiguous", func(s *collector.Snapshot) {
			s.Processes[60] = &collector.Process{PID: 60, PPID: 1, UID: 0, Name: "tcpdump",
				Cmdline: []string{"tcpdump", "host", "198.51.100.10", "and", "port", "4444"}, StartTime: before}
		}, conn("198.51.100.10:4444", 0), 0, ""},
		{"a process started after the socket was seen did not open it", func(s *collector.Snapshot) {
			s.Processes[12].StartTime = later
			s.Processes[10].StartTime = later
		}, conn("198.51.100.10:4444", 0), 0, ""},
		{"a process that seems to start while the poll's dump runs still opened it", func(s *collector.Snapshot) {
			s.Processes[12].StartTime = at.Add(200 * time.Millisecond)
			s.Processes[10].StartTime = at.Add(200 * time.Millisecond)
		}, conn("198.51.100.10:4444", 0), 12, InferredByCmdline},
		{"the only process of a service user", nil, conn("203.0.113.5:443", 33), 30, InferredBySole},
		{"the only process of a user, started after the socket", nil, conn("203.0.113.5:443", 1001), 0, ""},
		{"root is never anyone's only process", nil, conn("203.0.113.5:443", 0), 0, ""},
		{"two processes of the user", nil, conn("203.0.113.5:443", 1000), 0, ""},
		{"a host name is no address, but curl is the only process of uid 1002", nil, conn("203.0.113.8:8080", 1002), 50, InferredBySole},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap := base()
			if c.edit != nil {
				c.edit(snap)
			}
			pid, by := InferOwner(snap, testEnv(), &c.s)
			if pid != c.pid || by != c.by {
				t.Errorf("InferOwner = %d %q, want %d %q", pid, by, c.pid, c.by)
			}
		})
	}
	// Never for a socket with a readable owner, an unknown uid, or (the
	// only-process rule) a closed socket.
	snap := base()
	owned := conn("198.51.100.10:4444", 0)
	owned.PID = 99
	tw := conn("203.0.113.5:443", 33)
	tw.State = collector.StateTimeWait
	noUID := conn("198.51.100.10:4444", 0)
	noUID.Inode = 0
	for _, s := range []collector.Socket{owned, tw, noUID} {
		if pid, by := InferOwner(snap, testEnv(), &s); pid != 0 {
			t.Errorf("socket %+v inferred to %d (%s), want none", s, pid, by)
		}
	}
}
