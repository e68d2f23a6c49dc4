package detect

import (
	"net/netip"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

// sock builds a socket; remote "" means a listener (0.0.0.0:0).
func sock(proto, state, local, remote string, pid int32) collector.Socket {
	s := collector.Socket{Proto: testProto(proto), State: testState(state), Local: netip.MustParseAddrPort(local), PID: pid, Family: 4}
	if remote == "" {
		if s.Local.Addr().Is6() {
			remote = "[::]:0"
		} else {
			remote = "0.0.0.0:0"
		}
	}
	s.Remote = netip.MustParseAddrPort(remote)
	if s.Local.Addr().Is6() {
		s.Family = 6
	}
	return s
}

func testEnv() *Env { return &Env{Common: Common{HomeNet: DefaultHomeNet()}} }

func TestDirection(t *testing.T) {
	snap := snapAt(t0)
	snap.Sockets = []collector.Socket{
		sock("tcp", "LISTEN", "0.0.0.0:22", "", 1),
		sock("tcp", "ESTABLISHED", "10.0.0.5:22", "10.0.0.9:51000", 1),       // accepted
		sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.1:443", 2),  // outbound
		sock("tcp", "ESTABLISHED", "127.0.0.1:41001", "127.0.0.1:8080", 2),   // loopback
		sock("udp", "UNCONN", "0.0.0.0:5353", "", 3),                         // udp listener
		sock("tcp", "LISTEN", "127.0.0.1:9000", "", 4),                       // bound to loopback only
		sock("tcp", "ESTABLISHED", "10.0.0.5:9000", "198.51.100.2:50000", 5), // not accepted by 127.0.0.1:9000
	}
	want := []string{DirUnknown, DirIngress, DirEgress, DirInternal, DirUnknown, DirUnknown, DirEgress}
	env := testEnv()
	for i := range snap.Sockets {
		if got := Direction(snap, env, &snap.Sockets[i]); got != want[i] {
			t.Errorf("socket %d %v->%v: direction %q, want %q", i, snap.Sockets[i].Local, snap.Sockets[i].Remote, got, want[i])
		}
	}
}

func TestIsExternal(t *testing.T) {
	env := testEnv()
	for a, want := range map[string]bool{
		"198.51.100.7": true, "8.8.8.8": true, "2001:db8::1": true,
		"10.0.0.1": false, "127.0.0.1": false, "169.254.1.1": false, "224.0.0.251": false,
		"255.255.255.255": false, "0.0.0.0": false, "fe80::1": false, "::ffff:10.1.1.1": false,
	} {
		if got := env.IsExternal(netip.MustParseAddr(a)); got != want {
			t.Errorf("IsExternal(%s) = %v, want %v", a, got, want)
		}
	}
}

// testState is the socket state named s; a name it does not know fails
// loudly.
func testState(s string) collector.State {
	st, ok := collector.ParseState(s)
	if !ok {
		panic("unknown socket state " + s)
	}
	return st
}

// testProto is the protocol named s ("tcp", "udp"); any other name fails
// loudly.
func testProto(s string) collector.Proto {
	p, ok := collector.ParseProto(s)
	if !ok {
		panic("unknown socket protocol " + s)
	}
	return p
}
