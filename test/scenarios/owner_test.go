package scenarios

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/test/netns"
)

// ownerConns is how many ncat connections TestOneAlertPerConnection makes.
const ownerConns = 3

// Several short ncat connections to an external host's port 4444, each
// closed by ncat (so the host keeps it in TIME_WAIT, without owner, inode or
// uid of its own, and gets its destroy notification). Before the collector
// kept a socket's owner, each connection alerted once "by ncat" and again
// "by an unknown process" once it was in TIME_WAIT. Now a connection alerts
// at most once, and the same owner reconnecting to the same destination
// folds into the cooldown (one alert, repeats counted): exactly one T1571
// alert for the three connections, naming ncat. The unprivileged sensor
// cannot read root's fds: its alert is keyed by the socket's uid (0), says
// the owner was not readable, and names ncat as inferred from its command
// line.
func TestOneAlertPerConnection(t *testing.T) {
	netns.RequireTools(t, "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const c2 = "198.51.100.44"
		internetHost(t, topo, c2)
		listen(t, topo, topo.I, c2, "4444", 60*time.Second)
		s := startSensor(t, topo, "suspicious_port_per_connection", sensorOptions{mode: m})

		match := and(isTechnique("suspicious_port", "T1571"), destIs(c2))
		var e map[string]any
		for i := range ownerConns {
			// --send-only: ncat sends its stdin and quits at its end,
			// closing the connection first (TIME_WAIT on this host). It
			// lasts 4 s, several polls even on a loaded machine: one that
			// only lives between two polls has no uid to key it by.
			start := time.Now()
			run(t, topo.HostCmd(ctxFor(t, 30*time.Second), "sh", "-c", "sleep 4 | ncat --send-only "+c2+" 4444"))
			if i == 0 {
				e = s.expect(t, "suspicious_port_per_connection", "T1571", start,
					fmt.Sprintf("%d ncat connections to %s:4444, each closed: one alert, never a second for another owner reading", ownerConns, c2), match)
			}
		}
		wantField(t, e, "process.name", "ncat")
		wantField(t, e, "destination.port", "4444")
		entity := str(e, "netsentinel.entity")
		if m.Privileged {
			if entity != "out:ncat:"+c2+":4444" {
				t.Errorf("entity %q, want out:ncat:%s:4444; alert: %s", entity, c2, describe(e))
			}
		} else {
			if entity != "out:uid:0:"+c2+":4444" {
				t.Errorf("entity %q, want keyed by the socket's uid (out:uid:0:%s:4444); alert: %s", entity, c2, describe(e))
			}
			if u := fmt.Sprint(field(e, "netsentinel.evidence.owner_uid")); u != "0" {
				t.Errorf("evidence.owner_uid = %s, want 0; alert: %s", u, describe(e))
			}
			if o := fmt.Sprint(field(e, "netsentinel.evidence.owner")); !strings.HasPrefix(o, "inferred") {
				t.Errorf("evidence.owner = %q, want the inference stated; alert: %s", o, describe(e))
			}
		}
		// The connections sit in TIME_WAIT now: give the sensor polls to
		// list them so, and to get their destroy notifications.
		s.waitPolls(t, 3)
		var got []string
		for _, e := range s.events.All() {
			if match(e) {
				got = append(got, str(e, "netsentinel.entity")+" ("+str(e, "message")+")")
			}
		}
		if len(got) != 1 {
			t.Errorf("%d T1571 alerts for %d connections of one owner, want exactly one:\n%s", len(got), ownerConns, strings.Join(got, "\n"))
		}
	})
}

// Atomic Red Team T1571 #2 "Testing usage of uncommonly used port": `echo
// quit | telnet DOMAIN 8081`. 8081 is an everyday alternate HTTP port, not in
// the default RAT/C2 list; an operator who treats it as non-standard adds it
// to suspicious_port.ports, and the atomic's short connection (it ends when
// telnet's stdin does, usually between two polls) is then caught through
// its TIME_WAIT listing or destroy notification.
func TestT1571AtomicTelnet(t *testing.T) {
	netns.RequireTools(t, "telnet", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const dst = "198.51.100.45"
		internetHost(t, topo, dst)
		listen(t, topo, topo.I, dst, "8081", 40*time.Second)
		ports := `"` + strings.Join(append(append([]string(nil), detect.DefaultSuspiciousPorts...), "8081"), `", "`) + `"`
		s := startSensor(t, topo, "t1571_atomic_telnet_8081", sensorOptions{mode: m,
			detectors: "    suspicious_port:\n      ports: [" + ports + "]\n"})
		start := time.Now()
		run(t, topo.HostCmd(ctxFor(t, 30*time.Second), "sh", "-c", "echo quit | timeout 10 telnet "+dst+" 8081; exit 0"))
		e := s.expect(t, "t1571_atomic_telnet_8081", "T1571", start, "echo quit | telnet "+dst+" 8081 (8081 added to suspicious_port.ports)",
			and(isTechnique("suspicious_port", "T1571"), destIs(dst)))
		wantField(t, e, "destination.port", "8081")
	})
}
