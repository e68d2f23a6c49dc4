package detect

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Snapshot builders shared by this helper's detector tests.

var bldT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func bldEnv() *Env { return &Env{Common: Common{HomeNet: DefaultHomeNet()}} }

func bldSnap(t time.Time, socks ...collector.Socket) *collector.Snapshot {
	return &collector.Snapshot{
		Time: t, Hostname: "h", HostIPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")},
		Sockets: socks, Processes: map[int32]*collector.Process{},
	}
}

func bldAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// bldTCP is a TCP socket local->remote in state.
func bldTCP(local, remote, state string, pid int32) collector.Socket {
	return collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: testState(state), Local: bldAP(local), Remote: bldAP(remote), PID: pid}
}

func bldListen(local string, pid int32) collector.Socket {
	return collector.Socket{Proto: collector.ProtoTCP, Family: 4, State: collector.StateListen, Local: bldAP(local), Remote: bldAP("0.0.0.0:0"), PID: pid}
}

func bldProc(snap *collector.Snapshot, pid, ppid int32, name string, cmd ...string) *collector.Process {
	p := &collector.Process{PID: pid, PPID: ppid, Name: name, Cmdline: cmd, StartTime: bldT0.Add(-time.Hour)}
	snap.Processes[pid] = p
	return p
}

// bldSteps runs d over steps snapshots and checks the outcome: silence when
// entity is "", else the alert whose entity starts with it (returned for
// the caller's own checks; nil after silence).
func bldSteps(t *testing.T, d Detector, steps int, snap func(int) *collector.Snapshot, entity string) *Alert {
	t.Helper()
	env := bldEnv()
	var all []Alert
	for i := 0; i < steps; i++ {
		all = append(all, d.Detect(snap(i), env)...)
	}
	if entity == "" {
		if len(all) != 0 {
			t.Fatalf("want silence, got %+v", all)
		}
		return nil
	}
	a := bldFind(all, entity)
	if a == nil {
		t.Fatalf("no alert %q in %+v", entity, all)
	}
	return a
}

func bldFind(alerts []Alert, entityPrefix string) *Alert {
	for i := range alerts {
		if len(alerts[i].Entity) >= len(entityPrefix) && alerts[i].Entity[:len(entityPrefix)] == entityPrefix {
			return &alerts[i]
		}
	}
	return nil
}

// withInit adds PID 1, started age before the first snapshot (the counters'
// age, from which the detector takes its prior rate).
func withInit(s *collector.Snapshot, age time.Duration) *collector.Snapshot {
	bldProc(s, 1, 0, "systemd", "/sbin/init").StartTime = bldT0.Add(-age)
	return s
}

