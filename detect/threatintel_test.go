package detect

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{name: "IPv6 prefix", sock: collector.Socket{Proto: "tcp", State: "SYN_SENT", Local: bldAP("[2001:db8::5]:40000"), Remote: bldAP("[2001:db8:bad:1::1]:443"), PID: 5}, match: "2001:db8:bad::/48"},
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
			if a.RuleID != ThreatIntelName || a.Technique != "T1071" || a.Evidence["matched"] != tc.match ||
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
