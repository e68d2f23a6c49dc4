package detect

import (
	"strings"
	"testing"
)

// alertOf returns the first replayed alert of rule in a recorded scenario: the
// exceptions are tested on the alerts real detectors raise on real tools.
func alertOf(t *testing.T, fixture, rule string) Alert {
	t.Helper()
	for _, a := range replayAlerts(t, fixture) {
		if a.RuleID == rule {
			return a
		}
	}
	t.Fatalf("%s: no %s alert", fixture, rule)
	return Alert{}
}

func TestExceptionsMatchRealAlerts(t *testing.T) {
	// lateral_movement: ssh (/usr/bin/ssh, root, uid 0) 10.66.0.10 -> 10.66.0.2x:22/tcp, T1021.004.
	lateral := alertOf(t, "lateral_ssh", RuleLateralMovement)
	// suspicious_dns: dig 10.66.0.10:port -> 203.0.113.53:53/udp, T1071.004.
	dns := alertOf(t, "dns_unconfigured_resolver", RuleSuspiciousDNS)
	// reverse_shell: bash -> 198.51.100.20:4444/tcp, T1059.004.
	rev := alertOf(t, "reverse_shell", RuleReverseShell)
	// port_scan from the closed-port counters: no process, no destination.
	scan := alertOf(t, "port_scan_inbound_connect", RulePortScan)

	for _, tc := range []struct {
		name  string
		spec  ExceptionSpec
		alert Alert
		want  bool
	}{
		{"process name, every rule", ExceptionSpec{Match: map[string][]string{"process.name": {"ssh"}}}, lateral, true},
		{"process name of another process", ExceptionSpec{Match: map[string][]string{"process.name": {"scp", "rsync"}}}, lateral, false},
		{"OR within a list", ExceptionSpec{Match: map[string][]string{"process.name": {"scp", "ssh"}}}, lateral, true},
		{"executable glob", ExceptionSpec{Match: map[string][]string{"process.executable": {"/usr/bin/*"}}}, lateral, true},
		{"executable exact miss", ExceptionSpec{Match: map[string][]string{"process.executable": {"/usr/local/bin/ssh"}}}, lateral, false},
		{"rule listed", ExceptionSpec{Rules: []string{RuleLateralMovement}, Match: map[string][]string{"process.name": {"ssh"}}}, lateral, true},
		{"other rule listed", ExceptionSpec{Rules: []string{RuleBeaconing}, Match: map[string][]string{"process.name": {"ssh"}}}, lateral, false},
		{"AND across fields", ExceptionSpec{Match: map[string][]string{"process.name": {"ssh"}, "destination.port": {"22"}, "user.name": {"root"}}}, lateral, true},
		{"AND: one field misses", ExceptionSpec{Match: map[string][]string{"process.name": {"ssh"}, "user.name": {"backup"}}}, lateral, false},
		{"destination CIDR", ExceptionSpec{Match: map[string][]string{"destination.ip": {"10.66.0.0/24"}}}, lateral, true},
		{"destination CIDR miss", ExceptionSpec{Match: map[string][]string{"destination.ip": {"10.67.0.0/16"}}}, lateral, false},
		{"source single address", ExceptionSpec{Match: map[string][]string{"source.ip": {"10.66.0.10"}}}, dns, true},
		{"destination address", ExceptionSpec{Match: map[string][]string{"destination.ip": {"203.0.113.53", "203.0.113.54"}}}, dns, true},
		{"destination port range", ExceptionSpec{Match: map[string][]string{"destination.port": {"50-60"}}}, dns, true},
		{"source port range", ExceptionSpec{Match: map[string][]string{"source.port": {"1-1023"}}}, dns, false},
		{"transport", ExceptionSpec{Match: map[string][]string{"network.transport": {"UDP"}}}, dns, true},
		{"transport miss", ExceptionSpec{Match: map[string][]string{"network.transport": {"tcp"}}}, dns, false},
		{"user id", ExceptionSpec{Match: map[string][]string{"user.id": {"0"}}}, rev, true},
		{"user id miss", ExceptionSpec{Match: map[string][]string{"user.id": {"1000"}}}, rev, false},
		{"technique exact", ExceptionSpec{Match: map[string][]string{"threat.technique.id": {"T1059.004"}}}, rev, true},
		{"parent technique covers sub-technique", ExceptionSpec{Match: map[string][]string{"threat.technique.id": {"t1021"}}}, lateral, true},
		{"sub-technique does not cover parent or sibling", ExceptionSpec{Match: map[string][]string{"threat.technique.id": {"T1021.001"}}}, lateral, false},
		{"alert without the field does not match", ExceptionSpec{Match: map[string][]string{"process.name": {"*"}}}, scan, false},
		{"alert without destination", ExceptionSpec{Match: map[string][]string{"destination.ip": {"0.0.0.0/0"}}}, scan, false},
		{"counter alert by source", ExceptionSpec{Rules: []string{RulePortScan}, Match: map[string][]string{"source.ip": {"10.66.0.21"}}}, scan, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = "x"
			x, err := CompileExceptions([]ExceptionSpec{tc.spec}, AllRuleIDs())
			if err != nil {
				t.Fatal(err)
			}
			name, got := x.Match(&tc.alert)
			if got != tc.want || (got && name != "x") {
				t.Errorf("Match = %q, %v; want %v (alert %s %s src %v dst %v)", name, got, tc.want, tc.alert.RuleID, tc.alert.Technique, tc.alert.Source, tc.alert.Dest)
			}
		})
	}
}

