package detect

// Detection cost on a large, mostly steady socket table (issue 11: work per
// poll should grow with what changed, not with the number of sockets):
//
//	go test ./detect -run '^$' -bench BenchmarkEngineSteady -cpu 1 -benchtime 100x -count 3
//
// Each case runs with the detectors' quiet marks (quiet.go; the snapshots are
// linked as the collector's tracker links them) and without (marks=off).
//
// The snapshots are built before the clock starts, shaped like the
// benchmark host of scripts/bench.sh: conns established loopback
// connections (two sockets each) held by a few processes behind one
// listener, plus a few hundred external connections whose counters move,
// 0.5% of the connections replaced at every poll (Opened and Closed as the
// collector's tracker reports them), and a process table of a few hundred
// processes with shells and pipes. obs/s is socket observations (open plus
// closed) per second of Engine.Run.

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func BenchmarkEngineSteady(b *testing.B) {
	for _, bc := range []struct {
		conns int
		proxy bool
	}{{10000, false}, {50000, false}, {10000, true}, {50000, true}} {
		name := fmt.Sprintf("loopback/conns=%d", bc.conns)
		if bc.proxy {
			name = fmt.Sprintf("proxy/conns=%d", bc.conns)
		}
		conns := bc.conns
		for _, marks := range []bool{true, false} {
			name := name + "/marks=on"
			if !marks {
				name = strings.TrimSuffix(name, "on") + "off" // every detector examines every socket (quiet.go)
			}
			b.Run(name, func(b *testing.B) {
				snaps := steadySnapshots(conns, 30, bc.proxy)
				obs := 0
				for _, s := range snaps {
					obs += len(s.Sockets) + len(s.Closed)
				}
				eng := newBenchEngine(b)
				eng.env.quiet.off = !marks
				defer eng.Close()
				// The first poll (everything Opened) is the start-up cost,
				// measured by the collector's benchmarks; warm up on it.
				eng.Run(snaps[0])
				b.ReportAllocs()
				b.ResetTimer()
				n := 0
				for i := 0; i < b.N; i++ {
					s := snaps[1+i%(len(snaps)-1)]
					// The clock moves on across passes over the series, so
					// the windows see time pass as in a long run.
					s.Time = snaps[0].Time.Add(time.Duration(i+1) * time.Second)
					eng.Run(s)
					n += len(s.Sockets) + len(s.Closed)
				}
				failOnPanics(b, eng)
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "obs/s")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/poll")
			})
		}
	}
}

