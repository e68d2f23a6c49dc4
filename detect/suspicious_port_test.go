package detect

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/netsentinel/netsentinel/collector"
)

// portEngine runs only the two detectors of this file pair, so other
// detectors' alerts cannot mask or satisfy an assertion.
func portEngine(t *testing.T, torCfg *TorConfig, spCfg *SuspiciousPortConfig) *Engine {
	t.Helper()
	sp, ok1 := Lookup(RuleSuspiciousPort)
	tor, ok2 := Lookup(RuleTor)
	if !ok1 || !ok2 {
		t.Fatal("suspicious_port or tor not registered")
	}
	cfg := Config{Detectors: map[string]any{}}
	if torCfg != nil {
		cfg.Detectors[RuleTor] = torCfg
	}
	if spCfg != nil {
		cfg.Detectors[RuleSuspiciousPort] = spCfg
	}
	e, err := newEngine(cfg, zaptest.NewLogger(t), []Factory{sp, tor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// hostSnap is a host 10.0.0.5 running a shell that started nc.
func hostSnap(at time.Time) *collector.Snapshot {
	s := snapAt(at)
	s.Processes[1] = &collector.Process{PID: 1, Name: "systemd"}
	s.Processes[200] = &collector.Process{PID: 200, PPID: 1, Name: "bash", UID: 1000, User: "alice"}
	s.Processes[300] = &collector.Process{PID: 300, PPID: 200, Name: "nc", Exe: "/usr/bin/nc.openbsd", Cmdline: []string{"nc", "198.51.100.7", "4444"}, UID: 1000, User: "alice"}
	s.Processes[400] = &collector.Process{PID: 400, PPID: 1, Name: "backdoor", Exe: "/tmp/.x/backdoor"}
	s.Processes[410] = &collector.Process{PID: 410, PPID: 1, Name: "nginx"}
	s.Processes[420] = &collector.Process{PID: 420, PPID: 200, Name: "irssi"}
	s.Processes[430] = &collector.Process{PID: 430, PPID: 1, Name: "danted"}
	s.Processes[440] = &collector.Process{PID: 440, PPID: 200, Name: "curl"}
	return s
}

func alertsByRule(as []Alert, rule string) []Alert {
	var out []Alert
	for _, a := range as {
		if a.RuleID == rule {
			out = append(out, a)
		}
	}
	return out
}

func TestSuspiciousPort(t *testing.T) {
	type want struct {
		entity, proc, parent, direction, transport string
		port                                       int
	}
	cases := []struct {
		name    string
		sockets []collector.Socket
		closed  []collector.Socket
		want    []want
	}{
		{
			name:    "outbound to RAT port with process context",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.7:4444", 300)},
			want:    []want{{"out:nc:198.51.100.7:4444", "nc", "bash", DirEgress, "tcp", 4444}},
		},
		{
			name:    "listener on a RAT port",
			sockets: []collector.Socket{sock("tcp", "LISTEN", "0.0.0.0:31337", "", 400)},
			want:    []want{{"listen:tcp:31337", "backdoor", "systemd", DirIngress, "tcp", 31337}},
		},
		{
			name: "inbound client whose ephemeral port is on the list is not outbound",
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "0.0.0.0:8080", "", 410),
				sock("tcp", "ESTABLISHED", "10.0.0.5:8080", "198.51.100.8:54321", 410),
			},
		},
		{
			name:    "range 6666-6669 covers IRC 6667",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41001", "198.51.100.9:6667", 420)},
			want:    []want{{"out:irssi:198.51.100.9:6667", "irssi", "bash", DirEgress, "tcp", 6667}},
		},
		{
			name: "loopback SOCKS proxy: the listener alerts, not each local client",
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "127.0.0.1:1080", "", 430),
				sock("tcp", "ESTABLISHED", "127.0.0.1:50000", "127.0.0.1:1080", 440),
				sock("tcp", "ESTABLISHED", "127.0.0.1:1080", "127.0.0.1:50000", 430),
			},
			want: []want{{"listen:tcp:1080", "danted", "systemd", DirIngress, "tcp", 1080}},
		},
		{
			name:    "connected UDP",
			sockets: []collector.Socket{sock("udp", "ESTABLISHED", "10.0.0.5:40000", "198.51.100.7:5555", 300)},
			want:    []want{{"out:nc:198.51.100.7:5555", "nc", "bash", DirEgress, "udp", 5555}},
		},
		{
			name:   "closed socket without owner still alerts, without process",
			closed: []collector.Socket{sock("tcp", "CLOSE", "10.0.0.5:41002", "198.51.100.7:12345", 0)},
			want:   []want{{"out:unknown:198.51.100.7:12345", "", "", DirEgress, "tcp", 12345}},
		},
		{
			name:    "ordinary HTTPS is silent",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41003", "198.51.100.7:443", 440)},
		},
		{
			name:    "Tor port is the tor detector's, not ours",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41004", "198.51.100.7:9001", 440)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := portEngine(t, nil, nil)
			snap := hostSnap(t0)
			snap.Sockets, snap.Closed = c.sockets, c.closed
			got := alertsByRule(e.Run(snap), RuleSuspiciousPort)
			if len(got) != len(c.want) {
				t.Fatalf("got %d alerts, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				a := got[i]
				if a.Entity != w.entity || a.Direction != w.direction || a.Transport != w.transport {
					t.Errorf("alert %d: entity %q direction %q transport %q, want %q %q %q", i, a.Entity, a.Direction, a.Transport, w.entity, w.direction, w.transport)
				}
				if a.Technique != "T1571" || a.Severity != SeverityHigh || a.ThreatType != ThreatSuspiciousPort || a.Count != 1 {
					t.Errorf("alert %d: %s %v %s count %d", i, a.Technique, a.Severity, a.ThreatType, a.Count)
				}
				if a.Evidence["port"] != w.port || a.Recommendation != Recommendation(ThreatSuspiciousPort) || a.Message == "" {
					t.Errorf("alert %d: evidence %v recommendation %q", i, a.Evidence, a.Recommendation)
				}
				if w.proc == "" {
					if a.Process != nil || a.Evidence["process_unknown"] == nil {
						t.Errorf("alert %d: want no process and a process_unknown note, got %+v", i, a.Process)
					}
					continue
				}
				if a.Process == nil || a.Process.Name != w.proc || a.Process.ParentName != w.parent {
					t.Errorf("alert %d: process %+v, want %s under %s", i, a.Process, w.proc, w.parent)
				}
			}
		})
	}
}