func newTestPortScan(t *testing.T, mod func(*PortScanConfig)) *portScan {
	t.Helper()
	c := defaultPortScanConfig()
	if mod != nil {
		mod(c)
	}
	d, err := newPortScan(*c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPortScan(t *testing.T) {
	type step func(i int) *collector.Snapshot
	cases := []struct {
		name   string
		steps  int
		snap   step
		entity string // "" = expect silence
		check  func(t *testing.T, a *Alert)
	}{
		{
			name: "inbound scan from a LAN source over several polls", steps: 10, entity: "in:10.0.0.66",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				for p := 0; p < 20; p++ {
					s.Sockets = append(s.Sockets, bldListen(fmt.Sprintf("0.0.0.0:%d", 1000+p), 1))
				}
				// two new ports touched per poll, each socket seen once
				for p := 0; p < 2; p++ {
					port := 1000 + 2*i + p
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", port), "10.0.0.66:40000", "SYN_RECV", 0))
				}
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Source.Addr() != netip.MustParseAddr("10.0.0.66") || a.Direction != DirIngress || a.Technique != "T1046" {
					t.Errorf("alert %+v", a)
				}
				if n := a.Evidence["distinct_ports"].(int); n < 15 {
					t.Errorf("distinct_ports %d", n)
				}
			},
		},
		{
			name: "browser with many connections to one CDN is not a scan", steps: 10,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 300, 1, "firefox")
				for c := 0; c < 30; c++ {
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+c+i*30), "93.184.216.34:443", "ESTABLISHED", 300))
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 50000+c+i*30), "93.184.216.34:443", "TIME_WAIT", 0))
				}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:45000", "93.184.216.34:443", "SYN_SENT", 300))
				return s
			},
		},
		{
			name: "outbound vertical scan by one process", steps: 5, entity: "out:nc[77]",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 77, 1, "nc", "nc", "-zv", "10.0.0.9", "1-100")
				for p := 0; p < 4; p++ {
					s.Closed = append(s.Closed, bldTCP(fmt.Sprintf("10.0.0.5:%d", 41000+i*4+p), fmt.Sprintf("10.0.0.9:%d", 20+i*4+p), "SYN_SENT", 77))
				}
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Process == nil || a.Process.Name != "nc" || a.Dest.Addr() != netip.MustParseAddr("10.0.0.9") || a.Direction != DirEgress {
					t.Errorf("alert %+v", a)
				}
			},
		},
		{
			name: "outbound horizontal scan (one port, many hosts)", steps: 6, entity: "out:bash[88]",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 88, 1, "bash")
				for h := 0; h < 5; h++ {
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 42000+i*5+h), fmt.Sprintf("10.0.1.%d:22", i*5+h+1), "SYN_SENT", 88))
				}
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Dest.Port() != 22 || a.Evidence["max_hosts_one_port"].(int) < 25 {
					t.Errorf("alert %+v", a)
				}
			},
		},
		{
			name: "closed-port probes seen only in counters, source not observable", steps: 3, entity: "counters:closed_ports",
			snap: func(i int) *collector.Snapshot {
				s := withInit(bldSnap(bldT0.Add(time.Duration(i)*2*time.Second)), time.Hour)
				s.Counters = collector.Counters{Valid: true, TCPOutRsts: 1000 + uint64(i)*500, UDPNoPorts: 5}
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Source.IsValid() || a.Evidence["tcp_out_rsts_and_udp_no_ports"].(uint64) != 500 {
					t.Errorf("alert %+v", a)
				}
			},
		},
		{
			name: "counter spike names the source seen on open ports", steps: 3, entity: "counters:closed_ports",
			snap: func(i int) *collector.Snapshot {
				s := withInit(bldSnap(bldT0.Add(time.Duration(i)*2*time.Second),
					bldListen("0.0.0.0:22", 1), bldListen("0.0.0.0:80", 1),
					bldTCP("10.0.0.5:22", "10.0.0.66:50001", "TIME_WAIT", 0),
					bldTCP("10.0.0.5:80", "10.0.0.66:50002", "TIME_WAIT", 0)), time.Hour)
				s.Counters = collector.Counters{Valid: true, TCPOutRsts: 10 + uint64(i)*499}
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Source.Addr() != netip.MustParseAddr("10.0.0.66") {
					t.Errorf("source %v", a.Source)
				}
			},
		},
		{
			// 1.5 resets and 0.5 failed connects a second, as for the hour before.
			name: "steady background resets stay silent", steps: 300,
			snap: func(i int) *collector.Snapshot {
				s := withInit(bldSnap(bldT0.Add(time.Duration(i)*2*time.Second)), time.Hour)
				s.Counters = collector.Counters{Valid: true, TCPOutRsts: 5400 + uint64(i)*3, TCPAttemptFails: 1800 + uint64(i)}
				return s
			},
		},
		{
			name: "attempt fails spike", steps: 2, entity: "counters:attempt_fails",
			snap: func(i int) *collector.Snapshot {
				s := withInit(bldSnap(bldT0.Add(time.Duration(i)*2*time.Second)), time.Hour)
				s.Counters = collector.Counters{Valid: true, TCPAttemptFails: uint64(i) * 998}
				return s
			},
		},
		{
			name: "known scanner process", steps: 2, entity: "tool:",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 999, 1, "nmap", "nmap", "-sS", "10.0.0.0/24")
				return s
			},
			check: func(t *testing.T, a *Alert) {
				if a.Process == nil || a.Process.PID != 999 {
					t.Errorf("alert %+v", a)
				}
			},
		},
		{
			name: "a single ssh session is not a scan", steps: 20,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), bldListen("0.0.0.0:22", 1),
					bldTCP("10.0.0.5:22", "10.0.0.66:50001", "ESTABLISHED", 0))
				return s
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestPortScan(t, nil)
			env := bldEnv()
			var all []Alert
			for i := 0; i < tc.steps; i++ {
				all = append(all, d.Detect(tc.snap(i), env)...)
			}
			if tc.entity == "" {
				if len(all) != 0 {
					t.Fatalf("want silence, got %d alerts, first: %+v", len(all), all[0])
				}
				return
			}
			a := bldFind(all, tc.entity)
			if a == nil {
				t.Fatalf("no alert with entity %q; got %d alerts: %+v", tc.entity, len(all), all)
			}
			if a.ThreatType != ThreatPortScan || a.Technique != "T1046" || a.Recommendation == "" || len(a.Evidence) == 0 {
				t.Errorf("alert fields: %+v", a)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

func TestPortScanBoundedMemory(t *testing.T) {
	d := newTestPortScan(t, func(c *PortScanConfig) { c.MaxSources = 1000 })
	env := bldEnv()
	for i := 0; i < 200; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i)*time.Second), bldListen("0.0.0.0:80", 1))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(n >> 16), byte(n >> 8), byte(n)}), 50000)
			s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: bldAP("10.0.0.5:80"), Remote: remote})
			s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateSynSent, Local: bldAP("10.0.0.5:40000"), Remote: remote, PID: int32(n + 2)})
		}
		d.Detect(s, env)
		if d.inbound.Len() > 1000 || d.out.groups.Len() > 1000 {
			t.Fatalf("step %d: inbound %d outbound %d > cap 1000", i, d.inbound.Len(), d.out.groups.Len())
		}
	}
}

