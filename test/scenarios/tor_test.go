package scenarios

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// Tor and proxies by behaviour (issue 10 item 6). Every "bridge" and
// destination is a TEST-NET address in the internet namespace: nothing
// leaves the test's namespaces (Tor with UseBridges dials its bridges only).

// reasons returns the alert's evidence reasons.
func reasons(e map[string]any) []string {
	var out []string
	if l, ok := field(e, "netsentinel.evidence.reasons").([]any); ok {
		for _, r := range l {
			if s, ok := r.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func wantReasons(t *testing.T, e map[string]any, want ...string) {
	t.Helper()
	got := reasons(e)
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("reasons %v lack %q; alert: %s", got, w, describe(e))
		}
	}
}

// copyTor copies the tor binary to dir/name: the process is then called
// name, and its executable is not /usr/sbin/tor.
func copyTor(t *testing.T, dir, name string) string {
	t.Helper()
	path, err := exec.LookPath("tor")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	run(t, exec.Command("cp", path, bin))
	return bin
}

// Atomic Red Team T1090.003 test 3 ("Tor Proxy Usage - Debian/Ubuntu",
// systemctl start tor) emulated with what an attacker does instead: tor
// copied to a harmless-looking name, started with -f torrc naming a bridge
// on 443. The sensor has no relay list: behaviour alone.
func TestTorRenamedWithTorrc(t *testing.T) {
	netns.RequireTools(t, "tor", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const bridge = "198.51.100.111"
		internetHost(t, topo, bridge)
		listen(t, topo, topo.I, bridge, "443", 60*time.Second)
		// The bridge is on the relay list: a bridge connection not tied to
		// the Tor process would raise an alert of its own.
		s := startSensor(t, topo, "tor_renamed_torrc", sensorOptions{mode: m, relays: []string{bridge}})
		// Readable by every user, as /etc/tor/torrc is (0644).
		dir := readableDir(t)
		bin := copyTor(t, dir, "kworker-upd")
		torrc := filepath.Join(dir, "torrc")
		writeFile(t, torrc, "UseBridges 1\nBridge "+bridge+":443\nSocksPort 127.0.0.1:19050\n"+
			"DataDirectory "+filepath.Join(dir, "data")+"\nLog warn stderr\n")
		if err := os.Chmod(torrc, 0o644); err != nil {
			t.Fatal(err)
		}
		_, start := hostStart(t, topo, 60*time.Second, "timeout", "30", bin, "-f", torrc)
		e := s.expect(t, "tor_renamed_torrc", "T1090.003", start, "tor copied to kworker-upd, -f torrc, bridge "+bridge+":443",
			and(isTechnique("tor", "T1090.003"), procIs("kworker-upd")))
		// Both sensors read the torrc: its bridge and SocksPort are known.
		wantReasons(t, e, "torrc")
		wantField(t, e, "netsentinel.evidence.torrc", torrc)
		wantField(t, e, "netsentinel.evidence.torrc_read", "read")
		wantField(t, e, "netsentinel.evidence.configured_bridges", "["+bridge+":443]")
		// Once Tor holds its bridge connection, two more polls raise no
		// alert of its own: as root it is the process's by PID; unprivileged
		// it is tied to the process by uid and the configured bridge.
		waitEstablished(t, topo, bridge+":443")
		s.waitPolls(t, 2)
		s.wantNone(t, "separate alert for the bridge connection", and(isTechnique("", "T1090.003"), destIs(bridge)))
		// The timeout wrapper carrying tor's command line is not a second Tor.
		s.wantNone(t, "alert for the timeout wrapper", procIs("timeout"))
	})
}

// waitEstablished waits until the monitored host holds an established TCP
// connection to dst (ip:port).
func waitEstablished(t *testing.T, topo *netns.Topology, dst string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := topo.HostCmd(ctxFor(t, 5*time.Second), "ss", "-Htn", "state", "established", "dst", dst).Output()
		if strings.TrimSpace(string(out)) != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no established connection to %s within 20 s", dst)
		}
	}
}

// waitProcess waits until a process named comm runs in the monitored host
// and returns when it was first seen.
func waitProcess(t *testing.T, topo *netns.Topology, comm string) time.Time {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := topo.HostCmd(ctxFor(t, 5*time.Second), "pgrep", "-x", comm).Run(); err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s process in the host within 20 s", comm)
		}
	}
}

// readableDir is a temporary directory every user can read (t.TempDir's
// parents are 0700 root), removed at cleanup.
func readableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netsentinel-tor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A SOCKS5 proxy (microsocks) on an odd loopback port, used by curl to reach
// three external HTTPS hosts: the proxy fans out.
func TestSocksProxyFanout(t *testing.T) {
	netns.RequireTools(t, "microsocks", "curl", "ncat", "nsenter", "unshare")
	t.Run("socks_proxy_fanout", func(t *testing.T) { eachMode(t, socksProxyFanout) })
}

