package collector

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"
)

// Pure mapping of gopsutil's portable connection listing to Socket, used by
// the non-Linux source (source_other.go). It has no build tag so that it is
// tested on Linux too.

// gopsutil socket types (SOCK_STREAM and SOCK_DGRAM are 1 and 2 on every
// system gopsutil supports).
const (
	psSockStream = 1
	psSockDgram  = 2
)

// portableTCPStates maps the state names of lsof (macOS, BSD) and of the
// Windows TCP table that differ from the Linux names of Socket.State (those
// are read with ParseState).
var portableTCPStates = map[string]State{
	"SYN_RECEIVED": StateSynRecv,
	"FIN_WAIT_1":   StateFinWait1,
	"FIN_WAIT_2":   StateFinWait2,
	"CLOSED":       StateClose,
	"DELETE":       StateClose,
	"BOUND":        StateClose,
	"IDLE":         StateClose,
}

// socketFromConnection maps one gopsutil connection. afInet and afInet6 are
// the system's AF_INET and AF_INET6 (they differ between systems). ok is
// false for anything that is not a TCP or UDP socket over IPv4/IPv6. The
// tcp_info counters stay zero: gopsutil does not expose them.
func socketFromConnection(c psnet.ConnectionStat, afInet, afInet6 uint32) (Socket, bool) {
	var s Socket
	switch c.Type {
	case psSockStream:
		s.Proto = ProtoTCP
	case psSockDgram:
		s.Proto = ProtoUDP
	default:
		return s, false
	}
	switch c.Family {
	case afInet:
		s.Family = 4
	case afInet6:
		s.Family = 6
	default:
		return s, false
	}
	var ok bool
	if s.Local, ok = portableAddrPort(c.Laddr, s.Family); !ok {
		return s, false
	}
	if s.Remote, ok = portableAddrPort(c.Raddr, s.Family); !ok {
		return s, false
	}
	if s.Proto == ProtoUDP {
		if s.Remote.Port() != 0 {
			s.State = StateEstablished
		} else {
			s.State = StateUnconn
		}
	} else if st, known := ParseState(strings.ToUpper(c.Status)); known {
		s.State = st
	} else if st, known := portableTCPStates[strings.ToUpper(c.Status)]; known {
		s.State = st
	} else {
		s.State = StateUnknown // a status this table does not name
	}
	if len(c.Uids) > 0 && c.Uids[0] >= 0 {
		s.UID = uint32(c.Uids[0])
	}
	if c.Pid > 0 {
		s.PID = c.Pid
	}
	return s, true
}

// portableAddrPort parses a gopsutil address; "", "*" and a zero port mean
// the unspecified address of the family (lsof prints "*:*" for no peer).
func portableAddrPort(a psnet.Addr, family uint8) (netip.AddrPort, bool) {
	if a.Port > 0xffff {
		return netip.AddrPort{}, false
	}
	ipStr := strings.TrimSuffix(strings.TrimPrefix(a.IP, "["), "]")
	var ip netip.Addr
	if ipStr == "" || ipStr == "*" {
		ip = netip.IPv4Unspecified()
		if family == 6 {
			ip = netip.IPv6Unspecified()
		}
	} else {
		var err error
		if ip, err = netip.ParseAddr(ipStr); err != nil {
			return netip.AddrPort{}, false
		}
		if family == 4 {
			ip = ip.Unmap()
		}
	}
	return netip.AddrPortFrom(ip, uint16(a.Port)), true
}

// portableTupleKey identifies a socket between polls when there is no kernel
// cookie: protocol, local and remote address and port.
type portableTupleKey struct {
	proto         Proto
	local, remote netip.AddrPort
}

func portableTuple(s Socket) portableTupleKey {
	return portableTupleKey{proto: s.Proto, local: s.Local, remote: s.Remote}
}

// portableTracker diffs successive socket lists by 5-tuple. The first update
// is the baseline: nothing is reported opened, every socket gets FirstSeen =
// now. Memory is bounded by the last poll's sockets.
type portableTracker struct {
	prev    map[portableTupleKey]Socket
	started bool
}

// update sets FirstSeen on socks (in place) and returns the sockets new since
// the previous update and those gone since, with their last known values.
func (t *portableTracker) update(now time.Time, socks []Socket) (opened, closed []Socket) {
	cur := make(map[portableTupleKey]Socket, len(socks))
	for i := range socks {
		k := portableTuple(socks[i])
		if old, ok := t.prev[k]; ok {
			socks[i].FirstSeen = old.FirstSeen
		} else if old, dup := cur[k]; dup {
			socks[i].FirstSeen = old.FirstSeen // same tuple twice in one poll
		} else {
			socks[i].FirstSeen = now
			if t.started {
				opened = append(opened, socks[i])
			}
		}
		cur[k] = socks[i]
	}
	for k, s := range t.prev {
		if _, ok := cur[k]; !ok {
			closed = append(closed, s)
		}
	}
	slices.SortFunc(closed, func(a, b Socket) int { return a.FirstSeen.Compare(b.FirstSeen) })
	t.prev, t.started = cur, true
	return opened, closed
}
