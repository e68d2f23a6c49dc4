package collector

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// tracker turns successive socket lists (and socket-destroy notifications)
// into connection life cycles: Snapshot.Opened, Snapshot.Closed and
// Socket.FirstSeen. A socket's identity is its kernel cookie, which survives
// the move to TIME_WAIT; without a cookie it is (proto, local, remote).
//
// Rules, per Update:
//   - Opened holds every socket first seen at this poll, in any state (a
//     connection that opened and went to TIME_WAIT between two polls is both
//     Opened and Closed in the same snapshot). A SYN_RECV socket replaced by
//     its accepted ESTABLISHED socket (same endpoints, new cookie) is the same
//     connection: it keeps its FirstSeen and is not opened again.
//   - Closed holds each connection once, when it ends: a destroy notification
//     (final tcp_info counters), a move to TIME_WAIT or CLOSE, or vanishing
//     from the list. With destroy notifications active, the last two wait
//     one poll, and at least destroyGrace, for the notification that
//     carries the final counters. A destroy notification for a socket never
//     listed (it lived between two polls) is Closed only, with FirstSeen =
//     the time the watcher saw it end (the best start time there is for a
//     sub-poll connection).
//   - A socket keeps the last known PID, inode and uid (the dump of a
//     TIME_WAIT or orphaned socket and a destroy notification have none):
//     in the poll's own list (socks is updated in place) and in Closed,
//     which also carries the highest byte counters seen. A socket first
//     seen without them (TIME_WAIT at first sight, destroy only) has none.
//
// Memory is bounded by MaxEntries; sockets beyond it are listed but not
// tracked (no Opened/Closed, FirstSeen = poll time) and counted in Untracked.
// An entry does not copy its socket while the socket is listed: it points
// into the list of the latest Update, so the caller must leave that list
// unmodified until the next Update returns (the collector dumps into a
// recycled older list, never the latest one). An entry takes its own copy
// when its socket is no longer listed or a destroy notification ends it.
// A tracker is not safe for concurrent use.
type tracker struct {
	// MaxEntries bounds the tracked sockets (0: defaultTrackerEntries).
	MaxEntries int

	byCookie map[uint64]*trackEntry
	byTuple  map[tupleKey]*trackEntry
	gen      uint32
	// newRefs are the sockets first seen at this poll; newTuple indexes them
	// by endpoints, built only when a vanished SYN_RECV socket needs it
	// (newTupleOK), not for every new socket (all of them on the first poll).
	newRefs    []newRef
	newTuple   map[tupleKey]newRef
	newTupleOK bool
	// order holds the entries of the last Update's sockets in dump order
	// (next is the one being built): the kernel lists sockets in the same
	// order poll after poll, so most look-ups are the next entry of the last
	// poll's order, checked by cookie, without a map look-up.
	order, next []*trackEntry

	untracked int
	// base is the first Update's time: entries keep when their end was
	// seen as an offset from it (monotonic, 8 bytes instead of 24).
	base time.Time
}

// defaultTrackerEntries is the default tracker.MaxEntries.
const defaultTrackerEntries = 1 << 18

// closedLinger is how many polls a closed connection stays known after it
// was last listed, so a late TIME_WAIT listing or a duplicate notification
// of the same cookie is not taken for a new connection.
const closedLinger = 2

// destroyGrace is the least time an end seen in the dump (TIME_WAIT, CLOSE,
// vanished) waits for its destroy notification, which carries the final
// counters, besides the one poll: on a loaded host the watcher can lag a
// short poll interval.
const destroyGrace = 750 * time.Millisecond

type tupleKey struct {
	proto         Proto
	local, remote netip.AddrPort
}

type newRef struct {
	sock   int // index in socks
	opened int // index in newRefs
	e      *trackEntry
}

