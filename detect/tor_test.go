package detect

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/netsentinel/netsentinel/collector"
)

func torCfg(mod func(*TorConfig)) *TorConfig {
	f, _ := Lookup(RuleTor)
	c := f.DefaultConfig().(*TorConfig)
	if mod != nil {
		mod(c)
	}
	return c
}

func torSnap(at time.Time) *collector.Snapshot {
	s := hostSnap(at)
	s.Processes[500] = &collector.Process{PID: 500, PPID: 1, Name: "tor", Exe: "/usr/bin/tor", Cmdline: []string{"tor", "--SocksPort", "9050"}, User: "debian-tor"}
	s.Processes[600] = &collector.Process{PID: 600, PPID: 200, Name: "firefox"}
	s.Processes[700] = &collector.Process{PID: 700, PPID: 200, Name: "python3"}
	s.Processes[800] = &collector.Process{PID: 800, PPID: 200, Name: "ssh"}
	return s
}

func TestTor(t *testing.T) {
	type want struct {
		entity  string
		proc    string
		reasons []string
	}
	cases := []struct {
		name    string
		sockets []collector.Socket
		procs   bool // keep the tor process in the snapshot
		want    []want
		wantSP  int // suspicious_port alerts expected
	}{
		{
			name: "local tor client: one alert for the process, listing listener and relay connections",
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "127.0.0.1:9050", "", 500),
				sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.30:9001", 500),
				sock("tcp", "ESTABLISHED", "10.0.0.5:41001", "203.0.113.10:443", 500),
			},
			procs: true,
			want:  []want{{"process:tor:500", "tor", []string{"relay_address", "socks_listener", "tor_options", "tor_process"}}},
		},
		{
			name:  "tor process running with no sockets yet",
			procs: true,
			want:  []want{{"process:tor:500", "tor", []string{"tor_options", "tor_process"}}},
		},
		{
			name: "client of the local SOCKS port alerts with its own process; tor's accepted side does not",
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "127.0.0.1:9050", "", 500),
				sock("tcp", "ESTABLISHED", "127.0.0.1:50000", "127.0.0.1:9050", 440),
				sock("tcp", "ESTABLISHED", "127.0.0.1:9050", "127.0.0.1:50000", 500),
			},
			procs: true,
			want: []want{
				{"conn:curl:127.0.0.1:9050", "curl", []string{"tor_port"}},
				{"process:tor:500", "tor", []string{"socks_listener", "tor_options", "tor_process"}},
			},
		},
		{
			name:    "relay address on 443 from a browser",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41002", "203.0.113.11:443", 600)},
			want:    []want{{"conn:firefox:203.0.113.11:443", "firefox", []string{"relay_address"}}},
		},
		{
			name:    "IPv6 relay",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "[fd00::5]:41003", "[2001:db8::10]:443", 600)},
			want:    []want{{"conn:firefox:2001:db8::10:443", "firefox", []string{"relay_address"}}},
		},
		{
			name:    "DirPort from a script",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41004", "198.51.100.40:9030", 700)},
			want:    []want{{"conn:python3:198.51.100.40:9030", "python3", []string{"tor_port"}}},
		},
		{
			name:    "several reasons, one alert",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41005", "203.0.113.12:9001", 700)},
			want:    []want{{"conn:python3:203.0.113.12:9001", "python3", []string{"relay_address", "tor_port"}}},
		},
		{
			name:    "SOCKS listener on 9150 by another program",
			sockets: []collector.Socket{sock("tcp", "LISTEN", "127.0.0.1:9150", "", 800)},
			want:    []want{{"listen:tcp:9150", "ssh", []string{"socks_listener"}}},
		},
		{
			name:    "relay on a RAT port: tor alerts, suspicious_port does not double-alert",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41006", "203.0.113.10:4444", 300)},
			want:    []want{{"conn:nc:203.0.113.10:4444", "nc", []string{"relay_address"}}},
		},
		{
			name:    "a non-relay RAT port stays with suspicious_port",
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41007", "198.51.100.7:4444", 300)},
			wantSP:  1,
		},
		{
			name: "inbound to a local relay's ORPort from a client is the tor process's",
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "0.0.0.0:9001", "", 500),
				sock("tcp", "ESTABLISHED", "10.0.0.5:9001", "198.51.100.50:45000", 500),
			},
			procs: true,
			want:  []want{{"process:tor:500", "tor", []string{"tor_options", "tor_process"}}},
		},
	}
	cfg := torCfg(func(c *TorConfig) { c.RelayList = "testdata/tor/relays.txt" })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := portEngine(t, cfg, nil)
			snap := torSnap(t0)
			if !c.procs {
				delete(snap.Processes, 500)
			}
			snap.Sockets = c.sockets
			all := e.Run(snap)
			got := alertsByRule(all, RuleTor)
			if sp := alertsByRule(all, RuleSuspiciousPort); len(sp) != c.wantSP {
				t.Errorf("suspicious_port alerts %d, want %d: %+v", len(sp), c.wantSP, sp)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d tor alerts, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				a := got[i]
				if a.Entity != w.entity || a.Process == nil || a.Process.Name != w.proc {
					t.Errorf("alert %d: entity %q process %+v, want %q %s", i, a.Entity, a.Process, w.entity, w.proc)
				}
				if r, _ := a.Evidence["reasons"].([]string); !reflect.DeepEqual(r, w.reasons) {
					t.Errorf("alert %d: reasons %v, want %v", i, r, w.reasons)
				}
				if a.Technique != "T1090.003" || a.ThreatType != ThreatTor || a.Severity != SeverityHigh || a.Recommendation != Recommendation(ThreatTor) {
					t.Errorf("alert %d: %s %s %v", i, a.Technique, a.ThreatType, a.Severity)
				}
			}
		})
	}
}