func TestSuspiciousPortEvidenceAndCooldown(t *testing.T) {
	e := portEngine(t, nil, nil)
	at := t0
	run := func() []Alert {
		snap := hostSnap(at)
		snap.Sockets = []collector.Socket{
			sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.7:4444", 300),
			sock("tcp", "LISTEN", "0.0.0.0:31337", "", 400),
		}
		at = at.Add(2 * time.Minute)
		return alertsByRule(e.Run(snap), RuleSuspiciousPort)
	}
	first := run()
	if len(first) != 2 {
		t.Fatalf("first poll: %d alerts, want the connection and the listener", len(first))
	}
	a := first[0]
	if !reflect.DeepEqual(a.Process.Args, []string{"nc", "198.51.100.7", "4444"}) || a.Process.Executable != "/usr/bin/nc.openbsd" || a.Process.User != "alice" {
		t.Errorf("process %+v", a.Process)
	}
	if a.Source.String() != "10.0.0.5:41000" || a.Dest.String() != "198.51.100.7:4444" || !a.Time.Equal(t0) {
		t.Errorf("source %v dest %v time %v", a.Source, a.Dest, a.Time)
	}
	if list, _ := a.Evidence["port_list"].([]int); len(list) != 14 || list[0] != 1080 || a.Evidence["state"] != "ESTABLISHED" {
		t.Errorf("evidence %v", a.Evidence)
	}
	if !strings.Contains(a.Message, "nc (pid 300)") || !strings.Contains(a.Message, "4444") {
		t.Errorf("message %q", a.Message)
	}
	if _, ok := a.Evidence["process_unknown"]; ok {
		t.Errorf("owned socket's evidence says the owner is unknown: %v", a.Evidence)
	}
	for i := 0; i < 4; i++ { // t0+2m .. t0+8m: suppressed
		if got := run(); len(got) != 0 {
			t.Fatalf("poll %d inside cooldown alerted: %+v", i+2, got)
		}
	}
	// t0+10m: the standing listener is raised again with its count; the
	// connection, alerted once already, is not.
	again := run()
	if len(again) != 1 || again[0].Entity != "listen:tcp:31337" || again[0].Count != 5 || again[0].ID == first[1].ID {
		t.Fatalf("after cooldown: %+v", again)
	}
}

