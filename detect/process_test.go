package detect

import (
	"reflect"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

func TestProcessContextIncludesParent(t *testing.T) {
	snap := snapAt(t0)
	snap.Processes[1] = &collector.Process{PID: 1, Name: "systemd"}
	snap.Processes[100] = &collector.Process{PID: 100, PPID: 1, Name: "sshd"}
	snap.Processes[200] = &collector.Process{PID: 200, PPID: 100, Name: "bash", Exe: "/usr/bin/bash", Cmdline: []string{"bash", "-i"}, UID: 1000, User: "alice"}
	env := testEnv()
	p := ProcessContext(snap, env, 200)
	want := &ProcessInfo{PID: 200, Name: "bash", Executable: "/usr/bin/bash", Args: []string{"bash", "-i"}, User: "alice", UID: 1000, PPID: 100, ParentName: "sshd"}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("ProcessContext = %+v, want %+v", p, want)
	}
	if ProcessContext(snap, env, 999) != nil || ProcessContext(snap, env, 0) != nil {
		t.Fatal("unknown pid must give nil")
	}
	if k := ProcessKey(snap, env, 999); k != "pid:999" {
		t.Errorf("ProcessKey(999) = %q", k)
	}
	if k := ProcessKey(snap, env, 0); k != "unknown" {
		t.Errorf("ProcessKey(0) = %q", k)
	}
	anc := Ancestors(snap, env, 200, 10)
	if len(anc) != 2 || anc[0].Name != "sshd" || anc[1].Name != "systemd" {
		t.Errorf("Ancestors = %v", anc)
	}
	// A cycle must terminate.
	snap.Processes[300] = &collector.Process{PID: 300, PPID: 301, Name: "x"}
	snap.Processes[301] = &collector.Process{PID: 301, PPID: 300, Name: "y"}
	if anc := Ancestors(snap, env, 300, 10); len(anc) != 1 {
		t.Errorf("cycle ancestors = %d entries, want 1", len(anc))
	}
}
