package detect

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

// The recordings in testdata/recorded were made by the scenario suite
// (NETSENTINEL_RECORD_DIR=... go test ./test/scenarios/): real tools in
// network namespaces, the built sensor recording every snapshot. Replaying
// them through the engine must raise the scenario's technique every time, and
// the benign baseline must raise nothing.

// replayAlerts runs every snapshot of a recording through a fresh engine
// configured as the scenario suite configures the sensor.
func replayAlerts(t *testing.T, name string) []Alert {
	t.Helper()
	alerts, _ := replayWith(t, name, nil)
	return alerts
}

// replayWith is replayAlerts with the engine config adjusted by tune (when
// not nil); it also returns the engine's counters after the replay.
func replayWith(t *testing.T, name string, tune func(*Config)) ([]Alert, EngineStats) {
	t.Helper()
	eng := newReplayEngine(t, tune)
	return replayInto(t, eng, name), eng.Stats()
}

// newReplayEngine builds an engine configured as the scenario suite
// configures the sensor, adjusted by tune when not nil; it is closed when the
// test ends.
func newReplayEngine(t *testing.T, tune func(*Config)) *Engine {
	t.Helper()
	eng, err := NewEngine(replayConfig(tune), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// replayConfig is the engine config of the scenario suite, adjusted by tune
// when not nil.
func replayConfig(tune func(*Config)) Config {
	var torCfg *TorConfig
	for _, f := range Factories() {
		if f.Name == RuleTor {
			torCfg = f.DefaultConfig().(*TorConfig)
		}
	}
	torCfg.RelayList = filepath.Join("testdata", "recorded", "tor_relays.txt")
	cfg := Config{
		HomeNet:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Detectors: map[string]any{RuleTor: torCfg},
	}
	if tune != nil {
		tune(&cfg)
	}
	return cfg
}

// replayInto runs every snapshot of a recording through eng.
func replayInto(t *testing.T, eng *Engine, name string) []Alert {
	t.Helper()
	src, err := collector.OpenReplay(filepath.Join("testdata", "recorded", name+".ndjson.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []Alert
	for i := 0; i < 10000; i++ {
		snap, err := src.Collect(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eng.Run(snap)...)
	}
	t.Fatalf("%s: more than 10000 snapshots", name)
	return nil
}

func TestReplayRecordedScenarios(t *testing.T) {
	for _, tc := range []struct {
		fixture, rule, technique, dest, process string
	}{
		{"port_scan_inbound_connect", RulePortScan, "T1046", "", ""},
		{"port_scan_inbound_syn", RulePortScan, "T1046", "", ""},
		{"port_scan_outbound_connect", RulePortScan, "T1046", "", "nmap"},
		{"port_scan_outbound_syn", RulePortScan, "T1046", "", "nmap"},
		{"lateral_ssh", RuleLateralMovement, "T1021.004", "", "ssh"},
		{"lateral_smb_rdp", RuleLateralMovement, "T1021.002", "", "ncat"},
		{"lateral_smb_rdp", RuleLateralMovement, "T1021.001", "", "ncat"},
		{"dns_unconfigured_resolver", RuleSuspiciousDNS, "T1071.004", "203.0.113.53", "dig"},
		{"dns_resolv_conf_swap", RuleDNSHijack, "T1071.004", "203.0.113.66", ""},
		{"tor", RuleTor, "T1090.003", "", "tor"},
		{"tor", RuleTor, "T1090.003", "198.51.100.102", "ncat"},
		{"beaconing", RuleBeaconing, "T1071", "203.0.113.80", ""},
		{"webserver_spawns_shell", RuleProcessSpawn, "T1059.004", "", "sh"},
		{"reverse_shell", RuleReverseShell, "T1059.004", "198.51.100.20", "bash"},
		{"arp_spoofing", RuleARPSpoofing, "T1557.002", "", ""},
		{"exfiltration", RuleExfiltration, "T1048", "203.0.113.50", ""},
		{"lateral_ssh_2222", RuleLateralMovement, "T1021.004", "", "ssh"},
		{"lateral_impacket", RuleLateralMovement, "T1021.002", "10.66.0.21", "python3"},
		{"exfil_rotating", RuleExfiltration, "T1048", "", "curl"},
		{"exfil_staged", RuleStagedExfiltration, "T1048", "203.0.113.120", "curl"},
		// Unprivileged sensor; the staging copy's last bytes (its destroy
		// event) and the upload's first poll fall in one snapshot.
		{"exfil_staged_same_poll", RuleStagedExfiltration, "T1048", "203.0.113.120", ""},
		{"exfil_atomic_tar_openssl_ssh", RuleExfiltration, "T1048", "198.51.100.140", "ssh"},
	} {
		t.Run(tc.fixture+"/"+tc.technique, func(t *testing.T) {
			alerts := replayAlerts(t, tc.fixture)
			for _, a := range alerts {
				if a.RuleID != tc.rule || a.Technique != tc.technique {
					continue
				}
				if tc.dest != "" && a.Dest.Addr().String() != tc.dest {
					continue
				}
				if tc.process != "" && (a.Process == nil || a.Process.Name != tc.process) {
					continue
				}
				return
			}
			t.Errorf("no %s %s alert (dest %q, process %q) in %d alerts: %+v", tc.rule, tc.technique, tc.dest, tc.process, len(alerts), alerts)
		})
	}
	// The random-interval control ran beside the beacon: no beaconing for it.
	for _, a := range replayAlerts(t, "beaconing") {
		if a.RuleID == RuleBeaconing && a.Dest.Addr().String() == "203.0.113.81" {
			t.Errorf("beaconing alert for the random-interval control: %s", a.Message)
		}
	}
}

func TestReplayRecordedBaselineIsSilent(t *testing.T) {
	for _, name := range []string{"baseline", "exfil_backup_control"} {
		for _, a := range replayAlerts(t, name) {
			t.Errorf("benign %s: %s %s: %s", name, a.RuleID, a.Technique, a.Message)
		}
	}
}

// Replays are deterministic: the same recording gives the same alerts.
func TestReplayDeterministic(t *testing.T) {
	key := func(as []Alert) []string {
		var k []string
		for _, a := range as {
			k = append(k, a.RuleID+"|"+a.Technique+"|"+a.Entity+"|"+a.Time.String())
		}
		return k
	}
	a, b := key(replayAlerts(t, "lateral_smb_rdp")), key(replayAlerts(t, "lateral_smb_rdp"))
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("replays differ: %d vs %d alerts", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("alert %d differs: %s vs %s", i, a[i], b[i])
		}
	}
}
