package scenarios

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// Slow scans (issue 10 item 4): one probe every second or two, far below any
// rate threshold, of open and of closed ports, inbound and outbound, and one
// scanner made of many short-lived processes. Each alert is due once the
// probe that crosses the threshold (15 ports of one host) has been made: the
// test reads the scanner's own output to know when that was.

// probeTimes starts cmd (in the background, killed at topology cleanup) and
// sends the time of each stdout line for which match is true.
func probeTimes(t *testing.T, topo *netns.Topology, cmd *exec.Cmd, match func(string) bool) <-chan time.Time {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	bg(t, topo, cmd)
	ch := make(chan time.Time, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if match(sc.Text()) {
				ch <- time.Now()
			}
		}
	}()
	return ch
}

// nthProbe waits (at most d) for the n-th probe time from ch.
func nthProbe(t *testing.T, ch <-chan time.Time, n int, d time.Duration, what string) time.Time {
	t.Helper()
	deadline := time.After(d)
	for i := 1; ; i++ {
		select {
		case at, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the scanner ended after %d probes, want %d", what, i-1, n)
			}
			if i == n {
				return at
			}
		case <-deadline:
			t.Fatalf("%s: fewer than %d probes within %s", what, n, d)
		}
	}
}

// nmapTrace runs nmap line-buffered with --packet-trace; a connect scan
// prints one "CONN ... => Connection refused" or "=> Connected" line per
// probe.
func nmapTrace(bin string, args ...string) []string {
	return append([]string{"-oL", bin, "--packet-trace"}, args...)
}

func refused(line string) bool {
	return strings.HasPrefix(line, "CONN") && strings.Contains(line, "refused")
}

// newRefusedPort returns a probe matcher for refused connects to a port not
// refused before. nmap probes some ports twice (in one run, the first port
// it tried again 20 s later), and the rule counts distinct ports: counting
// lines put the alert one probe "late" on most runs.
func newRefusedPort() func(string) bool {
	seen := map[string]bool{}
	return func(line string) bool {
		if !refused(line) {
			return false
		}
		_, rest, ok := strings.Cut(line, " > ")
		target, _, ok2 := strings.Cut(rest, " => ")
		if !ok || !ok2 || seen[target] {
			return false
		}
		seen[target] = true
		return true
	}
}

func connected(line string) bool {
	return strings.HasPrefix(line, "CONN") && strings.Contains(line, "=> Connected")
}

// A renamed nmap (no tool-name rule applies) connect-scanning 21 ports of a
// LAN host with one open port, one probe every 2 s. The refused connects live
// microseconds between two polls: only their destroy notifications show them,
// without an owner; the scanner's command line names the host, which ties
// them to it in both modes.
func TestScanSlowNmapOutbound(t *testing.T) {
	netns.RequireTools(t, "nmap", "ncat", "stdbuf", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		target := lanIP(0)
		listen(t, topo, topo.LAN[0], target, "22", 90*time.Second)
		updater := filepath.Join(t.TempDir(), "updater")
		run(t, exec.Command("cp", "/usr/bin/nmap", updater))
		s := startSensor(t, topo, "scan_slow_nmap_outbound", sensorOptions{mode: m})
		cmd := topo.HostCmd(ctxFor(t, 90*time.Second), "stdbuf",
			nmapTrace(updater, "-sT", "-Pn", "-n", "--scan-delay", "2s", "-p", "10-30", target)...)
		probes := probeTimes(t, topo, cmd, newRefusedPort())
		crossing := nthProbe(t, probes, 15, 60*time.Second, "renamed nmap")
		e := s.expect(t, "scan_slow_nmap_outbound", "T1046", crossing,
			"nmap renamed updater, -sT --scan-delay 2s, 21 ports of "+target+" (1 open); due at the 15th distinct refused port",
			and(isTechnique("port_scan", "T1046"), destIs(target)))
		wantField(t, e, "process.name", "updater")
		if n, _ := field(e, "netsentinel.evidence.max_ports_one_host").(float64); n < 15 {
			t.Errorf("max_ports_one_host = %v, want >= 15; alert: %s", n, describe(e))
		}
	})
}