// An entry is 64 bytes (a Go size class; it was 224 with a copy of the
// socket): 20,000 sockets cost 1.3 MB instead of 4.5 MB.
type trackEntry struct {
	// sock is the last observation, with the owner (PID, inode, uid) and
	// FirstSeen carried over: an element of the latest Update's list while
	// listed, else the entry's own copy (own).
	sock *Socket
	// The highest counters seen: a TIME_WAIT listing and some destroy
	// notifications carry none, and Closed reports the last known.
	acked, received, sent uint64
	seenGen               uint32        // last poll that listed it
	endGen                uint32        // poll that saw it end, waiting for a destroy notification (0: none)
	closedGen             uint32        // poll it was reported closed (0: still open)
	pos                   int32         // index in tracker.order (valid when listed by the last Update)
	endAt                 time.Duration // when endGen's poll ran, since tracker.base
	idx                   int32         // index of sock in the latest list that listed it
	own                   bool          // sock is the entry's own copy, not in a socket list
	removed               bool          // no longer in the maps
}

// newTracker returns an empty tracker.
func newTracker() *tracker {
	return &tracker{
		byCookie: make(map[uint64]*trackEntry),
		byTuple:  make(map[tupleKey]*trackEntry),
		newTuple: make(map[tupleKey]newRef),
	}
}

// trackerStats describes the tracker after an Update.
type trackerStats struct {
	Tracked   int // connections held
	Untracked int // sockets of the last Update not tracked (MaxEntries reached)
}

// Stats returns the tracker's size after the last Update.
func (t *tracker) Stats() trackerStats {
	return trackerStats{Tracked: len(t.byCookie) + len(t.byTuple), Untracked: t.untracked}
}

func keyOf(s *Socket) tupleKey { return tupleKey{s.Proto, s.Local, s.Remote} }

func (t *tracker) lookup(s *Socket) *trackEntry {
	if s.Cookie != 0 {
		return t.byCookie[s.Cookie]
	}
	return t.byTuple[keyOf(s)]
}

func (t *tracker) insert(s *Socket, e *trackEntry) bool {
	max := t.MaxEntries
	if max <= 0 {
		max = defaultTrackerEntries
	}
	if len(t.byCookie)+len(t.byTuple) >= max {
		return false
	}
	if s.Cookie != 0 {
		t.byCookie[s.Cookie] = e
	} else {
		t.byTuple[keyOf(s)] = e
	}
	return true
}

func (t *tracker) remove(e *trackEntry) {
	e.removed = true
	if e.sock.Cookie != 0 {
		delete(t.byCookie, e.sock.Cookie)
	} else {
		delete(t.byTuple, keyOf(e.sock))
	}
}

// count raises the entry's counters to s's.
func (e *trackEntry) count(s *Socket) {
	e.acked = max(e.acked, s.BytesAcked)
	e.received = max(e.received, s.BytesReceived)
	e.sent = max(e.sent, s.BytesSent)
}

// observe makes s (a listing or a destroy notification) the entry's last
// observation: s takes the last known owner and FirstSeen, the entry the
// highest counters. own tells whether s is the entry's own memory.
func (e *trackEntry) observe(s *Socket, own bool) {
	if prev := e.sock; prev != nil {
		if s.PID == 0 {
			s.PID = prev.PID
		}
		if s.Inode == 0 {
			s.Inode, s.UID = prev.Inode, prev.UID
		}
		s.FirstSeen = prev.FirstSeen
	}
	e.count(s)
	e.sock, e.own = s, own
}

// adopt gives the entry its own copy of its last observation, before the
// list it points into is reused.
func (e *trackEntry) adopt() {
	if !e.own {
		c := *e.sock
		e.sock, e.own = &c, true
	}
}

// closedView is the entry as Closed reports it: the last observation with
// the highest counters.
func (e *trackEntry) closedView() Socket {
	s := *e.sock
	s.BytesAcked, s.BytesReceived, s.BytesSent = e.acked, e.received, e.sent
	return s
}

func isEndState(st State) bool { return st == StateTimeWait || st == StateClose }

// Update takes this poll's sockets (their FirstSeen is set here) and the
// sockets destroyed since the last poll, and returns the sockets opened and
// closed since the last Update. destroyActive tells whether destroy
// notifications are being received (then ends seen only in the dump wait one
// poll for their notification).
func (t *tracker) Update(now time.Time, socks []Socket, destroyed []Socket, destroyActive bool) (opened, closed []Socket) {
	return t.UpdateSame(now, socks, destroyed, destroyActive, nil)
}