// steadySnapshots builds polls snapshots, one second apart, of a host
// holding conns loopback connections (both ends on the host), or with proxy
// conns proxied ones: a LAN client's connection accepted on :443 and the
// connection to a LAN backend it was relayed to (one socket each here).
func steadySnapshots(conns, polls int, proxy bool) []*collector.Snapshot {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	lo := netip.MustParseAddr("127.0.0.1")
	lan := netip.MustParseAddr("10.0.0.5")
	procs := map[int32]*collector.Process{}
	add := func(p *collector.Process) { procs[p.PID] = p }
	add(&collector.Process{PID: 1, Name: "systemd", Cmdline: []string{"/sbin/init"}, StartTime: t0.Add(-time.Hour)})
	add(&collector.Process{PID: 2, PPID: 1, Name: "sshd", Cmdline: []string{"sshd: /usr/sbin/sshd -D"}, StartTime: t0.Add(-time.Hour)})
	for i := int32(0); i < 40; i++ { // interactive shells and their pipelines
		sh := 1000 + 10*i
		add(&collector.Process{PID: sh, PPID: 2, Name: "bash", Cmdline: []string{"-bash"}, UID: 1000, StartTime: t0.Add(-time.Hour),
			PGID: sh, Session: sh, TTY: 34816 + uint32(i),
			Stdio: []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: fmt.Sprintf("/dev/pts/%d", i)}, {FD: 1, Kind: collector.StdioPTY, Path: fmt.Sprintf("/dev/pts/%d", i)}}})
		add(&collector.Process{PID: sh + 1, PPID: sh, Name: "python3", Cmdline: []string{"python3", "job.py"}, UID: 1000, StartTime: t0.Add(-time.Hour),
			PGID: sh + 1, Session: sh, Stdio: []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: uint64(900000 + i)}, {FD: 1, Kind: collector.StdioPipe, Inode: uint64(910000 + i)}}})
		add(&collector.Process{PID: sh + 2, PPID: sh, Name: "grep", Cmdline: []string{"grep", "x"}, UID: 1000, StartTime: t0.Add(-time.Hour),
			PGID: sh + 1, Session: sh, Stdio: []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: uint64(910000 + i)}}})
	}
	for i := int32(0); i < 200; i++ { // daemons
		add(&collector.Process{PID: 5000 + i, PPID: 1, Name: fmt.Sprintf("worker%d", i%17), Cmdline: []string{"/usr/bin/worker", "--id", fmt.Sprint(i)}, UID: 100 + uint32(i%5), StartTime: t0.Add(-time.Hour)})
	}
	const holders = 4
	for h := int32(0); h < holders; h++ {
		add(&collector.Process{PID: 9000 + h, PPID: 1, Name: "holder", Cmdline: []string{"holder", "-conns", fmt.Sprint(conns / holders)}, StartTime: t0.Add(-time.Hour)})
	}
	add(&collector.Process{PID: 9100, PPID: 1, Name: "nginx", Cmdline: []string{"nginx: worker process"}, UID: 33, StartTime: t0.Add(-time.Hour)})

	cookie := uint64(1)
	type conn struct{ client, server collector.Socket }
	mk := func(i int) conn {
		port := uint16(10000 + i%50000)
		pid := int32(9000 + i%holders)
		c := conn{
			client: collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, Local: netip.AddrPortFrom(lo, port),
				Remote: netip.AddrPortFrom(lo, 8080), Inode: 1e6 + 2*cookie, Cookie: cookie, PID: pid, FirstSeen: t0},
			server: collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, Local: netip.AddrPortFrom(lo, 8080),
				Remote: netip.AddrPortFrom(lo, port), Inode: 1e6 + 2*cookie + 1, Cookie: cookie + 1, PID: pid, FirstSeen: t0},
		}
		if proxy {
			client := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			backend := netip.AddrFrom4([4]byte{10, 2, 0, byte(1 + i%20)})
			c.client.Local, c.client.Remote = netip.AddrPortFrom(lan, 443), netip.AddrPortFrom(client, 30000+uint16(i%30000))
			c.server.Local, c.server.Remote = netip.AddrPortFrom(lan, port), netip.AddrPortFrom(backend, 8080)
			c.client.BytesReceived, c.server.BytesAcked = uint64(100*i), uint64(100*i)
		}
		cookie += 2
		return c
	}
	live := make([]conn, conns)
	for i := range live {
		live[i] = mk(i)
	}
	const external = 300
	ext := make([]collector.Socket, external)
	for i := range ext {
		ext[i] = collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, Local: netip.AddrPortFrom(lan, uint16(40000+i)),
			Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 250)}), 443), Inode: 5e6 + uint64(i),
			Cookie: 1e9 + uint64(i), PID: 9100, UID: 33, FirstSeen: t0}
	}
	listener := collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateListen, Local: netip.AddrPortFrom(lo, 8080), Inode: 999, Cookie: 999, PID: 9000}
	if proxy {
		listener.Local = netip.AddrPortFrom(netip.IPv4Unspecified(), 443)
	}
	sshL := collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateListen, Local: netip.AddrPortFrom(netip.IPv4Unspecified(), 22), Inode: 998, Cookie: 998, PID: 2}

	churn := conns / 200
	var snaps []*collector.Snapshot
	next := conns
	for p := 0; p < polls; p++ {
		now := t0.Add(time.Duration(p) * time.Second)
		snap := &collector.Snapshot{Time: now, Hostname: "bench", HostIPs: []netip.Addr{lan, lo},
			Processes: procs, Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
		if p > 0 {
			for k := 0; k < churn; k++ {
				i := (p*churn + k) % conns
				old := live[i]
				old.client.Destroyed, old.server.Destroyed = true, true
				snap.Closed = append(snap.Closed, old.client, old.server)
				live[i] = mk(next)
				next++
				live[i].client.FirstSeen, live[i].server.FirstSeen = now, now
				snap.Opened = append(snap.Opened, live[i].client, live[i].server)
			}
		}
		socks := make([]collector.Socket, 0, 2*conns+external+2)
		socks = append(socks, listener, sshL)
		for i := range live {
			if proxy && i%10 == p%10 { // a tenth of the proxied connections move bytes each poll
				live[i].client.BytesReceived += 1500
				live[i].server.BytesAcked += 1500
			}
			socks = append(socks, live[i].client, live[i].server)
		}
		for i := range ext {
			ext[i].BytesAcked += uint64(1000 * (i % 7))
			ext[i].BytesReceived += uint64(5000 * (i % 3))
			socks = append(socks, ext[i])
		}
		if p == 0 {
			snap.Opened = append([]collector.Socket(nil), socks...)
		}
		snap.Sockets = socks
		snap.Stats.Sockets = len(socks)
		// As the collector's tracker links each poll to the one before.
		snap.Seq = uint64(p + 1)
		if p > 0 {
			snap.SameAs = collector.LinkSameAs(snaps[p-1].Sockets, socks)
		}
		snaps = append(snaps, snap)
	}
	return snaps
}

// failOnPanics fails b when a detector panicked: the engine recovers and
// drops that detector's work for the poll, which would make it look fast.
func failOnPanics(b *testing.B, eng *Engine) {
	b.Helper()
	for _, d := range eng.Stats().Detectors {
		if d.Panics > 0 {
			b.Fatalf("detector %s panicked %d times: %s", d.Name, d.Panics, d.LastPanic)
		}
	}
}