// One connection is one alert per rule, whatever its owner looks like along
// the way: seen with its process, then in TIME_WAIT and in its destroy
// notification without one (issue 10: "by ncat (pid 13)" then "by an unknown
// process"); or seen first without an owner and later with one.
func TestSuspiciousPortOneAlertPerConnection(t *testing.T) {
	e := portEngine(t, nil, nil)
	est := sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.7:4444", 300)
	est.Inode, est.UID, est.Cookie = 5001, 1000, 77
	tw := est
	tw.State, tw.PID, tw.Inode, tw.UID = collector.StateTimeWait, 0, 0, 0
	gone := tw
	gone.State, gone.Destroyed = collector.StateClose, true
	second := sock("tcp", "ESTABLISHED", "10.0.0.5:41010", "198.51.100.7:4444", 300)
	second.Inode, second.UID, second.Cookie = 5002, 1000, 78
	unowned := second
	unowned.PID = 0

	var got []Alert
	for i, step := range []struct{ socks, closed []collector.Socket }{
		{socks: []collector.Socket{est}},
		{socks: []collector.Socket{tw}},
		{socks: []collector.Socket{tw}, closed: []collector.Socket{gone}},
		{socks: []collector.Socket{unowned}}, // a second connection, owner not read yet
		{socks: []collector.Socket{second}},  // read at the next poll
	} {
		snap := hostSnap(t0.Add(time.Duration(i) * time.Second))
		snap.Sockets, snap.Closed = step.socks, step.closed
		got = append(got, alertsByRule(e.Run(snap), RuleSuspiciousPort)...)
	}
	if len(got) != 2 {
		for _, a := range got {
			t.Logf("alert %s: %s", a.Entity, a.Message)
		}
		t.Fatalf("%d alerts for two connections, want one each", len(got))
	}
	if got[0].Entity != "out:nc:198.51.100.7:4444" || got[0].Process == nil || got[0].Process.PID != 300 {
		t.Errorf("first connection: entity %q process %+v, want nc (pid 300)", got[0].Entity, got[0].Process)
	}
	if got[1].Entity != "out:uid:1000:198.51.100.7:4444" || got[1].Source.Port() != 41010 {
		t.Errorf("second connection: entity %q source %v, want keyed by uid 1000 from port 41010", got[1].Entity, got[1].Source)
	}
}

