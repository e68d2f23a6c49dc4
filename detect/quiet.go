package detect

import (
	"hash/maphash"
	"math/bits"
	"net/netip"

	"github.com/netsentinel/netsentinel/collector"
)

// Quiet sockets: most of a busy host's sockets are listed poll after poll
// unchanged, and most detectors reject each of them with the same pure tests
// every time (a loopback peer, a port off their list, an ingress
// connection). A detector walks the sockets with Env.visitSockets and marks a
// socket quiet for itself when it ignored it for reasons that depend only on:
//
//   - the socket's own fields: protocol, endpoints, state, owner (PID, uid,
//     inode), byte counters, FirstSeen;
//   - the detector's configuration and home_net (a reload clears every mark);
//   - the poll's listeners and the host's addresses (a change of either
//     clears every mark).
//
// At the next Run, a socket the collector lists again with the same fields
// (Snapshot.SameAs, filled by its connection tracker, which matches sockets
// across polls anyway) keeps its marks, and the detector skips it without
// reading it: the work of a poll then grows with what changed, not with the
// number of sockets. Anything else a rejection depends on (the process
// table, the detector's windows, a downloaded list) must not lead to a mark,
// unless the detector names it in a key (Env.QuietKey) that drops its marks
// when it changes. Snapshots without SameAs or not following the previous
// Run's (Snapshot.Seq) carry no marks.
type quietMarks struct {
	prevMark []uint16   // the previous Run's marks
	prevSeq  uint64     // and its snapshot's Seq
	mark     []uint16   // this Run's marks, by index in snap.Sockets
	key      uint64     // listeners and host addresses of the previous Run
	keys     [16]uint64 // per bit: QuietKey's key at the previous Run
	seed     maphash.Seed
	off      bool // disabled (tests compare against a run without marks)
}

// Bits of quietMarks, one per detector that uses them.
const (
	quietExfil uint16 = 1 << iota
	quietLateral
	quietPortScan
	quietSuspiciousPort
	quietDNS
	quietBeacon
	quietRelayConn   // process_spawn's index of outbound connections (revIndex)
	quietTor         // tor's walk
	quietProxy       // tor's local-proxy fan-out walk
	quietNotListener // not a listener (IsListener reads only the socket)

	// quietPure are the bits that depend on the socket alone: kept when
	// the listeners or the host's addresses change.
	quietPure = quietNotListener
)

// begin carries the previous Run's marks over to snap's unchanged sockets.
func (q *quietMarks) begin(snap *collector.Snapshot, env *Env) {
	n := len(snap.Sockets)
	if cap(q.mark) < n {
		q.mark = make([]uint16, n, n+n/8)
	}
	q.mark = q.mark[:n]
	clear(q.mark)
	if q.off {
		return
	}
	if q.seed == (maphash.Seed{}) {
		q.seed = maphash.MakeSeed()
	}
	if q.prevSeq != 0 && snap.Seq == q.prevSeq+1 && len(snap.SameAs) == n {
		prev := q.prevMark
		for i, k := range snap.SameAs {
			if k >= 0 && int(k) < len(prev) {
				q.mark[i] = prev[k]
			}
		}
	}
	// The listener index reads the marks (quietNotListener): build it once
	// the marks are carried, then drop those that depended on it.
	key := q.envKey(snap, env)
	if key != q.key {
		q.key = key
		for i := range q.mark {
			q.mark[i] &= quietPure
		}
	}
}

// QuietKey drops bit's marks when key, a digest of whatever else the
// detector's marks depend on (a downloaded list, the processes it tracks),
// differs from the key given at the previous Run. Called at the start of
// the detector's Detect.
func (e *Env) QuietKey(bit uint16, key uint64) {
	q := &e.quiet
	b := bits.TrailingZeros16(bit)
	if b >= len(q.keys) || q.keys[b] == key {
		return
	}
	q.keys[b] = key
	for i := range q.mark {
		q.mark[i] &^= bit
	}
}

// end keeps snap's marks for the next Run.
func (q *quietMarks) end(snap *collector.Snapshot) {
	if q.off {
		q.mark = q.mark[:0]
		return
	}
	q.prevSeq = snap.Seq
	q.prevMark, q.mark = q.mark, q.prevMark[:0]
}

// reset drops every mark (a reconfiguration).
func (q *quietMarks) reset() {
	q.prevSeq = 0
}

// envKey hashes what a mark may depend on besides the socket and the
// configuration: the listeners (Direction, accepted sides) and the host's
// own addresses.
func (q *quietMarks) envKey(snap *collector.Snapshot, env *Env) uint64 {
	var h maphash.Hash
	h.SetSeed(q.seed)
	for _, a := range snap.HostIPs {
		b := a.As16()
		h.Write(b[:])
	}
	h.WriteByte(0)
	var sum, n uint64
	idx := env.listenersFor(snap)
	// The listener index is a set built from the list: order-free sum.
	for k, addrs := range idx.addrs {
		for _, a := range addrs {
			sum += listenerHash(q.seed, k, a)
			n++
		}
	}
	var buf [16]byte
	for i := range 8 {
		buf[i] = byte(sum >> (8 * i))
		buf[8+i] = byte(n >> (8 * i))
	}
	h.Write(buf[:])
	return h.Sum64()
}

func listenerHash(seed maphash.Seed, k listenKey, a netip.Addr) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	b := a.As16()
	h.Write(b[:])
	if k.udp {
		h.WriteByte(1)
	}
	h.WriteByte(byte(k.port))
	h.WriteByte(byte(k.port >> 8))
	return h.Sum64()
}

// visitSockets calls visit with each socket of snap not marked quiet for
// bit, and marks those visit says it ignored (see quietMarks for what such a
// reason may read). Outside an engine's Run (a detector called on its own)
// there are no marks: every socket is visited.
func (e *Env) visitSockets(snap *collector.Snapshot, bit uint16, visit func(s *collector.Socket) (quiet bool)) {
	e.visitSocketsAt(snap, bit, func(_ int, s *collector.Socket) bool { return visit(s) })
}

// visitSocketsAt is visitSockets giving visit each socket's index in
// snap.Sockets too.
func (e *Env) visitSocketsAt(snap *collector.Snapshot, bit uint16, visit func(i int, s *collector.Socket) (quiet bool)) {
	mark := e.quiet.mark // sized for snap by begin; empty outside a Run
	for i := range snap.Sockets {
		if i < len(mark) && mark[i]&bit != 0 {
			continue
		}
		if visit(i, &snap.Sockets[i]) && i < len(mark) {
			mark[i] |= bit
		}
	}
}
