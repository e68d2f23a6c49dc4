package collector

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func poll(i int) time.Time { return t0.Add(time.Duration(i) * 2 * time.Second) }

func tcpSock(cookie uint64, lport, rport uint16, state string) Socket {
	return Socket{
		Proto: ProtoTCP, Family: 4, State: mustState(state), Cookie: cookie,
		Local:  netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), lport),
		Remote: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), rport),
	}
}

func est(cookie uint64, pid int32, acked uint64) Socket {
	s := tcpSock(cookie, 40000+uint16(cookie), 443, "ESTABLISHED")
	s.PID, s.Inode, s.UID, s.BytesAcked, s.BytesSent, s.BytesReceived = pid, 1000+cookie, 1000, acked, acked, 10
	return s
}

// timeWait is how a connection's cookie is listed after an active close.
func timeWait(s Socket) Socket {
	s.State, s.PID, s.Inode, s.UID, s.BytesAcked, s.BytesSent, s.BytesReceived = StateTimeWait, 0, 0, 0, 0, 0, 0
	return s
}

func destroyedOf(s Socket, acked uint64) Socket {
	s.State, s.PID, s.Inode, s.UID, s.Destroyed = StateClose, 0, 0, 0, true
	s.BytesAcked, s.BytesSent = acked, acked
	return s
}

func cookies(socks []Socket) []uint64 {
	var out []uint64
	for _, s := range socks {
		out = append(out, s.Cookie)
	}
	return out
}

func TestTrackerOpenedOnceWithStableFirstSeen(t *testing.T) {
	tr := newTracker()
	socks := []Socket{est(1, 10, 100)}
	op, cl := tr.Update(poll(0), socks, nil, false)
	if len(op) != 1 || op[0].Cookie != 1 || !op[0].FirstSeen.Equal(poll(0)) || len(cl) != 0 {
		t.Fatalf("first poll opened %v closed %v", op, cl)
	}
	socks = []Socket{est(1, 10, 200), est(2, 10, 0)}
	op, cl = tr.Update(poll(1), socks, nil, false)
	if len(op) != 1 || op[0].Cookie != 2 || len(cl) != 0 {
		t.Fatalf("second poll opened %v closed %v, want only cookie 2 opened", cookies(op), cookies(cl))
	}
	if !socks[0].FirstSeen.Equal(poll(0)) || !socks[1].FirstSeen.Equal(poll(1)) {
		t.Errorf("FirstSeen %v %v", socks[0].FirstSeen, socks[1].FirstSeen)
	}
}

func TestTrackerTimeWaitClosesOnceWithLastKnownPIDAndCounters(t *testing.T) {
	tr := newTracker()
	c := est(7, 42, 5000)
	tr.Update(poll(0), []Socket{c}, nil, false)
	tw := timeWait(c)
	op, cl := tr.Update(poll(1), []Socket{tw}, nil, false)
	if len(op) != 0 || len(cl) != 1 {
		t.Fatalf("move to TIME_WAIT: opened %v closed %v", cookies(op), cookies(cl))
	}
	got := cl[0]
	if got.PID != 42 || got.BytesAcked != 5000 || got.Inode != c.Inode || got.State != StateTimeWait || !got.FirstSeen.Equal(poll(0)) {
		t.Errorf("closed socket %+v: want PID 42, 5000 bytes, inode %d, first seen at poll 0", got, c.Inode)
	}
	for i := 2; i < 6; i++ { // still in TIME_WAIT, then gone
		list := []Socket{tw}
		if i >= 4 {
			list = nil
		}
		op, cl = tr.Update(poll(i), list, nil, false)
		if len(op)+len(cl) != 0 {
			t.Fatalf("poll %d: opened %v closed %v after the connection was closed", i, cookies(op), cookies(cl))
		}
	}
	if n := tr.Stats().Tracked; n != 0 {
		t.Errorf("%d entries left after the TIME_WAIT socket vanished", n)
	}
}

