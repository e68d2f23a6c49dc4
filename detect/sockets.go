package detect

import (
	"net/netip"
	"strconv"

	"github.com/netsentinel/netsentinel/collector"
)

// Direction values (ECS network.direction, from the host's point of view).
const (
	DirIngress  = "ingress"  // the remote peer opened the connection to a local listener
	DirEgress   = "egress"   // this host opened the connection
	DirInternal = "internal" // both ends on this host (loopback)
	DirUnknown  = "unknown"  // no remote peer (a listener) or not decidable
)

// IsListener reports whether s is a listening socket: TCP in LISTEN, or UDP
// with no remote peer.
func IsListener(s *collector.Socket) bool {
	if s.Proto == collector.ProtoUDP {
		return !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || s.Remote.Port() == 0
	}
	return s.State == collector.StateListen
}

// connID is ConnKey as a compact comparable value: the same identity
// without building a string, for the per-connection windows that are looked
// up for every socket of every poll (48 bytes; IPv4 addresses are stored
// mapped, zones are not kept: sockets carry none).
type connID struct {
	cookie       uint64
	lport, rport uint16
	proto        uint8 // 1 tcp, 2 udp, 3 other
	laddr, raddr [16]byte
}

func connIDOf(s *collector.Socket) connID {
	if s.Cookie != 0 {
		return connID{cookie: s.Cookie}
	}
	p := uint8(3)
	switch s.Proto {
	case collector.ProtoTCP:
		p = 1
	case collector.ProtoUDP:
		p = 2
	}
	return connID{proto: p, lport: s.Local.Port(), rport: s.Remote.Port(),
		laddr: s.Local.Addr().As16(), raddr: s.Remote.Addr().As16()}
}

// ConnKey identifies a connection across polls and destroy events: the kernel
// socket cookie when known, else the protocol and both endpoints.
func ConnKey(s *collector.Socket) string {
	// Built in a stack buffer: one allocation (the string) per call, not
	// three; every detector calls it for every socket of every poll.
	var b [128]byte
	if s.Cookie != 0 {
		return string(strconv.AppendUint(append(b[:0], "c:"...), s.Cookie, 16))
	}
	k := append(append(b[:0], s.Proto.String()...), '|')
	k = append(s.Local.AppendTo(k), '|')
	return string(s.Remote.AppendTo(k))
}

// IsExternal reports whether a is a routable peer outside home_net: valid,
// not unspecified, multicast, loopback or link-local, and not internal.
func (e *Env) IsExternal(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	return !e.IsInternal(a)
}

type listenKey struct {
	udp  bool
	port uint16
}

// listenerIndex maps (proto, port) to the local addresses listening on it.
// Two bitmaps answer most questions without the map: ports nothing listens
// on (every outbound connection's ephemeral port) and ports with a wildcard
// listener (a server's accepted connections).
type listenerIndex struct {
	some, any PortSet // TCP; some: any listener, any: one on the unspecified address
	usome     PortSet // UDP
	uany      PortSet
	addrs     map[listenKey][]netip.Addr
}

// buildListeners indexes snap's listeners, reusing idx's memory when given;
// sockets env's marks say are no listener are skipped unread (quiet.go).
func buildListeners(snap *collector.Snapshot, idx *listenerIndex, env *Env) *listenerIndex {
	if idx == nil {
		idx = &listenerIndex{addrs: map[listenKey][]netip.Addr{}}
	} else {
		idx.some.clear()
		idx.any.clear()
		idx.usome.clear()
		idx.uany.clear()
		clear(idx.addrs)
	}
	env.visitSockets(snap, quietNotListener, func(s *collector.Socket) bool {
		if !IsListener(s) {
			return true
		}
		if !s.Local.IsValid() {
			return false
		}
		port, a := s.Local.Port(), s.Local.Addr().Unmap()
		some, any := &idx.some, &idx.any
		if s.Proto == collector.ProtoUDP {
			some, any = &idx.usome, &idx.uany
		}
		some.Add(port)
		if a.IsUnspecified() {
			any.Add(port)
		}
		k := listenKey{s.Proto == collector.ProtoUDP, port}
		idx.addrs[k] = append(idx.addrs[k], a)
		return false
	})
	return idx
}

func (idx *listenerIndex) accepts(s *collector.Socket) bool {
	port := s.Local.Port()
	some, any := idx.some, idx.any
	if s.Proto == collector.ProtoUDP {
		some, any = idx.usome, idx.uany
	}
	switch {
	case !some.Has(port):
		return false
	case any.Has(port):
		return true
	}
	local := s.Local.Addr().Unmap()
	for _, a := range idx.addrs[listenKey{s.Proto == collector.ProtoUDP, port}] {
		if a.IsUnspecified() || a == local {
			return true
		}
	}
	return false
}

// Direction tells who opened s, from this host's point of view: ingress when
// the local endpoint is a port this host listens on, egress otherwise,
// internal when the peer is loopback, unknown for a listener.
func Direction(snap *collector.Snapshot, env *Env, s *collector.Socket) string {
	if !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || IsListener(s) {
		return DirUnknown
	}
	if s.Remote.Addr().Unmap().IsLoopback() {
		return DirInternal
	}
	if env.listenersFor(snap).accepts(s) {
		return DirIngress
	}
	return DirEgress
}
