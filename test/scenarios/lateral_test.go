package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// Lateral movement the port list alone misses: ssh to LAN hosts whose sshd
// listens on a non-standard port, and an Impacket client reaching one host.

// startSSHDOn runs a throwaway sshd on port in LAN namespace ns (see
// startSSHD), from a copy of k's config with that port.
func startSSHDOn(t *testing.T, topo *netns.Topology, k sshKeys, ns, ip, port string, d time.Duration) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k.dir, "sshd_config"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(k.dir, "sshd_config_"+port)
	writeFile(t, cfg, strings.Replace(string(b), "Port 22\n", "Port "+port+"\n", 1))
	script := sshdSetup + "exec timeout " +
		fmt.Sprint(int(d.Seconds())) + " /usr/sbin/sshd -D -e -f " + cfg
	bg(t, topo, topo.Cmd(ctxFor(t, d+5*time.Second), ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script))
	topo.WaitListen(t, ns, ip, port)
}

// ssh to three LAN hosts on 2222, a port outside the remote-service list:
// ssh is a remote-access client, so its connections count on any port. The
// unprivileged sensor cannot read root's socket owners, but every user can
// read /proc/<pid>/cmdline: an ssh of the socket's uid whose command line
// names the destination is tied to it.
func TestLateralSSHNonStandardPort(t *testing.T) {
	netns.RequireTools(t, "ssh", "ssh-keygen", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 3)
		k := newSSHKeys(t)
		for i, l := range topo.LAN {
			startSSHDOn(t, topo, k, l, lanIP(i), "2222", 60*time.Second)
		}
		s := startSensor(t, topo, "lateral_ssh_2222", sensorOptions{mode: m})
		var start time.Time
		for i := range topo.LAN {
			_, start = hostStart(t, topo, 30*time.Second, "ssh", append([]string{"-p", "2222"}, k.sshArgs(lanIP(i), "sleep", "6")...)...)
			time.Sleep(200 * time.Millisecond)
		}
		e := s.expect(t, "lateral_ssh_2222", "T1021.004", start, "ssh -p 2222 to 3 LAN hosts (sshd on 2222)",
			and(isTechnique("lateral_movement", "T1021.004"), procIs("ssh")))
		wantLANDest(t, e, "2222")
		if !m.Privileged {
			if o := fmt.Sprint(field(e, "netsentinel.evidence.owner")); !strings.HasPrefix(o, "inferred") {
				t.Errorf("evidence.owner = %q, want the inference stated; alert: %s", o, describe(e))
			}
		}
	})
}

// impacketClient is what Impacket's psexec.py does first: an SMB session
// with the target (the library is Debian's python3-impacket; Debian does not
// ship the example scripts, so the test names this one psexec.py). The
// target's listener never answers, so the session waits until its timeout.
const impacketClient = `import sys
from impacket.smbconnection import SMBConnection
target = sys.argv[-1].rsplit("@", 1)[-1]
try:
    SMBConnection(target, target, sess_port=445, timeout=8)
except Exception as e:
    print("psexec.py:", e, file=sys.stderr)
`

// An Impacket tool is made for attacks: its first internal host alerts,
// where a port-only rule would wait for three hosts on 445.
func TestLateralImpacket(t *testing.T) {
	netns.RequireTools(t, "ncat", "nsenter", "unshare")
	// Debian's interpreter, where python3-impacket installs (PATH may
	// name another python3 first).
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import impacket.smbconnection").Run(); err != nil {
		if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
			t.Fatalf("python3-impacket is required: %v", err)
		}
		t.Skipf("python3-impacket not installed: %v", err)
	}
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		listen(t, topo, topo.LAN[0], lanIP(0), "445", 40*time.Second)
		script := filepath.Join(t.TempDir(), "psexec.py")
		writeFile(t, script, impacketClient)
		s := startSensor(t, topo, "lateral_impacket", sensorOptions{mode: m})
		_, start := hostStart(t, topo, 30*time.Second, python, script, "-no-pass", "corp/administrator@"+lanIP(0))
		e := s.expect(t, "lateral_impacket", "T1021.002", start, "psexec.py (python3-impacket SMB session) to one LAN host on 445",
			and(isTechnique("lateral_movement", "T1021.002"), destIs(lanIP(0))))
		wantField(t, e, "process.name", "python3")
		wantField(t, e, "netsentinel.evidence.client", "psexec.py")
	})
}