func TestTrackerVanishedWithoutDestroyEventsClosesAtOnce(t *testing.T) {
	tr := newTracker()
	tr.Update(poll(0), []Socket{est(1, 5, 10), est(2, 5, 20)}, nil, false)
	tr.Update(poll(1), []Socket{est(1, 5, 11), est(2, 5, 900)}, nil, false)
	_, cl := tr.Update(poll(2), []Socket{est(1, 5, 12)}, nil, false)
	if len(cl) != 1 || cl[0].Cookie != 2 || cl[0].BytesAcked != 900 || cl[0].PID != 5 {
		t.Fatalf("closed %+v, want cookie 2 with 900 bytes and PID 5", cl)
	}
}

func TestTrackerWaitsOnePollForDestroyEventThenFallsBack(t *testing.T) {
	tr := newTracker()
	tr.Update(poll(0), []Socket{est(1, 5, 10), est(2, 6, 20)}, nil, true)
	// Both vanish; no notification yet: nothing closed this poll.
	if _, cl := tr.Update(poll(1), nil, nil, true); len(cl) != 0 {
		t.Fatalf("closed %v before the destroy notification had a chance", cookies(cl))
	}
	// The notification for 1 arrives with the final counters; 2 never gets one.
	_, cl := tr.Update(poll(2), nil, []Socket{destroyedOf(est(1, 0, 0), 777)}, true)
	if len(cl) != 2 {
		t.Fatalf("closed %v, want both", cookies(cl))
	}
	for _, s := range cl {
		switch s.Cookie {
		case 1:
			if !s.Destroyed || s.BytesAcked != 777 || s.PID != 5 || s.Inode == 0 || !s.FirstSeen.Equal(poll(0)) {
				t.Errorf("destroyed socket %+v: want final 777 bytes, PID 5, inode and first seen kept", s)
			}
		case 2:
			if s.Destroyed || s.BytesAcked != 20 || s.PID != 6 {
				t.Errorf("fallback close %+v: want last known 20 bytes and PID 6", s)
			}
		}
	}
	if _, cl := tr.Update(poll(3), nil, []Socket{destroyedOf(est(2, 0, 0), 30)}, true); len(cl) != 0 {
		t.Errorf("late notification closed %v a second time", cookies(cl))
	}
}

func TestTrackerDestroyOnlyAndSamePollDestroy(t *testing.T) {
	tr := newTracker()
	live := est(3, 9, 100)
	tr.Update(poll(0), []Socket{live}, nil, true)
	// 3 is listed and destroyed after the dump; 4 lived between polls.
	short := destroyedOf(est(4, 0, 0), 64)
	short.Proto = ProtoUDP
	op, cl := tr.Update(poll(1), []Socket{est(3, 9, 150)}, []Socket{destroyedOf(live, 160), short}, true)
	if len(op) != 0 || len(cl) != 2 {
		t.Fatalf("opened %v closed %v", cookies(op), cookies(cl))
	}
	for _, s := range cl {
		if s.Cookie == 4 && (!s.FirstSeen.Equal(poll(1)) || !s.Destroyed || s.PID != 0 || s.Proto != ProtoUDP) {
			t.Errorf("destroy-only socket %+v", s)
		}
		if s.Cookie == 3 && (s.BytesAcked != 160 || s.PID != 9) {
			t.Errorf("same-poll destroy %+v", s)
		}
	}
	// The destroyed connection's TIME_WAIT listing is neither new nor closed again.
	op, cl = tr.Update(poll(2), []Socket{timeWait(live), timeWait(est(4, 0, 0))}, nil, true)
	if len(op)+len(cl) != 0 {
		t.Errorf("TIME_WAIT of destroyed sockets: opened %v closed %v", cookies(op), cookies(cl))
	}
}

