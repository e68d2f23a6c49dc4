//go:build linux

// Package netns builds throwaway network topologies for scenario tests: a
// monitored host, LAN hosts, a gateway and "internet" hosts, each in its own
// network namespace, connected by veth pairs and a bridge inside the gateway.
// All addresses are 10.x (LAN) and TEST-NET (198.51.100.0/24,
// 203.0.113.0/24); nothing routes to the machine's real interfaces. The
// topology is deleted by Close, which tests register with t.Cleanup so it runs
// even when the test fails.
//
//	H  (monitored host)  10.66.0.10/24  ─┐
//	L1..Ln (LAN hosts)   10.66.0.21..   ─┼─ br0 in G: 10.66.0.1/24 (gateway, forwards)
//	                                       G 10.67.0.1/30 ── I 10.67.0.2/30
//	I  ("internet")      198.51.100.1-254/32 and 203.0.113.1-254/32 on lo as needed
//
// The monitored host also gets its own PID and mount namespace (a pinned
// `unshare --pid --fork --mount-proc` init), so a sensor running there sees
// only that host's processes, as on a real machine.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Addresses of the standard topology.
const (
	HostIP    = "10.66.0.10"
	GatewayIP = "10.66.0.1"
	LANPrefix = "10.66.0."
)

// Topology is a set of namespaces. Names are prefixed uniquely per test run.
type Topology struct {
	Prefix  string
	LAN     []string // LAN host namespace names
	H, G, I string

	initPID int // PID (in the root PID namespace) of H's PID-namespace init
	initCmd *exec.Cmd

	mu   sync.Mutex
	bg   []*exec.Cmd
	done bool
}

// RequireRoot skips (or, when NETSENTINEL_REQUIRE_ROOT=1, fails) a test that
// needs root and ip netns.
func RequireRoot(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "scenario tests need root (ip netns, veth)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		reason = "scenario tests need iproute2 (ip)"
	}
	if reason == "" {
		return
	}
	if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
		t.Fatalf("!!! %s, and NETSENTINEL_REQUIRE_ROOT=1 forbids skipping", reason)
	}
	t.Skipf("!!! SKIPPING SCENARIO TEST: %s. Run the suite as root (scripts/test.sh).", reason)
}

// RequireTools fails or skips when a command the scenario needs is missing.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
				t.Fatalf("!!! %s is not installed (scripts/test.sh installs it)", tool)
			}
			t.Skipf("!!! SKIPPING: %s is not installed (scripts/test.sh installs it)", tool)
		}
	}
}

// New creates the topology with nLAN LAN hosts and registers its removal.
func New(t testing.TB, nLAN int) *Topology {
	t.Helper()
	RequireRoot(t)
	p := fmt.Sprintf("nst%d", os.Getpid()%100000)
	topo := &Topology{Prefix: p, H: p + "h", G: p + "g", I: p + "i"}
	for i := 0; i < nLAN; i++ {
		topo.LAN = append(topo.LAN, fmt.Sprintf("%sl%d", p, i+1))
	}
	t.Cleanup(topo.Close)
	if err := topo.build(); err != nil {
		t.Fatalf("building namespaces: %v", err)
	}
	return topo
}