// bldClosedAttempt is a connect refused or timed out between two polls, as
// its destroy notification reports it: CLOSE, no byte either way, no owner.
func bldClosedAttempt(local, remote string) collector.Socket {
	s := bldTCP(local, remote, "CLOSE", 0)
	s.Destroyed = true
	return s
}

// A shell loop of `nc -z -w1 host $p` against filtered ports: each nc lives
// one poll, holds one SYN_SENT socket, and is a new process. One alert names
// the loop's shell; as root the sockets have owners, unprivileged only the
// nc command lines (naming the host) tie them to the group.
func TestPortScanProcessGroup(t *testing.T) {
	for _, owned := range []bool{true, false} {
		t.Run(map[bool]string{true: "owned sockets", false: "ownerless sockets, command lines"}[owned], func(t *testing.T) {
			d := newTestPortScan(t, nil)
			env := bldEnv()
			var alerts []Alert
			for i := 0; i < 18; i++ {
				s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
				bldProc(s, 500, 0, "sh", "sh", "-c", "for p in $(seq 20 40); do nc -z -w1 10.0.0.9 $p; done")
				pid := int32(600 + i)
				port := 20 + i
				bldProc(s, pid, 500, "nc", "nc", "-z", "-w1", "10.0.0.9", fmt.Sprint(port))
				sock := bldTCP(fmt.Sprintf("10.0.0.5:%d", 41000+i), fmt.Sprintf("10.0.0.9:%d", port), "SYN_SENT", pid)
				if !owned {
					sock.PID, sock.UID = 0, 0
				}
				s.Sockets = append(s.Sockets, sock)
				alerts = append(alerts, d.Detect(s, env)...)
			}
			if len(alerts) == 0 {
				t.Fatal("no alert for 18 nc processes probing 18 ports")
			}
			a := alerts[0]
			if a.Entity != "out:sh[500]" || a.Process == nil || a.Process.Name != "sh" || a.Dest.Addr() != netip.MustParseAddr("10.0.0.9") {
				t.Fatalf("alert %+v (process %+v)", a, a.Process)
			}
			if n := a.Evidence["processes_seen"].(int); n < 15 {
				t.Errorf("processes_seen %d, want >= 15", n)
			}
			if a.Evidence["group"] != "parent" || !strings.Contains(a.Message, "nc") {
				t.Errorf("group %v, message %q", a.Evidence["group"], a.Message)
			}
			for _, b := range alerts {
				if b.Entity != a.Entity {
					t.Errorf("second scanner %q besides %q", b.Entity, a.Entity)
				}
			}
		})
	}
}

// A slow connect scan of a host with one open port: the refused connects
// live microseconds and are known only from destroy notifications with no
// owner. A long-running scanner (renamed, so no tool rule) naming the host
// on its command line gets them; with no such process they are one
// unattributed scanner. A connection that was established (bytes acked) is
// not an attempt.
func TestPortScanRefusedAttempts(t *testing.T) {
	run := func(withProc bool) []Alert {
		d := newTestPortScan(t, nil)
		env := bldEnv()
		var alerts []Alert
		for i := 0; i < 20; i++ {
			s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
			if withProc {
				bldProc(s, 700, 0, "updater", "/tmp/updater", "-sT", "--scan-delay", "2s", "-p", "1-40", "10.0.0.9")
			}
			s.Closed = append(s.Closed, bldClosedAttempt(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("10.0.0.9:%d", 1+i)))
			ok := bldTCP(fmt.Sprintf("10.0.0.5:%d", 43000+i), fmt.Sprintf("10.0.0.8:%d", 1000+i), "CLOSE", 0)
			ok.Destroyed, ok.BytesAcked, ok.BytesReceived = true, 2, 1
			s.Closed = append(s.Closed, ok)
			alerts = append(alerts, d.Detect(s, env)...)
		}
		return alerts
	}
	a := bldFind(run(true), "out:")
	if a == nil || a.Entity != "out:updater[700]" || a.Process == nil || a.Process.PID != 700 {
		t.Fatalf("with the scanner's process: %+v", a)
	}
	if a.Evidence["max_ports_one_host"].(int) != 15 || a.Evidence["attempts_tied_by_command_line"].(int) == 0 {
		t.Errorf("evidence %v", a.Evidence)
	}
	alerts := run(false)
	// A refused blocking connect reaches its destroy notification with the
	// remote port reset to 0: not a port attempt.
	d := newTestPortScan(t, nil)
	for i := 0; i < 20; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
		s.Closed = append(s.Closed, bldClosedAttempt(fmt.Sprintf("10.0.0.5:%d", 48000+i), "10.0.0.9:0"))
		if got := d.Detect(s, bldEnv()); len(got) != 0 {
			t.Fatalf("port-0 attempts alerted: %+v", got)
		}
	}
	a = bldFind(alerts, "out:")
	if a == nil || a.Entity != "out:unowned" || a.Process != nil || a.Dest.Addr() != netip.MustParseAddr("10.0.0.9") {
		t.Fatalf("without: %+v", a)
	}
	for _, b := range alerts {
		if b.Dest.Addr() == netip.MustParseAddr("10.0.0.8") {
			t.Errorf("established connections counted as attempts: %+v", b)
		}
	}
}