func TestTrackerFirstSeenInTimeWait(t *testing.T) {
	tr := newTracker()
	op, cl := tr.Update(poll(0), []Socket{timeWait(est(5, 0, 0))}, nil, false)
	if len(op) != 1 || len(cl) != 1 {
		t.Fatalf("connection that opened and ended between polls: opened %v closed %v", cookies(op), cookies(cl))
	}
	// With notifications, the same case waits one poll for them.
	tr = newTracker()
	op, cl = tr.Update(poll(0), []Socket{timeWait(est(6, 0, 0))}, nil, true)
	if len(op) != 1 || len(cl) != 0 {
		t.Fatalf("opened %v closed %v", cookies(op), cookies(cl))
	}
	_, cl = tr.Update(poll(1), []Socket{timeWait(est(6, 0, 0))}, nil, true)
	if len(cl) != 1 {
		t.Fatalf("not closed after a poll without notification: %v", cookies(cl))
	}
}

func TestTrackerSynRecvHandover(t *testing.T) {
	tr := newTracker()
	syn := tcpSock(10, 443, 51000, "SYN_RECV")
	tr.Update(poll(0), []Socket{syn}, nil, false)
	acc := tcpSock(11, 443, 51000, "ESTABLISHED")
	socks := []Socket{acc}
	op, cl := tr.Update(poll(1), socks, nil, false)
	if len(op) != 0 || len(cl) != 0 {
		t.Fatalf("accepted connection: opened %v closed %v, want neither", cookies(op), cookies(cl))
	}
	if !socks[0].FirstSeen.Equal(poll(0)) {
		t.Errorf("accepted socket FirstSeen %v, want the SYN_RECV's %v", socks[0].FirstSeen, poll(0))
	}
	// A half-open connection that never completes closes normally.
	tr.Update(poll(2), []Socket{acc, tcpSock(12, 443, 52000, "SYN_RECV")}, nil, false)
	_, cl = tr.Update(poll(3), []Socket{acc}, nil, false)
	if len(cl) != 1 || cl[0].Cookie != 12 {
		t.Errorf("half-open close: %v", cookies(cl))
	}
}

func TestTrackerWithoutCookiesUsesTuple(t *testing.T) {
	tr := newTracker()
	a := est(0, 3, 1)
	a.Local = netip.MustParseAddrPort("10.0.0.1:50001")
	b := a
	b.Local = netip.MustParseAddrPort("10.0.0.1:50002")
	op, _ := tr.Update(poll(0), []Socket{a, b}, nil, false)
	if len(op) != 2 {
		t.Fatalf("opened %d, want 2", len(op))
	}
	op, cl := tr.Update(poll(1), []Socket{a}, nil, false)
	if len(op) != 0 || len(cl) != 1 || cl[0].Local != b.Local {
		t.Fatalf("opened %v closed %v", op, cl)
	}
}

func TestTrackerBoundedMemory(t *testing.T) {
	tr := newTracker()
	tr.MaxEntries = 100
	for p := 0; p < 50; p++ {
		var socks []Socket
		for i := 0; i < 150; i++ {
			socks = append(socks, est(uint64(p*1000+i+1), 1, 1))
		}
		op, _ := tr.Update(poll(p), socks, []Socket{destroyedOf(est(uint64(1e6+p), 0, 0), 1)}, true)
		if st := tr.Stats(); st.Tracked > 100 {
			t.Fatalf("poll %d: %d entries tracked, bound 100", p, st.Tracked)
		}
		if p == 0 && (len(op) != 100 || tr.Stats().Untracked != 50) {
			t.Fatalf("first poll opened %d untracked %d, want 100/50", len(op), tr.Stats().Untracked)
		}
	}
}

