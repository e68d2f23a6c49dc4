package detect

import (
	"net/netip"
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
