//go:build linux

package collector

import (
	"encoding/binary"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// procEventMsg builds one netlink message of the process connector carrying
// event what with the given event data words.
func procEventMsg(what uint32, data ...uint32) []byte {
	ne := binary.NativeEndian
	body := make([]byte, cnMsgLen+procEventHdrLen+4*len(data))
	ne.PutUint32(body[0:], cnIdxProc)
	ne.PutUint32(body[4:], cnValProc)
	ne.PutUint16(body[16:], uint16(procEventHdrLen+4*len(data)))
	ev := body[cnMsgLen:]
	ne.PutUint32(ev[0:], what)
	for i, d := range data {
		ne.PutUint32(ev[procEventHdrLen+4*i:], d)
	}
	msg := make([]byte, unix.SizeofNlMsghdr+len(body))
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	copy(msg[unix.SizeofNlMsghdr:], body)
	for len(msg)%unix.NLMSG_ALIGNTO != 0 {
		msg = append(msg, 0)
	}
	return msg
}

func TestParseExecEvents(t *testing.T) {
	const fork, exit = 0x00000001, 0x80000000
	var b []byte
	b = append(b, procEventMsg(fork, 100, 100, 200, 200)...)
	b = append(b, procEventMsg(procEventExec, 200, 200)...)
	b = append(b, procEventMsg(procEventExec, 201, 200)...) // a thread: not a process exec
	b = append(b, procEventMsg(exit, 150, 150, 0, 0)...)
	b = append(b, procEventMsg(procEventExec, 300, 300)...)
	if got := parseExecEvents(b, nil); !slices.Equal(got, []int32{200, 300}) {
		t.Errorf("exec tgids %v, want [200 300]", got)
	}
	// Cut datagrams and lying lengths stop the parse, never panic.
	for n := range len(b) {
		parseExecEvents(b[:n], nil)
	}
	bad := procEventMsg(procEventExec, 400, 400)
	binary.NativeEndian.PutUint32(bad[0:], 1<<20)
	if got := parseExecEvents(bad, nil); len(got) != 0 {
		t.Errorf("message longer than the datagram parsed: %v", got)
	}
	other := procEventMsg(procEventExec, 500, 500)
	binary.NativeEndian.PutUint32(other[unix.SizeofNlMsghdr:], 7) // another connector
	if got := parseExecEvents(other, nil); len(got) != 0 {
		t.Errorf("another connector's message parsed: %v", got)
	}
}

// A child that lives 50 ms (far less than a poll) is read at its exec with
// its parent, command line and session.
func TestProcConnSeesShortLivedChild(t *testing.T) {
	if err := procConnUsable(); err != nil {
		if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
			t.Fatalf("!!! the process connector needs root in the host's PID namespace, and NETSENTINEL_REQUIRE_ROOT=1 forbids skipping: %v", err)
		}
		t.Skipf("process connector unusable here: %v", err)
	}
	boot, err := readBootTime("/proc", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := openProcConn("/proc", boot)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The subscription is asynchronous: run children until one is seen,
	// bounded in count.
	const script = "sleep 0.05; true"
	for try := 0; try < 20; try++ {
		child := exec.Command("sh", "-c", script)
		if err := child.Run(); err != nil {
			t.Fatal(err)
		}
		pid := int32(child.Process.Pid)
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			recs, _ := c.Drain()
			for _, p := range recs {
				if p.PID != pid {
					continue
				}
				if p.Name != "sh" || p.PPID != int32(os.Getpid()) || !slices.Equal(p.Cmdline, []string{"sh", "-c", script}) || p.Exe == "" {
					t.Fatalf("record of the child: %+v", p)
				}
				if sid, _ := unix.Getsid(0); p.Session != int32(sid) {
					t.Errorf("session %d, want the test's %d", p.Session, sid)
				}
				if time.Since(p.StartTime) > time.Minute || p.StartTime.After(time.Now()) {
					t.Errorf("start time %v", p.StartTime)
				}
				return
			}
		}
	}
	t.Fatal("no exec record of any of 20 short-lived children")
}

// Records read at exec reach the snapshot only for PIDs the table does not
// list: exited processes. A running process, or one that took the PID since,
// keeps the table's entry.
func TestAddExecRecords(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	running := &Process{PID: 10, Name: "nginx", StartTime: t0}
	procs := map[int32]*Process{10: running, 12: {PID: 12, Name: "new", StartTime: t0.Add(2 * time.Second)}}
	pt := newProcTable("/proc")
	pt.lookupUser = func(uid uint32) string { return map[uint32]string{33: "www-data"}[uid] }
	s := &linuxSource{procs: pt, log: zap.NewNop(), procConn: &procConn{recs: []*Process{
		{PID: 10, Name: "nginx", StartTime: t0},                                  // still running: the table's value stays
		{PID: 11, PPID: 10, Name: "sh", UID: 33, StartTime: t0.Add(time.Second)}, // exited between polls
		{PID: 12, Name: "old", StartTime: t0.Add(time.Second)},                   // exited; its PID reused since: the live one wins
	}}}
	s.addExecRecords(procs)
	if procs[10] != running {
		t.Error("a running process was replaced by its exec record")
	}
	if p := procs[11]; p == nil || p.Name != "sh" || p.PPID != 10 || p.User != "www-data" {
		t.Errorf("short-lived child: %+v", p)
	}
	if p := procs[12]; p == nil || p.Name != "new" {
		t.Errorf("pid 12: %+v, want the running process that reused the PID", p)
	}
	if recs, _ := s.procConn.Drain(); len(recs) != 0 {
		t.Errorf("records left after the poll: %d", len(recs))
	}
}
