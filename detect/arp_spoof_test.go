package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func arpN(ip, mac string) collector.Neighbor {
	return collector.Neighbor{IP: netip.MustParseAddr(ip), MAC: mac, Device: "eth0", Complete: mac != ""}
}

func arpSnap(i int, n ...collector.Neighbor) *collector.Snapshot {
	s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
	s.Gateways = []collector.Route{{Device: "eth0", Gateway: netip.MustParseAddr("10.0.0.1")}}
	s.ARP = n
	return s
}

const (
	macGW  = "52:54:00:00:00:01"
	macA   = "52:54:00:00:00:0a"
	macEvl = "52:54:00:66:66:66"
)

func TestARPSpoof(t *testing.T) {
	cases := []struct {
		name   string
		snaps  []*collector.Snapshot
		entity string
		sev    Severity
	}{
		{
			name: "attacker MAC claims the gateway and a host", entity: "mac:" + macEvl, sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA)),
				arpSnap(1, arpN("10.0.0.1", macEvl), arpN("10.0.0.10", macA), arpN("10.0.0.66", macEvl)),
			},
		},
		{
			name: "gateway MAC change", entity: "gw:10.0.0.1", sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW)),
				arpSnap(1, arpN("10.0.0.1", macEvl)),
			},
		},
		{
			name: "own IP claimed by another MAC", entity: "own:10.0.0.5", sev: SeverityCritical,
			snaps: []*collector.Snapshot{arpSnap(0, arpN("10.0.0.5", macEvl))},
		},
		{
			name: "flip-flop of a host's MAC", entity: "flip:10.0.0.10", sev: SeverityHigh,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.10", macA)),
				arpSnap(1, arpN("10.0.0.10", macEvl)),
				arpSnap(2, arpN("10.0.0.10", macA)),
			},
		},
		{
			name: "stable table, incomplete, broadcast and multicast entries stay silent",
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA), arpN("10.0.0.11", ""), arpN("10.0.0.12", ""),
					arpN("10.0.0.255", "ff:ff:ff:ff:ff:ff"), arpN("10.0.0.254", "ff:ff:ff:ff:ff:ff"),
					arpN("224.0.0.251", "01:00:5e:00:00:fb"), arpN("10.0.0.250", "01:00:5e:00:00:fc")),
				arpSnap(1, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA)),
			},
		},
		{
			name: "IPv6 addresses of one host share a MAC legitimately",
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.10", macA), arpN("fe80::5054:ff:fe00:a", macA), arpN("fd00::a", macA), arpN("fd00::b", macA)),
			},
		},
		{
			name: "a host moving to a new MAC once (NIC replaced) is no flip-flop",
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.10", macA)),
				arpSnap(1, arpN("10.0.0.10", macEvl)),
				arpSnap(2, arpN("10.0.0.10", macEvl)),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newARP(*defaultARPConfig())
			if err != nil {
				t.Fatal(err)
			}
			var all []Alert
			for _, s := range tc.snaps {
				all = append(all, d.Detect(s, bldEnv())...)
			}
			if tc.entity == "" {
				if len(all) != 0 {
					t.Fatalf("want silence, got %+v", all)
				}
				return
			}
			a := bldFind(all, tc.entity)
			if a == nil {
				t.Fatalf("no alert %q in %+v", tc.entity, all)
			}
			if a.Technique != "T1557.002" || a.ThreatType != ThreatARPSpoofing || a.Severity != tc.sev || len(a.Evidence) == 0 || !a.Source.IsValid() {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestARPBoundedMemory(t *testing.T) {
	c := defaultARPConfig()
	c.MaxEntries = 1000
	d, err := newARP(*c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		var ns []collector.Neighbor
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			ns = append(ns, collector.Neighbor{IP: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}),
				MAC: "52:54:00:" + string("0123456789abcdef"[n%16]) + "0:00:01", Complete: true})
		}
		d.Detect(arpSnap(i, ns...), bldEnv())
		if d.history.Len() > 1000 {
			t.Fatalf("history %d over cap", d.history.Len())
		}
	}
}

// nev is a neighbour event at ms milliseconds after snapshot i-1's time.
func nev(i, ms int, ip, mac string) collector.NeighborEvent {
	return collector.NeighborEvent{Time: bldT0.Add(time.Duration(i-1)*2*time.Second + time.Duration(ms)*time.Millisecond), Neighbor: arpN(ip, mac)}
}

