package scenarios

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// heartbeatClient connects once to argv[1]:argv[2] and sends 8 bytes argv[3]
// times over that one connection, argv[4] seconds apart (±argv[5] as a
// fraction; a negative argv[5] draws exponential gaps of that mean), with
// seed argv[6]. It prints the number of each beat once sent.
const heartbeatClient = `import random, socket, sys, time
host, port, n, period, jit, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
r = random.Random(seed)
s = socket.create_connection((host, port))
time.sleep(2.5)
for i in range(n):
    s.sendall(b"beat%04d" % i)
    print(i + 1, flush=True)
    time.sleep(r.expovariate(1 / period) if jit < 0 else period * (1 + jit * (2 * r.random() - 1)))
s.close()
`

// A heartbeat over one long-lived TCP connection (8 bytes every 4 s, four
// polls) is beaconing, seen only through the connection's byte counters;
// the same client sending at exponential gaps (mean 4 s) on its own
// connection is not. Both sensor modes: sock_diag reports every user's
// counters.
func TestBeaconHeartbeatOneConnection(t *testing.T) {
	netns.RequireTools(t, "python3", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const c2, control, port = "198.51.100.60", "198.51.100.61", "8443"
		const beats, due = 12, 8 // min_connections: 8 bursts at no jitter
		for _, ip := range []string{c2, control} {
			internetHost(t, topo, ip)
			listen(t, topo, topo.I, ip, port, 90*time.Second)
		}
		s := startSensor(t, topo, "beacon_heartbeat", sensorOptions{mode: m})
		beat := func(ip string, jit float64, seed int) <-chan time.Time { // the time of the due beat
			cmd := topo.HostCmd(ctxFor(t, 90*time.Second), "python3", "-c", heartbeatClient, ip, port, strconv.Itoa(beats), "4", fmt.Sprint(jit), strconv.Itoa(seed))
			return probeTimes(t, topo, cmd, func(l string) bool { return l == strconv.Itoa(due) })
		}
		ctl := beat(control, -1, 3)
		dueAt, ok := <-beat(c2, 0, 1)
		if !ok {
			t.Fatal("heartbeat client ended before its 8th beat")
		}
		e := s.expect(t, "beacon_heartbeat", "T1071", dueAt, "python3: 8 bytes every 4 s over one TCP connection (alert due at the 8th beat)",
			and(isTechnique("beaconing", "T1071"), destIs(c2)))
		wantField(t, e, "destination.port", port)
		if m.Privileged {
			wantField(t, e, "process.name", "python3")
		}
		for range ctl { // the control's beats, to its end
		}
		s.waitPolls(t, 2)
		s.wantNone(t, "beaconing alert for the random heartbeat", and(isTechnique("beaconing", "T1071"), destIs(control)))
		if !t.Failed() {
			record(result{Scenario: "beacon_heartbeat_random_control", Mode: m.String(), Detected: "no (correct)", Technique: "—", Latency: "—",
				Note: "python3: 8 bytes at exponential gaps (mean 4 s) over one connection to " + control + ": no alert"})
		}
	})
}

// A beacon with 50 % jitter: curl every 2 s ±50 % (gaps 1-3 s). The
// connections needed rise with the jitter to min_connections_at_max_jitter
// (40); the alert is due by the 48th connection (a margin for the spread
// actually drawn). Each curl lives between two polls: the sensor knows it
// from its destroy notification, in both modes.
func TestBeaconJitter50(t *testing.T) {
	netns.RequireTools(t, "curl", "python3", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const c2 = "203.0.113.82"
		const n, due = 56, 48
		www := t.TempDir()
		writeFile(t, filepath.Join(www, "index.html"), "ok\n")
		internetHost(t, topo, c2)
		startHTTP(t, topo, topo.I, c2, "8080", www, 180*time.Second)
		s := startSensor(t, topo, "beacon_jitter50", sensorOptions{mode: m})
		rng := rand.New(rand.NewSource(5))
		dueAt := make(chan time.Time, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if i == due-1 {
					dueAt <- time.Now()
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := topo.HostCmd(ctxFor(t, 10*time.Second), "curl", "-s", "-o", "/dev/null", "--max-time", "3", "http://"+c2+":8080/")
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("curl: %v %s", err, out)
					}
				}()
				time.Sleep(time.Duration(float64(2*time.Second) * (0.5 + rng.Float64())))
			}
		}()
		e := s.expect(t, "beacon_jitter50", "T1071", <-dueAt, "curl every 2 s ±50% (alert due by the 48th connection)",
			and(isTechnique("beaconing", "T1071"), destIs(c2)))
		wantField(t, e, "destination.port", "8080")
		wg.Wait()
	})
}
