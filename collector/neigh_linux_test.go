//go:build linux

package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The neighbour tests change a neighbour table, so they run in a network
// namespace of their own (root only; NETSENTINEL_REQUIRE_ROOT=1 makes a
// missing root a failure, as in the scenario suite).

func requireRootNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err == nil {
			return
		}
	}
	if os.Getenv("NETSENTINEL_REQUIRE_ROOT") == "1" {
		t.Fatal("!!! neighbour tests need root and iproute2 (ip netns), and NETSENTINEL_REQUIRE_ROOT=1 forbids skipping")
	}
	t.Skip("!!! SKIPPING: neighbour tests need root and iproute2 (ip netns)")
}

// testNetns makes a namespace with a veth pair v0/v1 (up, so neighbours
// can be set) and removes it at cleanup.
func testNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("nsneigh%d", os.Getpid()%100000)
	ipCmd(t, "", "netns", "del", name) // stale from a crashed run; errors ignored below
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"-n", name, "link", "set", "v0", "up"},
		{"-n", name, "link", "set", "v1", "up"},
		{"-n", name, "addr", "add", "10.9.0.10/24", "dev", "v0"},
		{"-n", name, "addr", "add", "fd09::10/64", "dev", "v0", "nodad"},
	} {
		if out, err := ipCmd(t, "", args...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { ipCmd(t, "", "netns", "del", name) })
	return name
}

func ipCmd(t *testing.T, _ string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return string(out), err
}

func setNeigh(t *testing.T, ns, ip, mac string) {
	t.Helper()
	if out, err := ipCmd(t, "", "-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", "v0", "nud", "reachable"); err != nil {
		t.Fatalf("ip neigh replace %s %s: %v: %s", ip, mac, err, out)
	}
}

type neighReport struct {
	Events []NeighborEvent
	Table  []Neighbor
	Lost   uint64
}

// neighHelper runs in the test namespace (as nobody in the unprivileged
// test): it subscribes, says "ready", and after "go" on stdin drains until
// 10.9.0.1 went back to A (B, then A; bounded), then dumps the table.
func neighHelper(in *bufio.Reader) error {
	w, err := openNeighWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	d, err := openNeighDump()
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}
	var rep neighReport
	var names ifNames
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var lost uint64
		rep.Events, lost = w.Drain(rep.Events, &names)
		rep.Lost += lost
		if len(macsOf(rep.Events, "10.9.0.1")) >= 2 && len(macsOf(rep.Events, "fd09::1")) >= 1 {
			break
		}
	}
	if rep.Table, err = d.Dump(&names); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func macsOf(evs []NeighborEvent, ip string) []string {
	var out []string
	for _, e := range evs {
		if e.IP.String() == ip && !e.Deleted {
			out = append(out, e.MAC)
		}
	}
	return out
}

// A MAC change reverted at once (A -> B -> A, well within one poll) reaches
// the watcher as three events in order, for a process without privileges,
// and the dump lists IPv4 and IPv6 neighbours with their device.
func TestNeighWatcherSeesRevertedChangeUnprivileged(t *testing.T) {
	requireRootNetns(t)
	for _, tc := range []struct {
		name   string
		nobody bool
	}{{"root", false}, {"nobody", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testNetns(t)
			setNeigh(t, ns, "10.9.0.1", "02:00:00:00:00:0a")
			args := []string{"netns", "exec", ns}
			bin := os.Args[0]
			if tc.nobody {
				bin = copyTestBinary(t)
				args = append(args, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
					"--inh-caps=-all", "--bounding-set=-all")
			}
			args = append(args, bin, "-test.run=^TestHelperProcess$", "-test.count=1")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", args...)
			cmd.Env = []string{"NETSENTINEL_TEST_HELPER=neigh-watch", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			cmd.Dir = filepath.Dir(bin)
			cmd.Stderr = os.Stderr
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			out := bufio.NewReader(stdout)
			if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
				cmd.Wait()
				t.Fatalf("helper: %q %v", line, err)
			}
			setNeigh(t, ns, "10.9.0.1", "02:00:00:00:00:0b")
			setNeigh(t, ns, "10.9.0.1", "02:00:00:00:00:0a")
			setNeigh(t, ns, "fd09::1", "02:00:00:00:00:0b")
			io.WriteString(stdin, "go\n")
			var rep neighReport
			if err := json.NewDecoder(out).Decode(&rep); err != nil {
				t.Fatalf("helper output: %v", err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			got := macsOf(rep.Events, "10.9.0.1")
			if strings.Join(got, " ") != "02:00:00:00:00:0b 02:00:00:00:00:0a" {
				// The subscription opened after the first replace: B, then A.
				t.Errorf("events for 10.9.0.1: %v, want B then A; all: %+v", got, rep.Events)
			}
			if got := macsOf(rep.Events, "fd09::1"); len(got) != 1 || got[0] != "02:00:00:00:00:0b" {
				t.Errorf("events for fd09::1: %v", got)
			}
			for i, e := range rep.Events {
				if e.Device != "v0" || e.Time.IsZero() || (i > 0 && e.Time.Before(rep.Events[i-1].Time)) {
					t.Errorf("event %d: %+v", i, e)
				}
			}
			if rep.Lost != 0 {
				t.Errorf("%d events lost", rep.Lost)
			}
			want := map[string]string{"10.9.0.1": "02:00:00:00:00:0a", "fd09::1": "02:00:00:00:00:0b"}
			for _, n := range rep.Table {
				if mac, ok := want[n.IP.String()]; ok {
					if n.MAC != mac || !n.Complete || n.Device != "v0" || n.State != "REACHABLE" {
						t.Errorf("table entry %+v, want MAC %s on v0", n, mac)
					}
					delete(want, n.IP.String())
				}
			}
			if len(want) > 0 {
				t.Errorf("table misses %v: %+v", want, rep.Table)
			}
		})
	}
}

// copyTestBinary puts the test binary where nobody can run it (the build
// directory may be 0700).
func copyTestBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "collector.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