func TestTorProcessAlertEvidence(t *testing.T) {
	e := portEngine(t, torCfg(func(c *TorConfig) { c.RelayList = "testdata/tor/onionoo_details.json" }), nil)
	snap := torSnap(t0)
	snap.Sockets = []collector.Socket{
		sock("tcp", "LISTEN", "127.0.0.1:9050", "", 500),
		sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.20:443", 500),
	}
	snap.Closed = []collector.Socket{sock("tcp", "CLOSE", "10.0.0.5:41001", "198.51.100.21:9001", 500)}
	got := alertsByRule(e.Run(snap), RuleTor)
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	ev := got[0].Evidence
	if ev["connections"] != 2 || ev["relay_connection"] != 2 || ev["relay_list_entries"] != 5 ||
		!reflect.DeepEqual(ev["listeners"], []string{"tcp/127.0.0.1:9050"}) ||
		!reflect.DeepEqual(ev["destinations"], []string{"198.51.100.20:443", "198.51.100.21:9001"}) ||
		!reflect.DeepEqual(ev["relay_list_sources"], []string{"file:testdata/tor/onionoo_details.json"}) {
		t.Errorf("evidence %v", ev)
	}
	if p := got[0].Process; p.User != "debian-tor" || p.ParentName != "systemd" {
		t.Errorf("process %+v", p)
	}
}

func TestTorConfigErrors(t *testing.T) {
	f, _ := Lookup(RuleTor)
	cases := map[string]struct {
		mod  func(*TorConfig)
		want string
	}{
		"missing relay list":  {func(c *TorConfig) { c.RelayList = "testdata/tor/nope.txt" }, "nope.txt"},
		"unusable relay list": {func(c *TorConfig) { c.RelayList = "testdata/tor/bad.txt" }, "no usable address"},
		"bad url":             {func(c *TorConfig) { c.RelayURL = "ftp://example.invalid/x" }, "relay_url"},
		"refresh too short":   {func(c *TorConfig) { c.RelayURL = "http://127.0.0.1:1/x"; c.RelayRefresh = time.Second }, "relay_refresh"},
		"zero timeout":        {func(c *TorConfig) { c.RelayURL = "http://127.0.0.1:1/x"; c.RelayTimeout = 0 }, "relay_timeout"},
		"bad port":            {func(c *TorConfig) { c.Ports = []string{"x"} }, "ports"},
	}
	for name, c := range cases {
		if _, err := f.New(torCfg(c.mod), Common{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTorRelayRefreshDownloadsAndCaches(t *testing.T) {
	body := []byte("198.51.100.77\n[2001:db8::77]:9001\n")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(body)
	}))
	defer srv.Close()
	cache := filepath.Join(t.TempDir(), "sub", "relays.cache")
	d, err := newTor(*torCfg(func(c *TorConfig) { c.RelayURL = srv.URL; c.RelayCache = cache }))
	if err != nil {
		t.Fatal(err)
	}
	if d.relays.Load().contains(netip.MustParseAddr("198.51.100.77")) {
		t.Fatal("relay known before any download")
	}
	d.Start(zap.NewNop())
	waitFor(t, "download", func() bool { return d.relays.Load().contains(netip.MustParseAddr("2001:db8::77")) })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", st.Mode().Perm())
	}
	if got, _ := os.ReadFile(cache); !bytes.Equal(got, body) {
		t.Errorf("cache content %q", got)
	}

	// A second detector with the fresh cache knows the relays at once and
	// does not download again before the refresh interval.
	before := hits.Load()
	d2, err := newTor(*torCfg(func(c *TorConfig) { c.RelayURL = srv.URL; c.RelayCache = cache }))
	if err != nil {
		t.Fatal(err)
	}
	if !d2.relays.Load().contains(netip.MustParseAddr("198.51.100.77")) {
		t.Fatal("cached relay list not loaded at start")
	}
	d2.Start(zap.NewNop())
	time.Sleep(100 * time.Millisecond)
	d2.Close()
	if hits.Load() != before {
		t.Errorf("downloaded again despite a fresh cache")
	}
}

func TestTorRelayRefreshFailureIsNotFatal(t *testing.T) {
	// A loopback port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/relays"
	l.Close()

	core, logs := observer.New(zap.WarnLevel)
	cfg := torCfg(func(c *TorConfig) {
		c.RelayURL = dead
		c.RelayList = "testdata/tor/relays.txt"
		c.RelayTimeout = time.Second
	})
	sp, _ := Lookup(RuleSuspiciousPort)
	tor, _ := Lookup(RuleTor)
	start := time.Now()
	eng, err := newEngine(Config{Detectors: map[string]any{RuleTor: cfg}}, zap.New(core), []Factory{sp, tor})
	if err != nil {
		t.Fatalf("start must not need the relay URL: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("NewEngine blocked %v on the download", d)
	}
	waitFor(t, "download failure warning", func() bool {
		return logs.FilterMessageSnippet("download failed").Len() > 0
	})
	// The relay file still works.
	snap := torSnap(t0)
	delete(snap.Processes, 500)
	snap.Sockets = []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41002", "203.0.113.11:443", 600)}
	if got := alertsByRule(eng.Run(snap), RuleTor); len(got) != 1 {
		t.Errorf("relay file not used after a failed download: %+v", got)
	}
	// Bad lines of the file were reported at start.
	if logs.FilterMessageSnippet("3 bad entries").Len() != 1 {
		t.Errorf("bad relay lines not logged: %v", logs.All())
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}
