package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/test/netns"
)

// ctxFor is a context bounded by d and ended at cleanup.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// bg starts cmd in the background; it is killed at topology cleanup.
func bg(t *testing.T, topo *netns.Topology, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := topo.Background(cmd); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	return cmd
}

// run runs cmd to completion and fails the test when it fails.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// listen starts an ncat listener (keep-open, stdin held open so accepted
// connections stay up) in namespace ns, discarding what it receives.
func listen(t *testing.T, topo *netns.Topology, ns, ip, port string, d time.Duration) {
	t.Helper()
	secs := fmt.Sprint(int(d.Seconds()))
	bg(t, topo, topo.Cmd(ctxFor(t, d+5*time.Second), ns, "sh", "-c",
		"sleep "+secs+" | timeout "+secs+" ncat -l -k "+ip+" "+port+" >/dev/null"))
	topo.WaitListen(t, ns, ip, port)
}

// internetHost adds ip (a TEST-NET address) to the "internet" namespace.
func internetHost(t *testing.T, topo *netns.Topology, ip string) {
	t.Helper()
	if err := topo.AddInternetIP(ip); err != nil {
		t.Fatal(err)
	}
}

// listenOnce adds ip to the "internet" namespace and starts a
// single-connection ncat listener there (extra ncat options in opts) for
// 30 s, discarding what it receives. Its stdin stays open, or ncat would
// close an interactive connection (a reverse shell) at once.
func listenOnce(t *testing.T, topo *netns.Topology, ip, port, opts string) {
	t.Helper()
	internetHost(t, topo, ip)
	bg(t, topo, topo.Cmd(ctxFor(t, 40*time.Second), topo.I, "sh", "-c",
		"sleep 30 | timeout 30 ncat -l "+opts+" "+ip+" "+port+" >/dev/null"))
	topo.WaitListen(t, topo.I, ip, port)
}

// shellListener is listenOnce for a reverse shell: the listener sends the
// shell that connects one command and returns the time its output arrives,
// the moment the shell is known to run on the connection (a loaded machine
// can take seconds to start an interpreter and its shell). The command's echo
// (a pty echoes it) does not contain the output it waits for.
func shellListener(t *testing.T, topo *netns.Topology, ip, port string) <-chan time.Time {
	t.Helper()
	internetHost(t, topo, ip)
	cmd := topo.Cmd(ctxFor(t, 40*time.Second), topo.I, "sh", "-c",
		"{ echo 'echo ns-$((6*7))-ready'; sleep 30; } | timeout 30 ncat -l "+ip+" "+port)
	ready := probeTimes(t, topo, cmd, func(l string) bool { return strings.Contains(l, shellReady) })
	topo.WaitListen(t, topo.I, ip, port)
	return ready
}

const shellReady = "ns-42-ready"

// sshKeys generates a client key and a host key in dir.
type sshKeys struct{ dir, client, host string }

func newSSHKeys(t *testing.T) sshKeys {
	t.Helper()
	dir := t.TempDir()
	k := sshKeys{dir: dir, client: filepath.Join(dir, "id_ed25519"), host: filepath.Join(dir, "host_ed25519")}
	for _, f := range []string{k.client, k.host} {
		run(t, exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netsentinel-scenario", "-f", f))
	}
	pub, err := os.ReadFile(k.client + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(pub))
	cfg := fmt.Sprintf(`Port 22
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
LogLevel ERROR
`, k.host, filepath.Join(dir, "authorized_keys"))
	writeFile(t, filepath.Join(dir, "sshd_config"), cfg)
	return k
}

// sshdSetup prepares the sshd's own mount namespace: the privilege-separation
// directory /run/sshd on a private tmpfs, and an empty ~/.bashrc, which
// Debian's bash reads for every ssh command: the machine's (pyenv init
// waits up to a minute on a stale rehash lock) must not stall a session.
const sshdSetup = "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd && " +
	"{ [ ! -f \"$HOME/.bashrc\" ] || mount --bind /dev/null \"$HOME/.bashrc\"; } && "

// startSSHD runs a throwaway sshd on port 22 in LAN namespace ns, in its own
// mount namespace (sshdSetup), without touching the machine.
func startSSHD(t *testing.T, topo *netns.Topology, k sshKeys, ns, ip string, d time.Duration) {
	t.Helper()
	script := sshdSetup + "exec timeout " +
		fmt.Sprint(int(d.Seconds())) + " /usr/sbin/sshd -D -e -f " + filepath.Join(k.dir, "sshd_config")
	bg(t, topo, topo.Cmd(ctxFor(t, d+5*time.Second), ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script))
	topo.WaitListen(t, ns, ip, "22")
}

// sshArgs are the client options for the scenario's sshd.
func (k sshKeys) sshArgs(host string, remote ...string) []string {
	a := []string{"-i", k.client, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@" + host}
	return append(a, remote...)
}

// dnsResponder is a minimal DNS server: it answers every query with an empty
// NOERROR response (QR, RA set). It exits after its time limit.
const dnsResponder = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
s.settimeout(1.0)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        q, a = s.recvfrom(4096)
    except socket.timeout:
        continue
    if len(q) >= 12:
        s.sendto(q[:2] + bytes([0x81, 0x80]) + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:], a)
`

// startDNS runs the DNS responder on ip:53/udp in namespace ns.
func startDNS(t *testing.T, topo *netns.Topology, ns, ip string, d time.Duration) {
	t.Helper()
	bg(t, topo, topo.Cmd(ctxFor(t, d+5*time.Second), ns, "python3", "-c", dnsResponder, ip, fmt.Sprint(int(d.Seconds()))))
	time.Sleep(300 * time.Millisecond)
}

// startHTTP serves dir over HTTP on ip:port in namespace ns.
func startHTTP(t *testing.T, topo *netns.Topology, ns, ip, port, dir string, d time.Duration) {
	t.Helper()
	bg(t, topo, topo.Cmd(ctxFor(t, d+5*time.Second), ns, "timeout", fmt.Sprint(int(d.Seconds())),
		"python3", "-m", "http.server", "--bind", ip, "--directory", dir, port))
	topo.WaitListen(t, ns, ip, port)
}

// hostStart runs name in the monitored host in the background and returns
// the time it started. Its stderr is logged if the test fails (an attack
// tool that could not run explains a missing alert).
func hostStart(t *testing.T, topo *netns.Topology, d time.Duration, name string, args ...string) (*exec.Cmd, time.Time) {
	t.Helper()
	cmd := topo.HostCmd(ctxFor(t, d), name, args...)
	stderr := &testserver.SyncBuffer{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", strings.Join(cmd.Args, " "), stderr.String())
		}
	})
	start := time.Now()
	bg(t, topo, cmd)
	return cmd, start
}

// sparseFile creates a file of size bytes.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// lanIP is the address of LAN host i (0-based).
func lanIP(i int) string { return netns.LANPrefix + fmt.Sprint(21+i) }
