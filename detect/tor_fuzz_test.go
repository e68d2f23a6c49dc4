package detect

import (
	"os"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

// Relay lists come from files and downloads: any bytes parse without a panic
// into usable unicast addresses.
func FuzzParseRelayList(f *testing.F) {
	for _, p := range []string{"testdata/tor/relays.txt", "testdata/tor/onionoo_details.json",
		"testdata/tor/cached-consensus", "testdata/tor/cached-microdesc-consensus"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("network-status-version 3\nr a b c 2026-01-01 00:00:00 ::1 0 0\na [fe80::1%eth0]:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rl, err := ParseRelayList(data)
		if err != nil {
			return
		}
		if len(rl.Addrs) > MaxRelays || len(rl.Bad) > maxBadLines || rl.BadCount < len(rl.Bad) {
			t.Fatalf("%d addrs, %d bad kept of %d", len(rl.Addrs), len(rl.Bad), rl.BadCount)
		}
		for _, a := range rl.Addrs {
			if !a.IsValid() || a.Is4In6() || a.Zone() != "" || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
				t.Fatalf("unusable relay address %v", a)
			}
		}
	})
}

// A torrc is whatever file a command line names, and a command line is
// whatever a user ran: neither may panic the classifier.
func FuzzTorSigns(f *testing.F) {
	f.Add([]byte(testTorrc), "tor\x00-f\x00/etc/tor/torrc\x00--Bridge\x00obfs4 192.0.2.1:443 x")
	f.Add([]byte("SocksPort\nBridge\nBridge [::1]:0\nClientTransportPlugin\n"), "x\x00--SocksPort\x00--Bridge")
	f.Fuzz(func(t *testing.T, torrc []byte, cmdline string) {
		_, bridges, _, socks := parseTorrc(torrc)
		for _, b := range bridges {
			if !b.IsValid() || b.Port() == 0 || b.Addr().Is4In6() {
				t.Fatalf("bad bridge %v", b)
			}
		}
		for _, p := range socks {
			if p == 0 {
				t.Fatal("SocksPort 0 kept")
			}
		}
		cls := newTorClassifier([]string{"tor"}, DefaultTransportNames, false)
		p := &collector.Process{PID: 1, Name: "x", Cmdline: strings.Split(cmdline, "\x00")}
		if s := cls.classify(p); s != nil && len(s.reasons) == 0 {
			t.Fatal("signs without a reason")
		}
	})
}