// With short polls (a loaded host, or --interval 100ms) the destroy
// notification can come later than the next poll: an end seen in the dump
// waits destroyGrace, not only one poll, so the final counters still land.
func TestTrackerShortPollsWaitTheGraceForTheNotification(t *testing.T) {
	tr := newTracker()
	at := func(ms int) time.Time { return poll(0).Add(time.Duration(ms) * time.Millisecond) }
	tr.Update(at(0), []Socket{est(1, 5, 10)}, nil, true)
	for ms := 50; ms < int(destroyGrace/time.Millisecond); ms += 50 {
		if _, cl := tr.Update(at(ms), nil, nil, true); len(cl) != 0 {
			t.Fatalf("closed %v at +%d ms, before the grace for its notification ran out", cookies(cl), ms)
		}
	}
	_, cl := tr.Update(at(int(destroyGrace/time.Millisecond)), nil, []Socket{destroyedOf(est(1, 0, 0), 777)}, true)
	if len(cl) != 1 || !cl[0].Destroyed || cl[0].BytesAcked != 777 {
		t.Fatalf("closed %+v, want socket 1 once with the notification's 777 bytes", cl)
	}
	// Without a notification it falls back once the grace is over.
	tr.Update(at(1000), []Socket{est(2, 6, 20)}, nil, true)
	tr.Update(at(1050), nil, nil, true)
	if _, cl := tr.Update(at(1100), nil, nil, true); len(cl) != 0 {
		t.Fatalf("fallback close %v inside the grace", cookies(cl))
	}
	if _, cl := tr.Update(at(1050+int(destroyGrace/time.Millisecond)), nil, nil, true); len(cl) != 1 || cl[0].BytesAcked != 20 {
		t.Fatalf("fallback close %+v, want socket 2 with its last 20 bytes", cl)
	}
}

// One connection has one owner from first sight to its destroy notification:
// the TIME_WAIT listings (no PID, inode or uid of their own) and the closed
// socket carry the PID, inode and uid it was last seen with.
func TestTrackerListingKeepsOwnerThroughTimeWaitAndDestroy(t *testing.T) {
	tr := newTracker()
	c := est(9, 13, 700)
	c.UID = 1001
	tr.Update(poll(0), []Socket{c}, nil, true)
	tw := timeWait(c)
	var closed []Socket
	for i := 1; i <= 3; i++ {
		list := []Socket{tw}
		var destroyed []Socket
		if i == 2 { // within the grace: the notification closes it
			destroyed = []Socket{destroyedOf(c, 700)}
		}
		_, cl := tr.Update(poll(i), list, destroyed, true)
		closed = append(closed, cl...)
		got := list[0]
		if got.PID != 13 || got.Inode != c.Inode || got.UID != 1001 || got.State != StateTimeWait {
			t.Errorf("poll %d: TIME_WAIT listing pid %d inode %d uid %d state %s, want pid 13 inode %d uid 1001",
				i, got.PID, got.Inode, got.UID, got.State, c.Inode)
		}
	}
	if len(closed) != 1 || closed[0].PID != 13 || closed[0].UID != 1001 || !closed[0].Destroyed {
		t.Errorf("closed %+v: want the connection once, destroyed, with pid 13 uid 1001", closed)
	}
	// A socket first seen in TIME_WAIT has no owner to keep.
	fresh := []Socket{timeWait(est(10, 14, 0))}
	tr.Update(poll(4), fresh, nil, true)
	if fresh[0].PID != 0 || fresh[0].Inode != 0 {
		t.Errorf("first seen in TIME_WAIT: pid %d inode %d, want none", fresh[0].PID, fresh[0].Inode)
	}
}

// A listed socket whose owner changes (an fd handed to another process)
// takes the new owner.
func TestTrackerListingTakesANewOwner(t *testing.T) {
	tr := newTracker()
	tr.Update(poll(0), []Socket{est(3, 20, 0)}, nil, false)
	list := []Socket{est(3, 21, 0)}
	tr.Update(poll(1), list, nil, false)
	if list[0].PID != 21 {
		t.Errorf("pid %d, want the new owner 21", list[0].PID)
	}
}