// `for p in ...; do nc -z -w1 HOST $p; done` against a host whose firewall
// drops everything (a blackhole route for our address there): 18 nc
// processes, each holding a SYN_SENT socket for its one-second timeout. One
// alert names the loop's shell, the group's parent, with the nc processes
// as evidence. Unprivileged, root's sockets have no owner, and each nc's
// command line naming the host ties them.
func TestScanNcLoopOutbound(t *testing.T) {
	netns.RequireTools(t, "nc", "ip", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		target := lanIP(0)
		run(t, topo.Cmd(ctxFor(t, 10*time.Second), topo.LAN[0], "ip", "route", "add", "blackhole", netns.HostIP+"/32"))
		s := startSensor(t, topo, "scan_nc_loop_outbound", sensorOptions{mode: m})
		loop := "for p in $(seq 20 37); do echo probe $p; nc -z -w1 " + target + " $p; done"
		cmd := topo.HostCmd(ctxFor(t, 60*time.Second), "sh", "-c", loop)
		probes := probeTimes(t, topo, cmd, func(l string) bool { return strings.HasPrefix(l, "probe ") })
		crossing := nthProbe(t, probes, 15, 40*time.Second, "nc loop")
		e := s.expect(t, "scan_nc_loop_outbound", "T1046", crossing,
			"sh loop of nc -z -w1 over 18 filtered ports of "+target+"; due at the 15th nc",
			and(isTechnique("port_scan", "T1046"), destIs(target)))
		wantField(t, e, "process.name", "sh")
		wantField(t, e, "netsentinel.evidence.group", "parent")
		if !strings.Contains(str(e, "message"), "nc") {
			t.Errorf("message %q does not name the nc processes", str(e, "message"))
		}
		if n, _ := field(e, "netsentinel.evidence.processes_seen").(float64); n < 10 {
			t.Errorf("processes_seen = %v, want the loop's nc processes (>= 10); alert: %s", n, describe(e))
		}
		// One scanner: no alert naming a single nc (the stream as it stands).
		s.wantNone(t, "alert naming one nc process", and(isTechnique("port_scan", "T1046"), procIs("nc")))
	})
}

// A LAN host connect-scans 21 ports of the monitored host, 16 of them open
// (a busy server), one probe a second: the sockets of the accepted probes
// show the source, counted over the 5 min window.
func TestScanSlowInbound(t *testing.T) {
	netns.RequireTools(t, "nmap", "python3", "stdbuf", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		bg(t, topo, topo.HostCmd(ctxFor(t, 90*time.Second), "python3", "-c", multiListener, netns.HostIP, "20", "35", "80"))
		topo.WaitListen(t, topo.H, netns.HostIP, "35")
		s := startSensor(t, topo, "scan_slow_inbound", sensorOptions{mode: m})
		cmd := topo.Cmd(ctxFor(t, 90*time.Second), topo.LAN[0], "stdbuf",
			nmapTrace("nmap", "-sT", "-Pn", "-n", "--scan-delay", "1s", "-p", "20-40", netns.HostIP)...)
		probes := probeTimes(t, topo, cmd, connected)
		crossing := nthProbe(t, probes, 15, 60*time.Second, "nmap from "+lanIP(0))
		e := s.expect(t, "scan_slow_inbound", "T1046", crossing,
			"nmap -sT --scan-delay 1s of 21 ports (16 open) from "+lanIP(0)+"; due at the 15th open port",
			and(isTechnique("port_scan", "T1046"), func(e map[string]any) bool { return str(e, "source.ip") == lanIP(0) }))
		wantField(t, e, "network.direction", "ingress")
	})
}

