package collector

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	psnet "github.com/shirou/gopsutil/v4/net"
)

// AF_INET6 differs between systems: 30 on macOS, 23 on Windows.
const testAFInet, testAFInet6 = 2, 30

func TestSocketFromConnection(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		in   psnet.ConnectionStat
		want Socket
		ok   bool
	}{
		{
			name: "lsof established tcp4",
			in: psnet.ConnectionStat{Family: testAFInet, Type: psSockStream, Status: "ESTABLISHED", Pid: 42, Uids: []int32{501},
				Laddr: psnet.Addr{IP: "127.0.0.1", Port: 5000}, Raddr: psnet.Addr{IP: "127.0.0.1", Port: 6000}},
			want: Socket{Proto: ProtoTCP, Family: 4, State: StateEstablished, Local: ap("127.0.0.1:5000"), Remote: ap("127.0.0.1:6000"), PID: 42, UID: 501},
			ok:   true,
		},
		{
			name: "lsof listener with star address, v6",
			in: psnet.ConnectionStat{Family: testAFInet6, Type: psSockStream, Status: "LISTEN", Pid: 7,
				Laddr: psnet.Addr{IP: "*", Port: 22}},
			want: Socket{Proto: ProtoTCP, Family: 6, State: StateListen, Local: ap("[::]:22"), Remote: ap("[::]:0"), PID: 7},
			ok:   true,
		},
		{
			name: "windows state names",
			in: psnet.ConnectionStat{Family: testAFInet, Type: psSockStream, Status: "SYN_RECEIVED",
				Laddr: psnet.Addr{IP: "192.0.2.2", Port: 443}, Raddr: psnet.Addr{IP: "198.51.100.7", Port: 50000}},
			want: Socket{Proto: ProtoTCP, Family: 4, State: StateSynRecv, Local: ap("192.0.2.2:443"), Remote: ap("198.51.100.7:50000")},
			ok:   true,
		},
		{
			name: "udp unconnected",
			in: psnet.ConnectionStat{Family: testAFInet, Type: psSockDgram, Status: "NONE",
				Laddr: psnet.Addr{IP: "0.0.0.0", Port: 53}},
			want: Socket{Proto: ProtoUDP, Family: 4, State: StateUnconn, Local: ap("0.0.0.0:53"), Remote: ap("0.0.0.0:0")},
			ok:   true,
		},
		{
			name: "udp connected, bracketed v6",
			in: psnet.ConnectionStat{Family: testAFInet6, Type: psSockDgram,
				Laddr: psnet.Addr{IP: "[::1]", Port: 4000}, Raddr: psnet.Addr{IP: "::1", Port: 53}},
			want: Socket{Proto: ProtoUDP, Family: 6, State: StateEstablished, Local: ap("[::1]:4000"), Remote: ap("[::1]:53")},
			ok:   true,
		},
		{name: "unix socket", in: psnet.ConnectionStat{Family: 1, Type: psSockStream, Laddr: psnet.Addr{IP: "/tmp/s"}}},
		{name: "raw socket", in: psnet.ConnectionStat{Family: testAFInet, Type: 3}},
		{name: "bad address", in: psnet.ConnectionStat{Family: testAFInet, Type: psSockStream, Laddr: psnet.Addr{IP: "nope", Port: 1}}},
		{name: "bad port", in: psnet.ConnectionStat{Family: testAFInet, Type: psSockStream, Laddr: psnet.Addr{IP: "127.0.0.1", Port: 70000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := socketFromConnection(tt.in, testAFInet, testAFInet6)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPortableTracker(t *testing.T) {
	ap := netip.MustParseAddrPort
	a := Socket{Proto: ProtoTCP, Local: ap("127.0.0.1:1000"), Remote: ap("127.0.0.1:2000"), PID: 1}
	b := Socket{Proto: ProtoTCP, Local: ap("127.0.0.1:1001"), Remote: ap("127.0.0.1:2000"), PID: 2}
	c := Socket{Proto: ProtoUDP, Local: ap("127.0.0.1:1000"), Remote: ap("127.0.0.1:2000"), PID: 3}
	t0 := time.Unix(1000, 0)
	var tr portableTracker

	// The first poll is the baseline: nothing opened.
	socks := []Socket{a, b}
	opened, closed := tr.update(t0, socks)
	if len(opened) != 0 || len(closed) != 0 || !socks[0].FirstSeen.Equal(t0) {
		t.Fatalf("baseline: opened %v closed %v", opened, closed)
	}
	// b closes, c (same ports as a, other protocol) opens.
	t1 := t0.Add(2 * time.Second)
	socks = []Socket{a, c}
	opened, closed = tr.update(t1, socks)
	if len(opened) != 1 || opened[0].PID != 3 || !opened[0].FirstSeen.Equal(t1) {
		t.Errorf("opened %+v", opened)
	}
	if len(closed) != 1 || closed[0].PID != 2 || !closed[0].FirstSeen.Equal(t0) {
		t.Errorf("closed %+v", closed)
	}
	if !socks[0].FirstSeen.Equal(t0) {
		t.Errorf("a's FirstSeen moved to %v", socks[0].FirstSeen)
	}
	// Same tuple twice in one poll counts once.
	opened, closed = tr.update(t1.Add(time.Second), []Socket{a, c, c})
	if len(opened) != 0 || len(closed) != 0 {
		t.Errorf("duplicate tuple: opened %v closed %v", opened, closed)
	}
	// Everything gone.
	_, closed = tr.update(t1.Add(2*time.Second), nil)
	if len(closed) != 2 {
		t.Errorf("closed %d, want 2", len(closed))
	}
}
