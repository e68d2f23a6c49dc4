//go:build linux

package collector

import (
	"net"
	"testing"
	"time"
)

// drainUntil drains w until pred holds for the drained sockets, bounded by time.
func drainUntil(t *testing.T, w *destroyWatcher, pred func([]Socket) bool) ([]Socket, uint64) {
	t.Helper()
	var got []Socket
	var lost uint64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var l uint64
		got, l = w.Drain(got)
		lost += l
		if pred(got) {
			return got, lost
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got, lost
}

func TestDestroyWatcherReportsClosedTCPWithCounters(t *testing.T) {
	w, err := openDestroyWatcher(0)
	if err != nil {
		t.Fatalf("openDestroyWatcher: %v", err)
	}
	defer w.Close()
	d, err := openSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	p := openLoopPair(t, "tcp6", "[::1]:0")
	p.exchange(t, 5000)
	socks, err := d.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	cli := findSock(socks, "tcp", ap(p.client.LocalAddr()), ap(p.client.RemoteAddr()))
	srv := findSock(socks, "tcp", ap(p.serv.LocalAddr()), ap(p.serv.RemoteAddr()))
	if cli == nil || srv == nil {
		t.Fatal("connection not in dump")
	}
	cliCookie, srvCookie := cli.Cookie, srv.Cookie
	p.close()

	find := func(socks []Socket, c uint64) *Socket {
		for i := range socks {
			if socks[i].Cookie == c {
				return &socks[i]
			}
		}
		return nil
	}
	got, _ := drainUntil(t, w, func(s []Socket) bool { return find(s, cliCookie) != nil && find(s, srvCookie) != nil })
	dc, ds := find(got, cliCookie), find(got, srvCookie)
	if dc == nil || ds == nil {
		t.Fatalf("destroy events for cookies %d/%d not received; got %d events", cliCookie, srvCookie, len(got))
	}
	for _, s := range []*Socket{dc, ds} {
		if !s.Destroyed || s.Proto != ProtoTCP || s.Family != 6 {
			t.Errorf("destroyed socket %+v: want Destroyed tcp family 6", *s)
		}
	}
	if dc.Local != ap(p.client.LocalAddr()) || dc.Remote != ap(p.client.RemoteAddr()) {
		t.Errorf("client destroy event endpoints %s→%s", dc.Local, dc.Remote)
	}
	if dc.BytesSent != 5000 || dc.BytesAcked < 5000 {
		t.Errorf("client destroy event bytes sent %d acked %d, want 5000", dc.BytesSent, dc.BytesAcked)
	}
	if ds.BytesReceived < 5000 {
		t.Errorf("server destroy event bytes received %d, want >= 5000", ds.BytesReceived)
	}
	if err := w.Err(); err != nil {
		t.Errorf("watcher error: %v", err)
	}
}

func TestDestroyWatcherReportsUDPAndCountsOverflow(t *testing.T) {
	w, err := openDestroyWatcherMax(0, 2) // buffer holds two sockets
	if err != nil {
		t.Fatalf("openDestroyWatcher: %v", err)
	}
	defer w.Close()
	const n = 6
	ports := map[uint16]bool{}
	for i := 0; i < n; i++ {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53})
		if err != nil {
			t.Fatal(err)
		}
		ports[uint16(c.LocalAddr().(*net.UDPAddr).Port)] = true
		c.Close()
	}
	var mine []Socket
	var lost uint64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && uint64(len(mine))+lost < n {
		got, l := w.Drain(nil)
		if len(got) > 2 {
			t.Fatalf("Drain returned %d sockets from a buffer bounded at 2", len(got))
		}
		lost += l
		for _, s := range got {
			if s.Proto == ProtoUDP && ports[s.Local.Port()] && s.Remote.Port() == 53 {
				mine = append(mine, s)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Other sockets on the host may be destroyed too; ours are counted either
	// as received or as lost, never silently dropped.
	if len(mine) == 0 || uint64(len(mine))+lost < n {
		t.Errorf("received %d of our %d UDP destroy events and %d lost", len(mine), n, lost)
	}
	if lost == 0 {
		t.Error("overflowing a 2-socket buffer with 6 events counted no loss")
	}
}

func TestDestroyWatcherCloseStopsReader(t *testing.T) {
	w, err := openDestroyWatcher(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not stop the reader goroutine")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