// The tracker follows the last poll's dump order to skip map look-ups; a
// socket added, removed or moved anywhere in the list must still be opened,
// closed or kept exactly once, and a connection that ends while every other
// one is listed must still be closed (the sweep is skipped only when nothing
// changed).
func TestTrackerDumpOrderChanges(t *testing.T) {
	tr := newTracker()
	list := func(cs ...uint64) []Socket {
		var out []Socket
		for _, c := range cs {
			out = append(out, est(c, 10, 100*c))
		}
		return out
	}
	steps := []struct {
		cookies        []uint64
		opened, closed []uint64
	}{
		{[]uint64{1, 2, 3, 4}, []uint64{1, 2, 3, 4}, nil},
		{[]uint64{1, 2, 3, 4}, nil, nil},
		{[]uint64{1, 9, 2, 4}, []uint64{9}, []uint64{3}}, // 3 gone, 9 in its place
		{[]uint64{4, 2, 9, 1}, nil, nil},                 // reversed
		{[]uint64{5, 4, 2, 9, 1}, []uint64{5}, nil},      // new at the front
		{[]uint64{5, 4, 2, 9}, nil, []uint64{1}},         // last one gone
		{[]uint64{5, 4, 2, 9}, nil, nil},
		{[]uint64{5, 2, 9, 6, 7}, []uint64{6, 7}, []uint64{4}},
	}
	for i, st := range steps {
		socks := list(st.cookies...)
		op, cl := tr.Update(poll(i), socks, nil, false)
		if got := cookies(op); !sameCookies(got, st.opened) {
			t.Errorf("poll %d: opened %v, want %v", i, got, st.opened)
		}
		if got := cookies(cl); !sameCookies(got, st.closed) {
			t.Errorf("poll %d: closed %v, want %v", i, got, st.closed)
		}
		for _, s := range socks {
			if s.Cookie == 2 && !s.FirstSeen.Equal(poll(0)) {
				t.Errorf("poll %d: cookie 2 FirstSeen %v, want %v", i, s.FirstSeen, poll(0))
			}
		}
	}
	// Listed as TIME_WAIT in place, with destroy notifications on: it waits
	// for its notification, then closes without one after the grace.
	socks := list(5, 2, 9, 6, 7)
	socks[1] = timeWait(socks[1])
	if _, cl := tr.Update(poll(10), socks, nil, true); len(cl) != 0 {
		t.Fatalf("TIME_WAIT closed at once with notifications on: %v", cookies(cl))
	}
	if _, cl := tr.Update(poll(11), socks, nil, true); !sameCookies(cookies(cl), []uint64{2}) {
		t.Fatalf("TIME_WAIT without a notification after the grace: closed %v, want [2]", cookies(cl))
	}
}