func withEvents(s *collector.Snapshot, evs ...collector.NeighborEvent) *collector.Snapshot {
	s.NeighborEvents = evs
	return s
}

func withGW(s *collector.Snapshot, gws ...string) *collector.Snapshot {
	for _, g := range gws {
		s.Gateways = append(s.Gateways, collector.Route{Device: "eth0", Gateway: netip.MustParseAddr(g)})
	}
	return s
}

const (
	macB   = "52:54:00:00:00:0b"
	macGW2 = "52:54:00:00:00:02"
	// The gateway's IPv6 link-local address, EUI-64 of macGW.
	gw6 = "fe80::5054:ff:fe00:1"
)

func TestNeighbourSpoofing(t *testing.T) {
	failover := func(c *ARPConfig) {
		c.Failover = []FailoverGroup{{Addresses: []string{"10.0.0.1", "fd00::/120"}, MACs: []string{macGW, strings.ToUpper(macGW2)}}}
	}
	cases := []struct {
		name   string
		cfg    func(*ARPConfig)
		snaps  []*collector.Snapshot
		entity string // "" wants silence
		sev    Severity
	}{
		{
			name: "gateway poisoned and restored between two polls", entity: "gw:10.0.0.1", sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW)),
				withEvents(arpSnap(1, arpN("10.0.0.1", macGW)), nev(1, 300, "10.0.0.1", macEvl), nev(1, 500, "10.0.0.1", macGW)),
			},
		},
		{
			name: "a host poisoned and restored between two polls is a flip-flop", entity: "flip:10.0.0.10", sev: SeverityHigh,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.10", macA)),
				withEvents(arpSnap(1, arpN("10.0.0.10", macA)), nev(1, 300, "10.0.0.10", macEvl), nev(1, 500, "10.0.0.10", macA)),
			},
		},
		{
			name: "a MAC holding two IPv4 addresses for a moment", entity: "mac:" + macEvl, sev: SeverityHigh,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.10", macA), arpN("10.0.0.66", macEvl)),
				withEvents(arpSnap(1, arpN("10.0.0.10", macA), arpN("10.0.0.66", macEvl)),
					nev(1, 300, "10.0.0.10", macEvl), nev(1, 500, "10.0.0.10", macA)),
			},
		},
		{
			name: "events before the first poll: the first sighting is the baseline",
			snaps: []*collector.Snapshot{
				withEvents(arpSnap(1, arpN("10.0.0.1", macGW)), nev(1, 100, "10.0.0.1", macGW), nev(1, 200, "10.0.0.10", macA)),
				arpSnap(2, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA)),
			},
		},
		{
			name: "state-only events, deletions and incomplete entries stay silent",
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA)),
				withEvents(arpSnap(1, arpN("10.0.0.1", macGW)),
					nev(1, 100, "10.0.0.1", macGW), nev(1, 200, "10.0.0.10", ""),
					collector.NeighborEvent{Time: bldT0.Add(2300 * time.Millisecond), Deleted: true, Neighbor: arpN("10.0.0.10", macA)}),
				withEvents(arpSnap(2, arpN("10.0.0.1", macGW), arpN("10.0.0.10", macA)), nev(2, 100, "10.0.0.10", macA)),
			},
		},
		{
			name: "IPv6 default gateway's MAC changes (NDP spoofing of the router)", entity: "gw:" + gw6, sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				withGW(arpSnap(0, arpN(gw6, macGW)), gw6),
				withGW(withEvents(arpSnap(1, arpN(gw6, macGW)), nev(1, 300, gw6, macEvl), nev(1, 600, gw6, macGW)), gw6),
			},
		},
		{
			name: "a neighbour flagged as router is a gateway without a route", entity: "gw:fd00::1", sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				arpSnap(0, collector.Neighbor{IP: netip.MustParseAddr("fd00::1"), MAC: macGW, Complete: true, Router: true}),
				arpSnap(1, arpN("fd00::1", macEvl)), // a spoofed NA without the router flag clears it
			},
		},
		{
			name: "EUI-64 address answered by another MAC", entity: "eui64:fe80::5054:ff:fe00:a", sev: SeverityHigh,
			snaps: []*collector.Snapshot{arpSnap(0, arpN("fe80::5054:ff:fe00:a", macEvl))},
		},
		{
			name: "one MAC takes over IPv6 addresses of two hosts", entity: "ndp:" + macEvl, sev: SeverityHigh,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("fd00::a", macA), arpN("fd00::b", macB), arpN("fd00::66", macEvl)),
				arpSnap(1, arpN("fd00::a", macEvl), arpN("fd00::b", macEvl), arpN("fd00::66", macEvl)),
			},
		},
		{
			name: "a host's IPv6 addresses moving to a new NIC together stay silent",
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("fd00::a", macA), arpN("fd00::a:2", macA)),
				arpSnap(1, arpN("fd00::a", macB), arpN("fd00::a:2", macB)),
				arpSnap(2, arpN("fd00::a", macB), arpN("fd00::a:2", macB)),
			},
		},
		{
			name: "allow-listed VIP failover and back, gateway and IPv6, stays silent", cfg: failover,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW), arpN("10.0.0.2", macGW2), arpN("fd00::1", macGW)),
				withEvents(arpSnap(1, arpN("10.0.0.1", macGW2), arpN("10.0.0.2", macGW2), arpN("fd00::1", macGW2)),
					nev(1, 100, "10.0.0.1", macGW2), nev(1, 200, "fd00::1", macGW2)),
				arpSnap(2, arpN("10.0.0.1", macGW), arpN("10.0.0.2", macGW2), arpN("fd00::1", macGW)),
				arpSnap(3, arpN("10.0.0.1", macGW2), arpN("10.0.0.2", macGW2), arpN("fd00::1", macGW2)),
			},
		},
		{
			name: "a MAC outside the failover group taking the VIP still alerts", cfg: failover, entity: "gw:10.0.0.1", sev: SeverityCritical,
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("10.0.0.1", macGW), arpN("10.0.0.2", macGW2)),
				withEvents(arpSnap(1, arpN("10.0.0.1", macGW), arpN("10.0.0.2", macGW2)),
					nev(1, 100, "10.0.0.1", macEvl), nev(1, 200, "10.0.0.1", macGW)),
			},
		},
		{
			name: "an allowed MAC (proxy NDP router) answers for others", entity: "",
			cfg: func(c *ARPConfig) { c.AllowedMACs = []string{"52-54-00-66-66-66"} },
			snaps: []*collector.Snapshot{
				arpSnap(0, arpN("fe80::5054:ff:fe00:a", macEvl), arpN("10.0.0.20", macEvl), arpN("10.0.0.21", macEvl)),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultARPConfig()
			if tc.cfg != nil {
				tc.cfg(c)
			}
			d, err := newARP(*c)
			if err != nil {
				t.Fatal(err)
			}
			var all []Alert
			for _, s := range tc.snaps {
				all = append(all, d.Detect(s, bldEnv())...)
			}
			if tc.entity == "" {
				if len(all) != 0 {
					t.Fatalf("want silence, got %+v", all)
				}
				return
			}
			a := bldFind(all, tc.entity)
			if a == nil {
				t.Fatalf("no alert %q in %+v", tc.entity, all)
			}
			if a.Technique != "T1557.002" || a.Severity != tc.sev || len(a.Evidence) == 0 || !a.Source.IsValid() {
				t.Errorf("alert %+v", a)
			}
			seen := map[string]bool{}
			for _, x := range all {
				if seen[x.Entity+x.Message] {
					t.Errorf("alert raised twice in one run: %s", x.Message)
				}
				seen[x.Entity+x.Message] = true
			}
		})
	}
}

func TestARPConfigErrors(t *testing.T) {
	for name, mod := range map[string]func(*ARPConfig){
		"bad allowed MAC": func(c *ARPConfig) { c.AllowedMACs = []string{"52:54:00:00:00"} },
		"bad failover MAC": func(c *ARPConfig) {
			c.Failover = []FailoverGroup{{Addresses: []string{"10.0.0.1"}, MACs: []string{macA, "zz:54:00:00:00:01"}}}
		},
		"bad failover address": func(c *ARPConfig) {
			c.Failover = []FailoverGroup{{Addresses: []string{"10.0.0.300"}, MACs: []string{macA, macB}}}
		},
		"failover with one MAC": func(c *ARPConfig) {
			c.Failover = []FailoverGroup{{Addresses: []string{"10.0.0.1"}, MACs: []string{macA}}}
		},
		"failover without address": func(c *ARPConfig) { c.Failover = []FailoverGroup{{MACs: []string{macA, macB}}} },
	} {
		c := defaultARPConfig()
		mod(c)
		if _, err := newARP(*c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