func run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (t *Topology) ns(ns string, args ...string) error {
	return run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func (t *Topology) build() error {
	all := append([]string{t.H, t.G, t.I}, t.LAN...)
	for _, n := range all {
		_ = run("ip", "netns", "del", n) // stale from a crashed run
		if err := run("ip", "netns", "add", n); err != nil {
			return err
		}
		if err := t.ns(n, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"ip", "netns", "exec", t.G, "ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "netns", "exec", t.G, "ip", "addr", "add", GatewayIP + "/24", "dev", "br0"},
		{"ip", "netns", "exec", t.G, "ip", "link", "set", "br0", "up"},
		{"ip", "netns", "exec", t.G, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		// gateway <-> internet
		{"ip", "link", "add", t.Prefix + "gi", "netns", t.G, "type", "veth", "peer", "name", t.Prefix + "ig", "netns", t.I},
		{"ip", "netns", "exec", t.G, "ip", "addr", "add", "10.67.0.1/30", "dev", t.Prefix + "gi"},
		{"ip", "netns", "exec", t.G, "ip", "link", "set", t.Prefix + "gi", "up"},
		{"ip", "netns", "exec", t.I, "ip", "addr", "add", "10.67.0.2/30", "dev", t.Prefix + "ig"},
		{"ip", "netns", "exec", t.I, "ip", "link", "set", t.Prefix + "ig", "up"},
		{"ip", "netns", "exec", t.I, "ip", "route", "add", "10.66.0.0/16", "via", "10.67.0.1"},
		{"ip", "netns", "exec", t.G, "ip", "route", "add", "198.51.100.0/24", "via", "10.67.0.2"},
		{"ip", "netns", "exec", t.G, "ip", "route", "add", "203.0.113.0/24", "via", "10.67.0.2"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	if err := t.attach(t.H, HostIP); err != nil {
		return err
	}
	for i, l := range t.LAN {
		if err := t.attach(l, LANPrefix+strconv.Itoa(21+i)); err != nil {
			return err
		}
	}
	return t.startInit()
}

// attach connects namespace n to br0 with address ip and a default route via
// the gateway.
func (t *Topology) attach(n, ip string) error {
	a, b := n+"e", n+"b"
	steps := [][]string{
		{"ip", "link", "add", a, "netns", n, "type", "veth", "peer", "name", b, "netns", t.G},
		{"ip", "netns", "exec", t.G, "ip", "link", "set", b, "master", "br0"},
		{"ip", "netns", "exec", t.G, "ip", "link", "set", b, "up"},
		{"ip", "netns", "exec", n, "ip", "link", "set", a, "name", "eth0"},
		{"ip", "netns", "exec", n, "ip", "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "netns", "exec", n, "ip", "link", "set", "eth0", "up"},
		{"ip", "netns", "exec", n, "ip", "route", "add", "default", "via", GatewayIP},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	return nil
}

// startInit pins a PID + mount namespace for the monitored host.
func (t *Topology) startInit() error {
	cmd := exec.Command("ip", "netns", "exec", t.H, "unshare", "--pid", "--fork", "--mount-proc", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting host PID namespace: %w", err)
	}
	t.initCmd = cmd
	// Find the forked child "sleep 3600" whose parent is unshare.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if pid := findChild(cmd.Process.Pid); pid > 0 {
			t.initPID = pid
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("host PID namespace init did not start")
}

// findChild returns the deepest descendant of pid (unshare → sleep).
func findChild(pid int) int {
	for depth := 0; depth < 4; depth++ {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			if depth == 0 {
				return 0
			}
			return pid
		}
		pid, _ = strconv.Atoi(f[0])
	}
	return pid
}

// HostCmd returns a command that runs inside the monitored host (its network,
// PID and mount namespaces).
func (t *Topology) HostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"-t", strconv.Itoa(t.initPID), "-n", "-p", "-m", name}, args...)
	return exec.CommandContext(ctx, "nsenter", a...)
}

// Cmd returns a command running in namespace ns (network only).
func (t *Topology) Cmd(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// AddInternetIP adds a TEST-NET address (198.51.100.x or 203.0.113.x) to I.
func (t *Topology) AddInternetIP(ip string) error {
	if !strings.HasPrefix(ip, "198.51.100.") && !strings.HasPrefix(ip, "203.0.113.") {
		return fmt.Errorf("%s is not a TEST-NET address", ip)
	}
	return t.ns(t.I, "ip", "addr", "add", ip+"/32", "dev", "lo")
}

// Background starts cmd and kills its process group at Close.
func (t *Topology) Background(cmd *exec.Cmd) error {
	setPgid(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	t.mu.Lock()
	t.bg = append(t.bg, cmd)
	t.mu.Unlock()
	return nil
}

// Close kills background processes and deletes every namespace.
func (t *Topology) Close() {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return
	}
	t.done = true
	bg := t.bg
	t.mu.Unlock()
	for _, c := range bg {
		killGroup(c)
	}
	if t.initPID > 0 {
		// The namespace init ignores SIGTERM from outside; SIGKILL ends the
		// whole PID namespace.
		_ = syscallKill(t.initPID)
	}
	if t.initCmd != nil {
		killGroup(t.initCmd)
	}
	for _, n := range append([]string{t.H, t.G, t.I}, t.LAN...) {
		_ = run("ip", "netns", "del", n)
	}
}

// WaitListen waits (at most 10 s) until a TCP socket listens on ip:port (or
// the wildcard address and port) in namespace ns. It asks the kernel (ss)
// rather than connecting, so it neither consumes a single-connection listener
// nor leaves a TIME_WAIT socket in the sensor's view, and it does not depend
// on how loaded the machine is.
func (t *Topology) WaitListen(tb testing.TB, ns, ip, port string) {
	tb.Helper()
	t.waitBound(tb, "-Hltn", "TCP listener", ns, ip, port)
}

// WaitBoundUDP is WaitListen for a UDP socket bound to ip:port.
func (t *Topology) WaitBoundUDP(tb testing.TB, ns, ip, port string) {
	tb.Helper()
	t.waitBound(tb, "-Hlun", "UDP socket", ns, ip, port)
}

func (t *Topology) waitBound(tb testing.TB, ssFlags, what, ns, ip, port string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := t.Cmd(ctx, ns, "ss", ssFlags, "sport = :"+port).Output()
		cancel()
		if err == nil && listensOn(out, ip, port) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %s on %s:%s in %s after 10 s (ss: %v)", what, ip, port, ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listensOn reports whether `ss -Hltn` output has a listener that accepts
// connections to ip:port: bound to ip itself or to a wildcard address.
func listensOn(ssOut []byte, ip, port string) bool {
	for _, line := range strings.Split(string(ssOut), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		i := strings.LastIndex(f[3], ":")
		if i < 0 || f[3][i+1:] != port {
			continue
		}
		switch strings.Trim(f[3][:i], "[]") {
		case ip, "0.0.0.0", "*", "::":
			return true
		}
	}
	return false
}