func sameCookies(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[uint64]int{}
	for _, c := range a {
		m[c]++
	}
	for _, c := range b {
		m[c]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestSocketMemoryPerConnection holds the per-socket memory the README's
// figures rest on: the collector keeps two socket lists and the tracker one
// entry per socket, so at 100,000 sockets every 16 bytes of a Socket is
// 3.2 MB of peak RSS (issue 11: 40 MB at 10,000 connections, 120 MB at 50,000).
func TestSocketMemoryPerConnection(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 144 {
		t.Errorf("collector.Socket is %d bytes, want at most 144 (check field order for padding)", n)
	}
	// 64 is a Go allocation size class: one byte more costs 80. An entry
	// points at its socket instead of copying it.
	if n := unsafe.Sizeof(trackEntry{}); n > 64 {
		t.Errorf("trackEntry is %d bytes, want at most 64", n)
	}
}

// The tracker points into the latest list instead of copying every socket;
// the collector then dumps into an older list's memory. A connection that
// vanished, and one ended by a destroy notification, must still be reported
// as they were after the list they were last seen in is overwritten.
func TestTrackerSurvivesReuseOfEarlierLists(t *testing.T) {
	tr := newTracker()
	lists := [2][]Socket{{est(1, 10, 100), est(2, 20, 200), est(3, 30, 300)}}
	tr.Update(poll(0), lists[0], nil, true)
	// Poll 1: cookie 2 vanished (waits for its notification), cookie 3
	// is ended by one; the caller's list is a new one.
	lists[1] = []Socket{est(1, 10, 150), est(3, 30, 350)}
	_, cl := tr.Update(poll(1), lists[1], []Socket{destroyedOf(est(3, 30, 0), 390)}, true)
	if len(cl) != 1 || cl[0].Cookie != 3 || cl[0].PID != 30 || cl[0].BytesAcked != 390 || !cl[0].Destroyed {
		t.Fatalf("poll 1 closed %+v, want cookie 3 (PID 30, 390 bytes, destroyed)", cl)
	}
	if s := lists[1][1]; s.Destroyed || s.BytesAcked != 350 {
		t.Errorf("the notification changed the listing: %+v", s)
	}
	// Poll 2 reuses poll 0's memory, as the collector's Recycler does.
	for i := range lists[0] {
		lists[0][i] = tcpSock(99, 1, 1, "SYN_SENT")
	}
	_, cl = tr.Update(poll(2), append(lists[0][:0], est(1, 0, 170)), nil, true)
	if len(cl) != 1 || cl[0].Cookie != 2 || cl[0].PID != 20 || cl[0].BytesAcked != 200 ||
		cl[0].State != StateEstablished || cl[0].Local.Port() != 40002 || !cl[0].FirstSeen.Equal(poll(0)) {
		t.Fatalf("poll 2 closed %+v, want cookie 2 as poll 0 listed it", cl)
	}
	if s := lists[0][0]; s.PID != 10 || !s.FirstSeen.Equal(poll(0)) {
		t.Errorf("cookie 1 lost its owner or first sighting: %+v", s)
	}
	// Poll 3 overwrites poll 1's list: cookie 1's end still has its owner
	// and highest counters.
	for i := range lists[1] {
		lists[1][i] = tcpSock(98, 2, 2, "SYN_SENT")
	}
	_, cl = tr.Update(poll(3), lists[1][:0], []Socket{destroyedOf(est(1, 0, 0), 0)}, true)
	if len(cl) != 1 || cl[0].Cookie != 1 || cl[0].PID != 10 || cl[0].BytesAcked != 170 {
		t.Fatalf("poll 3 closed %+v, want cookie 1 with PID 10 and 170 bytes", cl)
	}
}

// SameAs points at a socket's index in the previous list only when it was
// listed there with the same fields; anything new, changed, or only known
// from a notification is -1. Detectors skip what SameAs says they already
// examined, so a wrong index would hide a change.
func TestTrackerSameAsOnlyForUnchangedSockets(t *testing.T) {
	tr := newTracker()
	same := func(now time.Time, socks []Socket, destroyed []Socket) []int32 {
		t.Helper()
		s := make([]int32, len(socks))
		for i := range s {
			s[i] = 99 // every entry must be written
		}
		tr.UpdateSame(now, socks, destroyed, true, s)
		return s
	}
	eq := func(got []int32, want ...int32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("SameAs %v, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("SameAs %v, want %v", got, want)
			}
		}
	}
	// Each poll lists into its own memory, as the collector does.
	eq(same(poll(0), []Socket{est(1, 10, 100), est(2, 10, 100), est(3, 10, 100)}, nil), -1, -1, -1)
	// 1 unchanged but moved to index 2; 2 moved bytes; 4 is new; 3 is gone.
	eq(same(poll(1), []Socket{est(2, 10, 150), est(4, 10, 1), est(1, 10, 100)}, nil), -1, -1, 0)
	// Unchanged again at its new index; 4 changed owner (PID found later).
	eq(same(poll(2), []Socket{est(1, 10, 100), est(4, 11, 1), est(2, 10, 150)}, nil), 2, -1, 0)
	// A socket missing for a poll is compared with nothing.
	eq(same(poll(3), []Socket{est(1, 10, 100)}, nil), 0)
	eq(same(poll(4), []Socket{est(1, 10, 100), est(4, 11, 1)}, nil), 0, -1)
	// Ended by a notification and listed again (TIME_WAIT): not the same.
	eq(same(poll(5), []Socket{est(4, 11, 1)}, []Socket{destroyedOf(est(1, 0, 0), 100)}), 1)
	eq(same(poll(6), []Socket{timeWait(est(1, 0, 0)), est(4, 11, 1)}, nil), -1, 0)
	// A socket listed twice in one dump: the second listing is never the same.
	eq(same(poll(7), []Socket{est(4, 11, 1), est(4, 11, 1)}, nil), 1, -1)
}

// mustState is the State named s; a name it does not know fails loudly.
func mustState(s string) State {
	st, ok := ParseState(s)
	if !ok {
		panic("unknown socket state " + s)
	}
	return st
}
