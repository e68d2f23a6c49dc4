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
	if s.Proto == "udp" {
		return !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || s.Remote.Port() == 0
	}
	return s.State == "LISTEN"
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
	k := append(append(b[:0], s.Proto...), '|')
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
	proto string
	port  uint16
}

// listenerIndex maps (proto, port) to the local addresses listening on it.
type listenerIndex map[listenKey][]netip.Addr

func buildListeners(snap *collector.Snapshot) listenerIndex {
	idx := listenerIndex{}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		if !IsListener(s) || !s.Local.IsValid() {
			continue
		}
		k := listenKey{s.Proto, s.Local.Port()}
		idx[k] = append(idx[k], s.Local.Addr().Unmap())
	}
	return idx
}

func (idx listenerIndex) accepts(s *collector.Socket) bool {
	for _, a := range idx[listenKey{s.Proto, s.Local.Port()}] {
		if a.IsUnspecified() || a == s.Local.Addr().Unmap() {
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
