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
		snap.Sockets = []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.7:4444", 300)}
		at = at.Add(2 * time.Minute)
		return alertsByRule(e.Run(snap), RuleSuspiciousPort)
	}
	first := run()
	if len(first) != 1 {
		t.Fatalf("first poll: %d alerts", len(first))
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
	for i := 0; i < 4; i++ { // t0+2m .. t0+8m: suppressed
		if got := run(); len(got) != 0 {
			t.Fatalf("poll %d inside cooldown alerted: %+v", i+2, got)
		}
	}
	again := run() // t0+10m
	if len(again) != 1 || again[0].Count != 5 || again[0].ID == a.ID {
		t.Fatalf("after cooldown: %+v", again)
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
