package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// NetSentinel needs no privileges. Run as nobody (uid 65534, no
// capabilities), it still sees every socket. A root process's connection to
// a RAT port alerts without a PID when nothing readable ties it to a process
// (the evidence says the owner is not readable); when root's process names
// the peer on its command line, the alert names it as inferred (and still
// says the owner was not readable). A connection of the sensor's own user
// keeps its process.
func TestUnprivilegedSensorStillAlerts(t *testing.T) {
	netns.RequireTools(t, "ncat", "bash", "nsenter", "unshare", "setpriv")
	topo := netns.New(t, 0)
	const c2 = "198.51.100.30"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c2Listeners(t, ctx, topo, c2, 40, "4444", "5555", "31337")

	// A directory nobody can write the report into (t.TempDir is 0700 all
	// the way up).
	dir, err := os.MkdirTemp("", "netsentinel-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}
	report := filepath.Join(dir, "report.json")
	sensor := topo.HostCmd(ctx, nobody[0], append(nobody[1:], binary, "-d", "30", "--interval", "500ms", "-o", report)...)
	stdout, err := sensor.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	sensor.Stderr = &stderr
	if err := topo.Background(sensor); err != nil {
		t.Fatal(err)
	}
	events := readEvents(stdout)
	time.Sleep(time.Second)

	// root's connections: to 4444 by an ncat naming it on its command line,
	// to 5555 by bash through /dev/tcp with the address in its environment
	// (no command line names it); nobody's to 31337. The ncat is exec'd by
	// the shell 2 s after it started (same PID and start time), so the
	// process clearly predates the socket, as the inference requires.
	if err := topo.Background(topo.HostCmd(ctx, "sh", "-c", "sleep 2; exec ncat --recv-only --idle-timeout 20s "+c2+" 4444")); err != nil {
		t.Fatal(err)
	}
	if err := topo.Background(topo.HostCmd(ctx, "env", "C2="+c2, "bash", "-c", "exec 3<>/dev/tcp/$C2/5555; sleep 15")); err != nil {
		t.Fatal(err)
	}
	if err := topo.Background(topo.HostCmd(ctx, nobody[0], append(nobody[1:], "sh", "-c", "sleep 15 | timeout 20 ncat "+c2+" 31337")...)); err != nil {
		t.Fatal(err)
	}
	rootConn, _ := events.WaitFor(t, "T1571 alert for root's connection", 10*time.Second, func(e map[string]any) bool {
		return hasString(e, "threat.technique.id", "T1571") && field(e, "destination.port") == float64(4444)
	})
	hiddenConn, _ := events.WaitFor(t, "T1571 alert for root's unnamed connection", 10*time.Second, func(e map[string]any) bool {
		return hasString(e, "threat.technique.id", "T1571") && field(e, "destination.port") == float64(5555)
	})
	ownConn, _ := events.WaitFor(t, "T1571 alert for nobody's connection", 10*time.Second, func(e map[string]any) bool {
		return hasString(e, "threat.technique.id", "T1571") && field(e, "destination.port") == float64(31337)
	})
	if p := field(hiddenConn, "process.pid"); p != nil {
		t.Errorf("root's unnamed socket attributed to pid %v by an unprivileged sensor", p)
	}
	if field(hiddenConn, "netsentinel.evidence.process_unknown") == nil {
		t.Errorf("root's unnamed socket: evidence does not say the owner is unreadable: %v", field(hiddenConn, "netsentinel.evidence"))
	}
	if field(rootConn, "process.name") != "ncat" || field(rootConn, "process.pid") == nil {
		t.Errorf("root's ncat socket: process %v (pid %v), want ncat inferred from its command line", field(rootConn, "process.name"), field(rootConn, "process.pid"))
	}
	if o, _ := field(rootConn, "netsentinel.evidence.owner").(string); !strings.HasPrefix(o, "inferred") {
		t.Errorf("root's ncat socket: evidence.owner = %q, want the inference stated", o)
	}
	if field(rootConn, "netsentinel.evidence.process_unknown") == nil {
		t.Errorf("root's ncat socket: evidence does not say the owner is unreadable: %v", field(rootConn, "netsentinel.evidence"))
	}
	if field(ownConn, "process.name") != "ncat" {
		t.Errorf("own user's socket: process.name = %v, want ncat", field(ownConn, "process.name"))
	}

	if err := netns.SignalChild(sensor, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if fi, err := os.Stat(report); err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("report mode %v, want 0600", fi.Mode().Perm())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report within 15 s of SIGTERM; sensor stderr:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