// UpdateSame is Update that also fills same, when not nil and as long as
// socks, with each socket's index in the previous Update's list when it was
// listed there with the same fields (Snapshot.SameAs), else -1.
func (t *tracker) UpdateSame(now time.Time, socks []Socket, destroyed []Socket, destroyActive bool, same []int32) (opened, closed []Socket) {
	t.gen++
	t.untracked = 0
	if t.base.IsZero() {
		t.base = now
	}
	since := now.Sub(t.base)
	clear(t.newTuple)
	t.newRefs, t.newTupleOK = t.newRefs[:0], false
	first := len(t.byCookie)+len(t.byTuple) == 0 && len(socks) > 1024
	if first {
		// The first poll: size the maps and lists once instead of growing
		// them (each growth copies what is there and leaves the old
		// array as garbage).
		t.byCookie = make(map[uint64]*trackEntry, len(socks))
		t.newRefs = make([]newRef, 0, len(socks))
	}
	endNow := func(e *trackEntry) {
		e.closedGen = t.gen
		e.endGen = 0
		closed = append(closed, e.closedView())
	}

	t.next = t.next[:0]
	if cap(t.next) < len(socks) { // sized, not grown by appends
		t.next = make([]*trackEntry, 0, len(socks)+len(socks)/8)
	}
	j := 0 // cursor in t.order
	// listed counts the distinct entries listed at this poll and waiting
	// tells whether one of them waits for its destroy notification: when
	// every entry is listed and none waits, the sweep below has nothing to
	// do and is skipped (the steady state: no socket opened or closed).
	listed, waiting := 0, false
	for i := range socks {
		s := &socks[i]
		var e *trackEntry
		if c := s.Cookie; c != 0 && j < len(t.order) && !t.order[j].removed && t.order[j].sock.Cookie == c {
			e = t.order[j]
			j++
		} else if e = t.lookup(s); e != nil && int(e.pos) < len(t.order) && t.order[e.pos] == e {
			j = int(e.pos) + 1 // resynchronised after a socket was added or removed
		}
		if e != nil {
			e.pos = int32(len(t.next))
			t.next = append(t.next, e)
		}
		if same != nil {
			same[i] = -1
		}
		if e == nil {
			s.FirstSeen = now
			e = &trackEntry{seenGen: t.gen, idx: int32(i)}
			e.observe(s, false)
			if !t.insert(s, e) {
				t.untracked++
				continue
			}
			e.pos = int32(len(t.next))
			t.next = append(t.next, e)
			listed++
			t.newRefs = append(t.newRefs, newRef{sock: i, opened: len(t.newRefs), e: e})
			if isEndState(s.State) { // opened and ended between two polls
				if destroyActive {
					e.endGen, e.endAt = t.gen, since
					waiting = true
				} else {
					endNow(e)
				}
			}
			continue
		}
		wasEnded := isEndState(e.sock.State)
		prev, listedBefore := e.sock, e.seenGen == t.gen-1 && !e.own
		if e.seenGen != t.gen {
			listed++
		}
		e.seenGen = t.gen
		// The listing keeps the owner too (a TIME_WAIT or orphaned socket
		// has no inode, uid or PID of its own): one connection has one
		// owner from first sight to its destroy notification.
		e.observe(s, false)
		if same != nil && listedBefore && SameObservation(s, prev) {
			same[i] = e.idx
		}
		e.idx = int32(i)
		if e.closedGen != 0 {
			continue
		}
		if e.endGen != 0 && !isEndState(s.State) {
			e.endGen = 0 // listed again: it had not ended
		}
		if isEndState(s.State) && !wasEnded && e.endGen == 0 {
			if destroyActive {
				e.endGen, e.endAt = t.gen, since
			} else {
				endNow(e)
			}
		}
		waiting = waiting || e.endGen != 0
	}

	t.order, t.next = t.next, t.order

	for i := range destroyed {
		d := &destroyed[i]
		e := t.lookup(d)
		if e == nil {
			c := *d
			c.Destroyed = true
			if c.FirstSeen.IsZero() || c.FirstSeen.After(now) {
				c.FirstSeen = now // the watcher stamps the time it saw the socket end
			}
			closed = append(closed, c)
			ne := &trackEntry{closedGen: t.gen}
			ne.observe(&c, true)
			t.insert(d, ne) // a later TIME_WAIT listing is not a new connection
			continue
		}
		if e.closedGen != 0 {
			continue
		}
		c := *d // the entry's own: the listing, if any, stays as listed
		c.Destroyed = true
		e.observe(&c, true)
		endNow(e)
	}

	// waited: the end was seen at an earlier poll, at least destroyGrace ago,
	// and no notification came.
	waited := func(e *trackEntry) bool {
		return e.endGen != 0 && e.endGen < t.gen && since-e.endAt >= destroyGrace
	}
	var opHidden map[int]bool
	sweep := func(m func(func(*trackEntry))) {
		m(func(e *trackEntry) {
			switch {
			case e.seenGen == t.gen:
				if waited(e) && e.closedGen == 0 {
					endNow(e) // no notification came: use the last counters
				}
			case e.closedGen != 0:
				if t.gen-max(e.closedGen, e.seenGen) >= closedLinger {
					t.remove(e)
				}
			case e.sock.State == StateSynRecv && t.handover(e, socks, &opHidden):
				t.remove(e)
			case !destroyActive || waited(e):
				endNow(e)
			case e.endGen == 0:
				e.endGen, e.endAt = t.gen, since // vanished: wait for the notification
			}
			// An entry not listed at this poll points into the previous
			// list (or is its own already): it copies its socket before
			// that list is reused.
			if e.seenGen != t.gen && !e.removed {
				e.adopt()
			}
		})
	}
	if waiting || listed != len(t.byCookie)+len(t.byTuple) {
		sweep(func(f func(*trackEntry)) {
			for _, e := range t.byCookie {
				f(e)
			}
		})
		sweep(func(f func(*trackEntry)) {
			for _, e := range t.byTuple {
				f(e)
			}
		})
	}
	// Map order is random: report closings in a stable order.
	slices.SortFunc(closed, func(a, b Socket) int {
		return cmp.Or(cmp.Compare(a.Cookie, b.Cookie), a.Local.Compare(b.Local), a.Remote.Compare(b.Remote))
	})
	// Opened is built last, from the sockets as they now are. When every
	// socket is new (the first poll) it is the socket list itself, not a
	// copy of it: 22 MB less at 100,000 sockets.
	switch n := len(t.newRefs); {
	case n == 0:
	case n == len(socks) && len(opHidden) == 0:
		opened = socks[:n:n]
	default:
		opened = make([]Socket, 0, n-len(opHidden))
		for j, r := range t.newRefs {
			if !opHidden[j] {
				opened = append(opened, socks[r.sock])
			}
		}
	}
	if first {
		t.newRefs = nil // scratch for what is new: later polls have few (480 kB at 20,000 sockets)
	}
	return opened, closed
}

// handover reports whether the vanished SYN_RECV entry e was accepted into a
// socket first seen at this poll with the same endpoints; that socket then
// inherits e's FirstSeen and is not reported as opened.
func (t *tracker) handover(e *trackEntry, socks []Socket, hidden *map[int]bool) bool {
	if !t.newTupleOK {
		for _, r := range t.newRefs {
			t.newTuple[keyOf(&socks[r.sock])] = r
		}
		t.newTupleOK = true
	}
	ref, ok := t.newTuple[keyOf(e.sock)]
	if !ok {
		return false
	}
	ref.e.sock.FirstSeen = e.sock.FirstSeen // the listing, or the entry's own copy
	socks[ref.sock].FirstSeen = e.sock.FirstSeen
	if *hidden == nil {
		*hidden = make(map[int]bool)
	}
	(*hidden)[ref.opened] = true
	delete(t.newTuple, keyOf(e.sock))
	return true
}