// A LAN host connect-scans 30 ports of the monitored host, which has one
// open port, one probe a second. The 29 closed-port probes leave no socket:
// each makes the host send a reset, and 15 of them above the host's learned
// baseline (near zero here) alarm. The source is named when its connection
// to the open port was seen.
func TestScanOneOpenPortVictim(t *testing.T) {
	netns.RequireTools(t, "nmap", "ncat", "stdbuf", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		bg(t, topo, topo.HostCmd(ctxFor(t, 90*time.Second), "sh", "-c", "sleep 80 | timeout 80 ncat -l -k "+netns.HostIP+" 22 >/dev/null"))
		topo.WaitListen(t, topo.H, netns.HostIP, "22")
		s := startSensor(t, topo, "scan_one_open_port_victim", sensorOptions{mode: m})
		cmd := topo.Cmd(ctxFor(t, 90*time.Second), topo.LAN[0], "stdbuf",
			nmapTrace("nmap", "-sT", "-Pn", "-n", "--scan-delay", "1s", "-p", "1-30", netns.HostIP)...)
		probes := probeTimes(t, topo, cmd, refused)
		crossing := nthProbe(t, probes, 15, 60*time.Second, "nmap from "+lanIP(0))
		e := s.expect(t, "scan_one_open_port_victim", "T1046", crossing,
			"nmap -sT --scan-delay 1s of 30 ports of a host with one open port, from "+lanIP(0)+"; due at the 15th closed port",
			and(isTechnique("port_scan", "T1046"), func(e map[string]any) bool {
				return strings.Contains(str(e, "message"), "closed ports")
			}))
		if src := str(e, "source.ip"); src != "" && src != lanIP(0) {
			t.Errorf("source.ip = %s, want the scanner %s or none; alert: %s", src, lanIP(0), describe(e))
		}
	})
}

// Atomic Red Team T1046 #1, bounded to 200 ports: a bash loop opening
// /dev/tcp/HOST/$port in a subshell per port, against a LAN host with one
// open port. bash connects blocking: when the connect is refused the kernel
// disconnects the socket, resetting its remote port to 0 before the destroy
// notification, and the loop ends within a poll. What remains is the Tcp
// AttemptFails counter, ~199 above a baseline of ~0: the host-wide rule.
func TestScanAtomicDevTCPLoop(t *testing.T) {
	netns.RequireTools(t, "bash", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		target := lanIP(0)
		listen(t, topo, topo.LAN[0], target, "22", 40*time.Second)
		s := startSensor(t, topo, "atomic_t1046_1_dev_tcp_loop", sensorOptions{mode: m})
		script := "for port in {1..200}; do (2>/dev/null echo >/dev/tcp/" + target + "/$port) && echo port $port is open ; done"
		_, start := hostStart(t, topo, 30*time.Second, "bash", "-c", script)
		s.expect(t, "atomic_t1046_1_dev_tcp_loop", "T1046", start,
			"Atomic T1046 #1: bash /dev/tcp loop over ports 1-200 of "+target+" (host-wide failed-connect counter; ports and process not observable)",
			and(isTechnique("port_scan", "T1046"), func(e map[string]any) bool {
				return strings.Contains(str(e, "message"), "failed TCP connection attempts")
			}))
	})
}

// Atomic Red Team T1046 #2's scan: `nmap -sS NETWORK/24 -p 80` (raw SYN
// packets, no socket): the scanner is named by the process table.
func TestScanAtomicNmapSweep(t *testing.T) {
	netns.RequireTools(t, "nmap", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 2)
		s := startSensor(t, topo, "atomic_t1046_2_nmap_sweep", sensorOptions{mode: m})
		_, start := hostStart(t, topo, 60*time.Second, "nmap", "-sS", netns.LANPrefix+"0/24", "-p", "80")
		e := s.expect(t, "atomic_t1046_2_nmap_sweep", "T1046", start, "Atomic T1046 #2: nmap -sS "+netns.LANPrefix+"0/24 -p 80",
			and(isTechnique("port_scan", "T1046"), procIs("nmap")))
		if !strings.Contains(str(e, "message"), "nmap") {
			t.Errorf("message %q does not name nmap", str(e, "message"))
		}
	})
}

// multiListener accepts on ip, ports lo..hi and one more, closing each
// accepted connection at once; it exits after 80 s.
const multiListener = `import socket, selectors, sys, time
ip, lo, hi, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sel = selectors.DefaultSelector()
for p in list(range(lo, hi + 1)) + [extra]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, p))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
end = time.time() + 80
while time.time() < end:
    for key, _ in sel.select(timeout=1):
        c, _ = key.fileobj.accept()
        c.close()
`
