//go:build linux

package collector

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap/zaptest"
)

func newTestSource(t *testing.T, opts Options) Source {
	t.Helper()
	// NewSource exports a ProcRoot as HOST_PROC (for gopsutil); restore it
	// so later tests do not read this test's proc root.
	t.Setenv("HOST_PROC", os.Getenv("HOST_PROC"))
	src, err := NewSource(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func collect(t *testing.T, src Source) *Snapshot {
	t.Helper()
	snap, err := src.Collect(context.Background())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return snap
}

func findIn(socks []Socket, local, remote netip.AddrPort) *Socket {
	for i := range socks {
		if socks[i].Proto == ProtoTCP && socks[i].Local == local && socks[i].Remote == remote {
			return &socks[i]
		}
	}
	return nil
}

func TestSourceFindsOwnLoopbackSocketsWithPIDAndBytes(t *testing.T) {
	src := newTestSource(t, Options{ProcRoot: "/proc", DestroyEvents: true, SystemMetrics: true})
	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	defer p.close()
	p.exchange(t, 3000)

	before := time.Now()
	snap := collect(t, src)
	me := int32(os.Getpid())
	if snap.Time.Before(before) || snap.Time.After(time.Now()) {
		t.Errorf("snapshot time %v outside the Collect call", snap.Time)
	}
	lst := findSockAddrs(snap.Sockets, p.ln.Addr(), nil)
	cli := findIn(snap.Sockets, ap(p.client.LocalAddr()), ap(p.client.RemoteAddr()))
	srv := findIn(snap.Sockets, ap(p.serv.LocalAddr()), ap(p.serv.RemoteAddr()))
	if lst == nil || cli == nil || srv == nil {
		t.Fatalf("listener %v client %v server %v: not all found among %d sockets", lst, cli, srv, len(snap.Sockets))
	}
	for _, s := range []*Socket{lst, cli, srv} {
		if s.PID != me {
			t.Errorf("socket %s→%s PID %d, want the test's %d", s.Local, s.Remote, s.PID, me)
		}
		if s.FirstSeen != snap.Time {
			t.Errorf("socket %s FirstSeen %v, want the first poll's time", s.Local, s.FirstSeen)
		}
	}
	if cli.BytesSent != 3000 || srv.BytesReceived != 3000 {
		t.Errorf("tcp_info bytes: client sent %d, server received %d, want 3000", cli.BytesSent, srv.BytesReceived)
	}
	if findIn(snap.Opened, cli.Local, cli.Remote) == nil {
		t.Error("client socket not in Opened on the first poll")
	}
	if snap.Processes[me] == nil || snap.Processes[me].PID != me {
		t.Errorf("own process missing from Processes")
	}
	if snap.Hostname == "" || len(snap.HostIPs) == 0 || !snap.Counters.Valid {
		t.Errorf("hostname %q, %d host IPs, counters valid %v", snap.Hostname, len(snap.HostIPs), snap.Counters.Valid)
	}
	st := snap.Stats
	if st.Sockets != len(snap.Sockets) || st.Processes != len(snap.Processes) || st.Duration <= 0 {
		t.Errorf("stats %+v do not describe the snapshot", st)
	}
	noPID := 0
	for _, s := range snap.Sockets {
		if s.PID == 0 {
			noPID++
		}
	}
	if st.SocketsNoPID != noPID {
		t.Errorf("Stats.SocketsNoPID %d, counted %d", st.SocketsNoPID, noPID)
	}
	t.Logf("first poll: %d sockets (%d without PID), %d processes, %v, errors %v", st.Sockets, st.SocketsNoPID, st.Processes, st.Duration, st.Errors)

	// Second poll: the same connection is neither opened again nor closed.
	p.exchange(t, 1000)
	snap2 := collect(t, src)
	if findIn(snap2.Opened, cli.Local, cli.Remote) != nil || findIn(snap2.Closed, cli.Local, cli.Remote) != nil {
		t.Error("a still-open connection was reported opened or closed again")
	}
	if c2 := findIn(snap2.Sockets, cli.Local, cli.Remote); c2 == nil || c2.BytesSent != 4000 || c2.FirstSeen != snap.Time {
		t.Errorf("second poll client %+v: want 4000 bytes sent, FirstSeen of the first poll", c2)
	}
}

// collectUntil polls src until cond holds for the accumulated Closed
// sockets, bounded in time.
func collectUntil(t *testing.T, src Source, cond func(closed []Socket) bool) []Socket {
	t.Helper()
	var closed []Socket
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		closed = append(closed, collect(t, src).Closed...)
		if cond(closed) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return closed
}

func TestSourceShortLivedConnectionShowsUpClosedWithBytes(t *testing.T) {
	src := newTestSource(t, Options{ProcRoot: "/proc", DestroyEvents: true})
	collect(t, src)

	// Opened, used and closed entirely between two polls.
	p := openLoopPair(t, "tcp6", "[::1]:0")
	p.exchange(t, 4096)
	cliL, cliR := ap(p.client.LocalAddr()), ap(p.client.RemoteAddr())
	srvL, srvR := ap(p.serv.LocalAddr()), ap(p.serv.RemoteAddr())
	p.close()

	closed := collectUntil(t, src, func(c []Socket) bool {
		a, b := findIn(c, cliL, cliR), findIn(c, srvL, srvR)
		return a != nil && a.Destroyed && b != nil && b.Destroyed
	})
	cli, srv := findIn(closed, cliL, cliR), findIn(closed, srvL, srvR)
	if cli == nil || srv == nil || !cli.Destroyed || !srv.Destroyed {
		t.Fatalf("short-lived connection not in Closed via destroy events: client %+v server %+v", cli, srv)
	}
	// tcpi_bytes_received counts the peer's FIN as one byte.
	if cli.BytesSent != 4096 || srv.BytesReceived < 4096 || srv.BytesReceived > 4097 {
		t.Errorf("closed bytes: client sent %d, server received %d, want 4096 (+1 for the FIN)", cli.BytesSent, srv.BytesReceived)
	}
	n := 0
	for _, s := range closed {
		if s.Cookie == cli.Cookie {
			n++
		}
	}
	if n != 1 {
		t.Errorf("client connection closed %d times, want once", n)
	}
}

func TestSourceClosedCarriesLastKnownPID(t *testing.T) {
	src := newTestSource(t, Options{ProcRoot: "/proc", DestroyEvents: true})
	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	p.exchange(t, 2222)
	collect(t, src) // listed with PID and inode
	cliL, cliR := ap(p.client.LocalAddr()), ap(p.client.RemoteAddr())
	p.exchange(t, 1000)
	p.close()
	closed := collectUntil(t, src, func(c []Socket) bool { return findIn(c, cliL, cliR) != nil })
	cli := findIn(closed, cliL, cliR)
	if cli == nil {
		t.Fatal("closed connection not reported")
	}
	if cli.PID != int32(os.Getpid()) || cli.Inode == 0 || !cli.Destroyed {
		t.Errorf("closed socket %+v: want the PID and inode seen at the earlier poll, from a destroy event", *cli)
	}
	if cli.BytesSent != 3222 {
		t.Errorf("closed socket bytes sent %d, want the final 3222 from the destroy event", cli.BytesSent)
	}
}

// The client's side of a connection it closed first stays listed in
// TIME_WAIT (no inode or uid of its own there) with the owner it had.
func TestSourceTimeWaitListingKeepsItsOwner(t *testing.T) {
	src := newTestSource(t, Options{ProcRoot: "/proc", DestroyEvents: true})
	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	defer p.close()
	cliL, cliR := ap(p.client.LocalAddr()), ap(p.client.RemoteAddr())
	first := findIn(collect(t, src).Sockets, cliL, cliR)
	me := int32(os.Getpid())
	if first == nil || first.PID != me || first.Inode == 0 {
		t.Fatalf("open connection %+v: want it listed with the test's PID %d and an inode", first, me)
	}
	p.client.Close() // active close: the client's socket goes to TIME_WAIT
	p.serv.Close()
	var tw *Socket
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s := findIn(collect(t, src).Sockets, cliL, cliR); s != nil && s.State == StateTimeWait {
			tw = s
			break
		}
	}
	if tw == nil {
		t.Fatal("the closed client socket was never listed in TIME_WAIT")
	}
	if tw.PID != me || tw.Inode != first.Inode || tw.UID != first.UID {
		t.Errorf("TIME_WAIT listing pid %d inode %d uid %d, want pid %d inode %d uid %d as when open",
			tw.PID, tw.Inode, tw.UID, me, first.Inode, first.UID)
	}
}

func TestSourceFailingPartsDoNotFailTheSnapshot(t *testing.T) {
	empty := t.TempDir() // a proc root with nothing in it
	src := newTestSource(t, Options{ProcRoot: empty, ResolvConf: empty + "/none", DestroyEvents: false})
	p := openLoopPair(t, "tcp4", "127.0.0.1:0")
	defer p.close()
	snap := collect(t, src)
	if findIn(snap.Sockets, ap(p.client.LocalAddr()), ap(p.client.RemoteAddr())) == nil {
		t.Fatal("sockets missing when the proc root is unusable")
	}
	joined := strings.Join(snap.Stats.Errors, "\n")
	// The neighbour table comes through rtnetlink, not the proc root.
	for _, part := range []string{"processes:", "routes:", "counters:", "resolv_conf:"} {
		if !strings.Contains(joined, part) {
			t.Errorf("Stats.Errors does not name %q: %v", part, snap.Stats.Errors)
		}
	}
	if snap.Stats.SocketsNoPID != len(snap.Sockets) {
		t.Errorf("%d of %d sockets without PID, want all (no process table)", snap.Stats.SocketsNoPID, len(snap.Sockets))
	}
	if snap.Processes == nil || snap.ARP == nil || snap.Gateways == nil || snap.Nameservers == nil {
		t.Error("failed parts should be empty, not nil")
	}
}

func TestSourceCollectHonoursCancelledContext(t *testing.T) {
	src := newTestSource(t, Options{ProcRoot: "/proc"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Collect(ctx); err == nil {
		t.Error("Collect with a cancelled context succeeded")
	}
}

// A recycled snapshot's socket memory holds the next dump (no new slice per
// poll), and the recycled snapshot no longer shows sockets.
func TestSourceRecycleReusesSocketMemory(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src := newTestSource(t, Options{})
	r, ok := src.(Recycler)
	if !ok {
		t.Fatal("the Linux source does not recycle")
	}
	first := collect(t, src)
	if len(first.Sockets) == 0 {
		t.Fatal("no sockets listed (the test's listener at least)")
	}
	mem, room := unsafe.SliceData(first.Sockets[:1]), cap(first.Sockets)
	second := collect(t, src)
	r.Recycle(first)
	if first.Sockets != nil {
		t.Error("a recycled snapshot still lists sockets")
	}
	third := collect(t, src)
	if unsafe.SliceData(third.Sockets[:1]) != mem && len(third.Sockets) <= room {
		t.Error("the dump after Recycle did not reuse the recycled memory")
	}
	if unsafe.SliceData(second.Sockets[:1]) == mem {
		t.Error("a dump reused memory that was not recycled")
	}
	if findListener(third.Sockets, ln.Addr().(*net.TCPAddr).AddrPort()) == nil {
		t.Error("the reused dump lost the test's listener")
	}
	// The latest list is the tracker's until the next poll: never reused.
	latest := unsafe.SliceData(third.Sockets[:1])
	r.Recycle(third)
	if third.Sockets == nil {
		t.Error("the latest snapshot was taken back")
	}
	if fourth := collect(t, src); unsafe.SliceData(fourth.Sockets[:1]) == latest {
		t.Error("a dump reused the latest snapshot's memory")
	}
}

func findListener(socks []Socket, ap netip.AddrPort) *Socket {
	for i := range socks {
		if socks[i].Proto == ProtoTCP && socks[i].State == StateListen && socks[i].Local == ap {
			return &socks[i]
		}
	}
	return nil
}
