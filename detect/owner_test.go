package detect

import (
	"testing"

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
	closedOnly := collector.Socket{State: "TIME_WAIT"} // no inode, no uid
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
