package detect

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/netsentinel/netsentinel/collector"
)

func TestParseIntelList(t *testing.T) {
	got, err := ParseIntelList([]byte("# c\n\n10.1.2.3\n10.0.0.0/8 # trailing\n 2001:db8::/32 \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.1.2.3/32", "10.0.0.0/8", "2001:db8::/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParseIntelList([]byte("1.2.3.4\n1.2.3.999\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line error = %v, want it to name line 2", err)
	}
}

func TestThreatIntel(t *testing.T) {
	d, err := newThreatIntel(ThreatIntelConfig{Lists: []IntelList{{Name: "test-c2", Path: filepath.Join("testdata", "threat_intel", "c2.txt")}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		sock   collector.Socket
		closed bool
		match  string
	}{
		{name: "exact address", sock: bldTCP("10.0.0.5:40000", "203.0.113.66:443", "ESTABLISHED", 5), match: "203.0.113.66/32"},
		{name: "inside a CIDR, seen only in Closed", sock: bldTCP("10.0.0.5:40001", "198.51.100.9:8080", "CLOSE", 5), closed: true, match: "198.51.100.0/28"},
		{name: "IPv6 prefix", sock: collector.Socket{Proto: collector.ProtoTCP, State: collector.StateSynSent, Local: bldAP("[2001:db8::5]:40000"), Remote: bldAP("[2001:db8:bad:1::1]:443"), PID: 5}, match: "2001:db8:bad::/48"},
		{name: "v4-mapped entry matches a v4 peer", sock: bldTCP("10.0.0.5:40002", "192.0.2.7:53", "ESTABLISHED", 5), match: "192.0.2.7/32"},
		{name: "address just outside the CIDR", sock: bldTCP("10.0.0.5:40003", "198.51.100.16:443", "ESTABLISHED", 5)},
		{name: "unlisted address", sock: bldTCP("10.0.0.5:40004", "93.184.216.34:443", "ESTABLISHED", 5)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
			bldProc(s, 5, 1, "implant")
			if tc.closed {
				s.Closed = append(s.Closed, tc.sock)
			} else {
				s.Sockets = append(s.Sockets, tc.sock)
			}
			got := d.Detect(s, bldEnv())
			if tc.match == "" {
				if len(got) != 0 {
					t.Fatalf("want silence, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d alerts: %+v", len(got), got)
			}
			a := got[0]
			if a.RuleID != RuleThreatIntel || a.Technique != "T1071" || a.Evidence["matched"] != tc.match ||
				!strings.Contains(a.Message, "test-c2") || a.Process == nil || a.Dest != tc.sock.Remote {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestThreatIntelConfigErrors(t *testing.T) {
	for _, c := range []ThreatIntelConfig{
		{Lists: []IntelList{{Name: "x", Path: filepath.Join("testdata", "threat_intel", "bad.txt")}}},
		{Lists: []IntelList{{Name: "x", Path: filepath.Join("testdata", "threat_intel", "missing.txt")}}},
		{Lists: []IntelList{{Name: "", Path: "a"}}},
	} {
		if _, err := newThreatIntel(c); err == nil {
			t.Errorf("config %+v: want error", c)
		}
	}
	// No lists: the detector is inert.
	d, err := newThreatIntel(ThreatIntelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Detect(bldSnap(bldT0, bldTCP("10.0.0.5:1", "203.0.113.66:443", "ESTABLISHED", 1)), bldEnv()); len(got) != 0 {
		t.Fatalf("inert detector alerted: %+v", got)
	}
	_ = netip.Addr{}
}

// TestMyDetectorConfigsDecodeFromYAML checks that the config sections users
// write (snake_case keys, Go durations) decode strictly into each detector's
// defaults and build.
func TestMyDetectorConfigsDecodeFromYAML(t *testing.T) {
	sections := map[string]string{
		RulePortScan:        "window: 2m\ninbound_ports: 10\ncounter_window: 30s\nclosed_port_probes: 500\nknown_scanners: [nmap]\n",
		RuleLateralMovement: "window: 15m\nmin_hosts: 4\nports: {2222: T1021.004}\n",
		RuleSuspiciousDNS:   "extra_resolvers: [10.0.0.1]\nrate_window: 2m\nmax_sockets_per_window: 100\n",
		RuleBeaconing:       "min_connections: 10\nmax_jitter: 0.1\nmax_interval: 2h\nexclude_destinations: [10.0.0.0/8]\nexclude_processes: [apt]\n",
		RuleProcessSpawn:    "max_depth: 4\nweb_servers: [nginx, myserver]\n",
		RuleARPSpoofing:     "max_ips_per_mac: 2\nflip_window: 30m\nallowed_macs: ['52:54:00:00:00:01']\n",
		RuleExfiltration:    "threshold_bytes: 1000000\nwindow: 5m\ninclude_ingress: true\n",
		RuleThreatIntel:     "lists:\n  - name: test-c2\n    path: " + filepath.Join("testdata", "threat_intel", "c2.txt") + "\n",
	}
	for name, src := range sections {
		f, ok := Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		cfg := f.DefaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		det, err := f.New(cfg, Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			t.Fatalf("%s: build: %v", name, err)
		}
		rules := det.Rules()
		if len(rules) == 0 || rules[0].Thresholds == nil && name != RuleThreatIntel {
			t.Errorf("%s: rules %+v", name, rules)
		}
		bad := yaml.NewDecoder(strings.NewReader("no_such_key: 1\n"))
		bad.KnownFields(true)
		if err := bad.Decode(f.DefaultConfig()); err == nil {
			t.Errorf("%s: unknown key accepted", name)
		}
	}
}