// A socket whose owner cannot be read is keyed by its uid, not pooled with
// every other unreadable socket; its evidence says so and names the user.
// Where /proc shows strong evidence the alert names the process, marked as
// inferred; the entity stays the uid's.
func TestSuspiciousPortUnownedKeyedByUID(t *testing.T) {
	e := portEngine(t, nil, nil)
	snap := hostSnap(t0)
	snap.Processes[500] = &collector.Process{PID: 500, PPID: 1, Name: "php-fpm", UID: 33, User: "www-data"}
	a := sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.9:4444", 0)
	a.Inode, a.UID = 9001, 33 // php-fpm is uid 33's only process
	b := sock("tcp", "ESTABLISHED", "10.0.0.5:41001", "198.51.100.7:4444", 0)
	b.Inode, b.UID = 9002, 1000 // nc's command line names 198.51.100.7 4444
	c := sock("tcp", "LISTEN", "0.0.0.0:31337", "", 0)
	c.Inode, c.UID = 9003, 4242 // no process of uid 4242 is visible
	snap.Sockets = []collector.Socket{a, b, c}
	got := alertsByRule(e.Run(snap), RuleSuspiciousPort)
	want := map[string]struct {
		uid            uint32
		user, proc     string
		msg, inference string
	}{
		"out:uid:33:198.51.100.9:4444":   {33, "www-data", "php-fpm", "by php-fpm (pid 500, inferred)", "only process"},
		"out:uid:1000:198.51.100.7:4444": {1000, "alice", "nc", "by nc (pid 300, inferred)", "command line"},
		"listen:tcp:31337":               {4242, "", "", "by a process of uid 4242", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d alerts, want %d: %+v", len(got), len(want), got)
	}
	for _, g := range got {
		w, ok := want[g.Entity]
		if !ok {
			t.Errorf("unexpected entity %q", g.Entity)
			continue
		}
		if g.Evidence["owner_uid"] != w.uid || g.Evidence["process_unknown"] == nil {
			t.Errorf("%s: evidence %v, want owner_uid %d and a process_unknown note", g.Entity, g.Evidence, w.uid)
		}
		if u, _ := g.Evidence["owner_user"].(string); u != w.user {
			t.Errorf("%s: owner_user %q, want %q", g.Entity, u, w.user)
		}
		if !strings.Contains(g.Message, w.msg) {
			t.Errorf("%s: message %q, want %q in it", g.Entity, g.Message, w.msg)
		}
		owner, _ := g.Evidence["owner"].(string)
		switch {
		case w.proc == "":
			if g.Process != nil || owner != "" {
				t.Errorf("%s: process %+v owner %q, want none", g.Entity, g.Process, owner)
			}
		case g.Process == nil || g.Process.Name != w.proc:
			t.Errorf("%s: process %+v, want %s", g.Entity, g.Process, w.proc)
		case !strings.HasPrefix(owner, "inferred: ") || !strings.Contains(owner, w.inference):
			t.Errorf("%s: evidence owner %q, want it marked inferred by %s", g.Entity, owner, w.inference)
		}
	}
}

func TestSuspiciousPortConfig(t *testing.T) {
	f, _ := Lookup(RuleSuspiciousPort)
	def := f.DefaultConfig().(*SuspiciousPortConfig)
	if !def.Listening || !reflect.DeepEqual(def.Ports, DefaultSuspiciousPorts) {
		t.Fatalf("defaults %+v", def)
	}
	for _, bad := range [][]string{{"9050"}, {"9000-9002"}, {"70000"}} {
		if _, err := f.New(&SuspiciousPortConfig{Ports: bad}, Common{}); err == nil {
			t.Errorf("ports %v accepted", bad)
		}
	}
	// A custom list replaces the default; listening can be turned off.
	e := portEngine(t, nil, &SuspiciousPortConfig{Ports: []string{"8081"}, Listening: false})
	snap := hostSnap(t0)
	snap.Sockets = []collector.Socket{
		sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.7:4444", 300),
		sock("tcp", "ESTABLISHED", "10.0.0.5:41001", "198.51.100.7:8081", 300),
		sock("tcp", "LISTEN", "0.0.0.0:8081", "", 400),
	}
	got := alertsByRule(e.Run(snap), RuleSuspiciousPort)
	if len(got) != 1 || got[0].Entity != "out:nc:198.51.100.7:8081" {
		t.Fatalf("custom ports: %+v", got)
	}
}