// socksProxyFanout is one sensor mode's pass of TestSocksProxyFanout.
func socksProxyFanout(t *testing.T, m mode) {
	if !m.canSee(t, "the proxy's listener and its outbound sockets belong to root: their owner is in /proc/<pid>/fd, unreadable to another user") {
		return
	}
	topo := netns.New(t, 0)
	hosts := []string{"203.0.113.121", "203.0.113.122", "203.0.113.123"}
	for _, ip := range hosts {
		internetHost(t, topo, ip)
		// An HTTPS-ish server that completes TLS and never answers: the
		// client's connection (and the proxy's) stays up.
		bg(t, topo, topo.Cmd(ctxFor(t, 65*time.Second), topo.I, "sh", "-c",
			"sleep 60 | timeout 60 ncat --ssl -l -k "+ip+" 443 >/dev/null"))
		topo.WaitListen(t, topo.I, ip, "443")
	}
	s := startSensor(t, topo, "socks_proxy_fanout", sensorOptions{mode: m})
	const port = "31337"
	hostStart(t, topo, 60*time.Second, "timeout", "40", "microsocks", "-i", "127.0.0.1", "-p", port)
	topo.WaitListen(t, topo.H, "127.0.0.1", port)
	var start time.Time
	for _, ip := range hosts {
		_, start = hostStart(t, topo, 40*time.Second, "curl", "-sk", "-o", "/dev/null", "--max-time", "25",
			"--socks5", "127.0.0.1:"+port, "https://"+ip+"/")
	}
	e := s.expect(t, "socks_proxy_fanout", "T1090.003", start, "microsocks on 127.0.0.1:"+port+", curl through it to 3 external hosts on 443",
		and(isTechnique("socks_proxy", "T1090.003"), procIs("microsocks")))
	wantField(t, e, "netsentinel.evidence.listener", "127.0.0.1:"+port)
	wantField(t, e, "netsentinel.evidence.external_hosts", "3")
}

// obfs4 pluggable transport: tor (from a torrc) spawns obfs4proxy, which
// dials the obfs4 bridge on 443.
func TestTorObfs4Bridge(t *testing.T) {
	netns.RequireTools(t, "tor", "obfs4proxy", "ncat", "nsenter", "unshare")
	pt, err := exec.LookPath("obfs4proxy")
	if err != nil {
		t.Fatal(err)
	}
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const bridge = "198.51.100.112"
		internetHost(t, topo, bridge)
		listen(t, topo, topo.I, bridge, "443", 60*time.Second)
		s := startSensor(t, topo, "tor_obfs4_bridge", sensorOptions{mode: m})
		dir := t.TempDir() // 0700 root: unreadable to the unprivileged sensor
		// A bridge line in obfs4's format: a 20-byte fingerprint and a
		// 52-byte cert (node id and public key), random here.
		fp, cert := make([]byte, 20), make([]byte, 52)
		rand.Read(fp)
		rand.Read(cert)
		torrc := filepath.Join(dir, "torrc")
		writeFile(t, torrc, fmt.Sprintf("UseBridges 1\nClientTransportPlugin obfs4 exec %s\n"+
			"Bridge obfs4 %s:443 %s cert=%s iat-mode=0\nSocksPort 0\nDataDirectory %s\nLog warn stderr\n",
			pt, bridge, strings.ToUpper(hex.EncodeToString(fp)), base64.RawStdEncoding.EncodeToString(cert), filepath.Join(dir, "data")))
		_, start := hostStart(t, topo, 60*time.Second, "timeout", "30", "tor", "-f", torrc)
		e := s.expect(t, "tor_obfs4_bridge", "T1090.003", start, "tor -f torrc naming obfs4proxy and an obfs4 bridge "+bridge+":443",
			and(isTechnique("tor", "T1090.003"), procIs("tor")))
		wantReasons(t, e, "torrc", "tor_process")
		// Tor starts obfs4proxy once it has read its configuration; the
		// transport alerts as its own process, naming its Tor. (The time it
		// was first seen by pgrep is a little after it started.)
		seen := waitProcess(t, topo, "obfs4proxy")
		e = s.expect(t, "tor_obfs4_transport", "T1090.003", seen, "obfs4proxy started by tor (bridge "+bridge+":443)",
			and(isTechnique("tor", "T1090.003"), procIs("obfs4proxy")))
		wantReasons(t, e, "pluggable_transport")
		if tp := str(e, "netsentinel.evidence.tor_process"); !strings.HasPrefix(tp, "tor (pid ") {
			t.Errorf("tor_process = %q, want the tor process", tp)
		}
		if m.Privileged {
			wantField(t, e, "netsentinel.evidence.client_transports", "[obfs4]")
		}
	})
}
