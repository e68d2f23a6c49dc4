//go:build linux

package collector

// Steady-state cost per poll of the collector's own work (issue 11: no
// allocation per socket in steady state), on real loopback sockets of this
// process so the PID cache and the tracker see what they see in the agent:
//
//	go test ./collector -run '^$' -bench 'Steady' -benchmem
//
// allocs/op is per poll; it must not grow with the number of sockets.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// steadyConns opens n loopback connections held by this process until the
// benchmark ends.
func steadyConns(b *testing.B, n int) {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Skipf("listen: %v", err)
	}
	var conns []net.Conn
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		ln.Close()
	})
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Skipf("dial: %v", err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Skipf("accept: %v", err)
		}
		conns = append(conns, c, s)
	}
}

// syntheticDump returns n inet_diag messages (TCP v4, with a tcp_info
// attribute) followed by NLMSG_DONE, as one receive buffer.
func syntheticDump(n int) []byte {
	var buf []byte
	for i := 0; i < n; i++ {
		msg := make([]byte, inetDiagMsgLen)
		msg[0], msg[1] = afInet, 1
		binary.BigEndian.PutUint16(msg[4:], uint16(1024+i))
		binary.BigEndian.PutUint16(msg[6:], 443)
		copy(msg[8:], []byte{127, 0, 0, 1})
		copy(msg[24:], []byte{127, 0, 0, 2})
		binary.NativeEndian.PutUint32(msg[44:], uint32(i+1))
		binary.NativeEndian.PutUint32(msg[68:], uint32(100000+i))
		info := make([]byte, 4+232)
		binary.NativeEndian.PutUint16(info, uint16(len(info)))
		binary.NativeEndian.PutUint16(info[2:], inetDiagInfo)
		msg = append(msg, info...)
		buf = append(buf, nlmsg(sockDiagByFamily, 1, msg)...)
	}
	return append(buf, nlmsg(nlmsgDone, 1, make([]byte, 4))...)
}

func BenchmarkSteadyParse(b *testing.B) {
	const n = 20000
	buf := syntheticDump(n)
	dst := make([]Socket, 0, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		dst, _, err = parseDiagMessages(buf, ipprotoTCP, 1, false, dst[:0])
		if err != nil || len(dst) != n {
			b.Fatalf("%d sockets, %v", len(dst), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/socket")
}

// BenchmarkSteadyTracker: every poll lists the same sockets (no change).
func BenchmarkSteadyTracker(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := syntheticDump(n)
			socks, _, err := parseDiagMessages(buf, ipprotoTCP, 1, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			tr := newTracker()
			now := time.Unix(1e9, 0)
			tr.Update(now, socks, nil, true)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Second)
				opened, closed := tr.Update(now, socks, nil, true)
				if len(opened)+len(closed) != 0 {
					b.Fatalf("steady poll: %d opened, %d closed", len(opened), len(closed))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/socket")
		})
	}
}

// BenchmarkSteadyPIDCache: every socket's owner is already known (the
// listing keeps only this process's sockets, so another process's socket the
// cache gave up on does not add its periodic full walk).
func BenchmarkSteadyPIDCache(b *testing.B) {
	steadyConns(b, 5000)
	d, err := openSockDiag()
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	socks, err := d.Dump(nil)
	if err != nil {
		b.Fatal(err)
	}
	pt, pc := newProcTable("/proc"), newPIDCache("/proc")
	procs, err := pt.Refresh()
	if err != nil {
		b.Fatal(err)
	}
	pc.Attribute(socks, procs)
	socks = slices.DeleteFunc(socks, func(s Socket) bool { return s.PID != int32(os.Getpid()) })
	if len(socks) < 10000 {
		b.Fatalf("%d sockets of this process listed, want 10000", len(socks))
	}
	pc.Attribute(socks, procs)
	b.ReportAllocs()
	b.ResetTimer()
	walked := 0
	for i := 0; i < b.N; i++ {
		pc.Attribute(socks, procs)
		walked += pc.Stats().Walked
	}
	b.ReportMetric(float64(walked)/float64(b.N), "walks/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(socks)), "ns/socket")
}