// Two daemons started by init are two scanners, not one group: each
// probing 10 ports of the same host stays below 15.
func TestPortScanInitChildrenNotOneGroup(t *testing.T) {
	bldSteps(t, newTestPortScan(t, nil), 10, func(i int) *collector.Snapshot {
		s := withInit(bldSnap(bldT0.Add(time.Duration(i)*2*time.Second)), time.Hour)
		bldProc(s, 801, 1, "agent-a")
		bldProc(s, 802, 1, "agent-b")
		s.Sockets = append(s.Sockets,
			bldTCP(fmt.Sprintf("10.0.0.5:%d", 44000+i), fmt.Sprintf("10.0.0.9:%d", 100+i), "SYN_SENT", 801),
			bldTCP(fmt.Sprintf("10.0.0.5:%d", 45000+i), fmt.Sprintf("10.0.0.9:%d", 200+i), "SYN_SENT", 802))
		return s
	}, "")
}

// `seq 20 40 | xargs -P4 -I{} sh -c 'nc -z 10.0.0.9 {}'` in a login
// session: every nc has its own short-lived sh parent, but one session (the
// login shell's) and one user: one scanner, named by the session leader.
func TestPortScanSessionGroup(t *testing.T) {
	d := newTestPortScan(t, nil)
	env := bldEnv()
	var alerts []Alert
	for i := 0; i < 16; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
		bldProc(s, 400, 399, "bash", "-bash").Session = 400
		bldProc(s, 401, 400, "xargs", "xargs", "-P4", "-I{}", "sh", "-c", "nc -z 10.0.0.9 {}").Session = 400
		sh, nc := int32(1000+2*i), int32(1001+2*i)
		bldProc(s, sh, 401, "sh", "sh", "-c", fmt.Sprintf("nc -z 10.0.0.9 %d", 20+i)).Session = 400
		bldProc(s, nc, sh, "nc", "nc", "-z", "10.0.0.9", fmt.Sprint(20+i)).Session = 400
		s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 46000+i), fmt.Sprintf("10.0.0.9:%d", 20+i), "SYN_SENT", nc))
		alerts = append(alerts, d.Detect(s, env)...)
	}
	a := bldFind(alerts, "out:")
	if a == nil || a.Entity != "out:bash[400]" || a.Evidence["group"] != "session" || a.Process == nil || a.Process.PID != 400 {
		t.Fatalf("alert %+v", a)
	}
}

// Atomic Red Team T1046 #1: `for port in {1..65535}; do (echo
// >/dev/tcp/HOST/$port) ...; done`. Each probe is a forked subshell (same
// command line) whose refused connect is known only from its destroy
// notification; the script naming /dev/tcp/HOST ties them to the loop.
func TestPortScanDevTCPLoop(t *testing.T) {
	script := "for port in {1..65535}; do (2>/dev/null echo >/dev/tcp/10.0.0.9/$port) && echo port $port is open ; done"
	a := bldSteps(t, newTestPortScan(t, nil), 4, func(i int) *collector.Snapshot {
		s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
		bldProc(s, 900, 0, "bash", "bash", "-c", script)
		bldProc(s, int32(901+i), 900, "bash", "bash", "-c", script) // the subshell of this probe
		for p := 0; p < 10; p++ {
			s.Closed = append(s.Closed, bldClosedAttempt(fmt.Sprintf("10.0.0.5:%d", 47000+i*10+p), fmt.Sprintf("10.0.0.9:%d", 1+i*10+p)))
		}
		return s
	}, "out:bash[900]")
	if a.Process == nil || a.Process.PID != 900 {
		t.Fatalf("alert %+v", a)
	}
	if devTCPNames([]string{"echo >/dev/tcp/10.0.0.99/80"}, netip.MustParseAddr("10.0.0.9")) {
		t.Error("10.0.0.99 matched 10.0.0.9")
	}
}