func TestExceptionsFirstMatchNamesIt(t *testing.T) {
	x, err := CompileExceptions([]ExceptionSpec{
		{Name: "backups", Match: map[string][]string{"process.name": {"rsync"}}},
		{Name: "admins-ssh", Rules: []string{RuleLateralMovement}, Match: map[string][]string{"process.name": {"ssh"}}},
		{Name: "lan", Match: map[string][]string{"destination.ip": {"10.0.0.0/8"}}},
	}, AllRuleIDs())
	if err != nil {
		t.Fatal(err)
	}
	a := alertOf(t, "lateral_ssh", RuleLateralMovement)
	if name, ok := x.Match(&a); !ok || name != "admins-ssh" {
		t.Errorf("Match = %q, %v; want admins-ssh", name, ok)
	}
	var none *Exceptions
	if _, ok := none.Match(&a); ok || none.Len() != 0 {
		t.Error("a nil list matches")
	}
}

func TestCompileExceptionsErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		specs []ExceptionSpec
		want  string
	}{
		{[]ExceptionSpec{{Match: map[string][]string{"process.name": {"a"}}}}, "[0]: name: empty"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"process.name": {"a"}}}, {Name: "a", Match: map[string][]string{"process.name": {"b"}}}}, `[1] "a": name: duplicate`},
		{[]ExceptionSpec{{Name: "a", Rules: []string{"lateral_movment"}, Match: map[string][]string{"process.name": {"a"}}}}, `unknown rule "lateral_movment"`},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"process.nam": {"a"}}}}, `unknown field "process.nam"`},
		{[]ExceptionSpec{{Name: "a"}}, "match: empty"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"process.name": {}}}}, "process.name: no values"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"destination.ip": {"10.0.0.0/33"}}}}, `destination.ip: value "10.0.0.0/33": want an IP address or CIDR`},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"source.ip": {"host.example"}}}}, `source.ip: value "host.example"`},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"destination.port": {"0"}}}}, `destination.port: value "0"`},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"destination.port": {"90-80"}}}}, `destination.port: value "90-80"`},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"network.transport": {"icmp"}}}}, "want tcp or udp"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"threat.technique.id": {"T9999"}}}}, "not a live ATT&CK technique"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"user.id": {"root"}}}}, "want a numeric uid"},
		{[]ExceptionSpec{{Name: "a", Match: map[string][]string{"process.name": {"[a"}}}}, "bad pattern"},
	} {
		_, err := CompileExceptions(tc.specs, AllRuleIDs())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
}

func TestAllRuleIDsCoversEveryRule(t *testing.T) {
	ids := AllRuleIDs()
	for _, want := range []string{RuleSuspiciousPort, RulePortScan, RuleLateralMovement, RuleSuspiciousDNS, RuleDNSHijack, RuleTor,
		RuleBeaconing, RuleThreatIntel, RuleProcessSpawn, RuleReverseShell, RuleARPSpoofing, RuleExfiltration} {
		found := false
		for _, id := range ids {
			found = found || id == want
		}
		if !found {
			t.Errorf("AllRuleIDs %v lacks %q", ids, want)
		}
	}
}

// Silenced in the engine: the matched alert is not emitted and is counted per
// exception; the scenario's other alerts still come out.
func TestEngineExceptionSilencesReplayedAlert(t *testing.T) {
	x, err := CompileExceptions([]ExceptionSpec{{
		Name: "lab-c2", Rules: []string{RuleReverseShell},
		Match: map[string][]string{"destination.ip": {"198.51.100.0/24"}, "process.name": {"bash"}},
	}}, AllRuleIDs())
	if err != nil {
		t.Fatal(err)
	}
	alerts, stats := replayWith(t, "reverse_shell", func(c *Config) { c.Exceptions = x })
	others := 0
	for _, a := range alerts {
		if a.RuleID == RuleReverseShell {
			t.Errorf("silenced alert emitted: %s", a.Message)
		} else {
			others++
		}
	}
	if others == 0 {
		t.Error("the exception silenced the other rules' alerts too")
	}
	if stats.Exceptions["lab-c2"] == 0 {
		t.Errorf("exception counts %v", stats.Exceptions)
	}
	var excepted uint64
	for _, d := range stats.Detectors {
		excepted += d.Excepted
	}
	if excepted != stats.Exceptions["lab-c2"] {
		t.Errorf("detector excepted %d != exception count %d", excepted, stats.Exceptions["lab-c2"])
	}
}
