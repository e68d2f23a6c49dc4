package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func dnsUDP(local, remote string, pid int32) collector.Socket {
	return collector.Socket{Proto: collector.ProtoUDP, Family: 4, State: collector.StateEstablished, Local: bldAP(local), Remote: bldAP(remote), PID: pid}
}

func dnsSnap(i int, socks ...collector.Socket) *collector.Snapshot {
	s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), socks...)
	s.Nameservers = []netip.Addr{netip.MustParseAddr("127.0.0.53")}
	return s
}

func TestSuspiciousDNS(t *testing.T) {
	cases := []struct {
		name   string
		steps  int
		snap   func(i int) *collector.Snapshot
		entity string
		rule   string
		dest   string
	}{
		{
			name: "dig to a server not in resolv.conf", steps: 1, entity: "unconfigured|dig|198.51.100.53", dest: "198.51.100.53:53",
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, dnsUDP("10.0.0.5:50000", "198.51.100.53:53", 40))
				bldProc(s, 40, 1, "dig")
				return s
			},
		},
		{
			name: "DNS over TCP to an unconfigured server", steps: 1, entity: "unconfigured|python3|203.0.113.5", dest: "203.0.113.5:53",
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, bldTCP("10.0.0.5:50001", "203.0.113.5:53", "ESTABLISHED", 41))
				bldProc(s, 41, 1, "python3")
				return s
			},
		},
		{
			name: "DNS over TLS", steps: 1, entity: "dot|kdig|9.9.9.9", dest: "9.9.9.9:853",
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, bldTCP("10.0.0.5:50002", "9.9.9.9:853", "ESTABLISHED", 42))
				bldProc(s, 42, 1, "kdig")
				return s
			},
		},
		{
			name: "DoH resolver by curl", steps: 1, entity: "doh|curl|1.1.1.1", dest: "1.1.1.1:443",
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, bldTCP("10.0.0.5:50003", "1.1.1.1:443", "ESTABLISHED", 43))
				bldProc(s, 43, 1, "curl")
				return s
			},
		},
		{
			name: "many short query sockets seen in Closed", steps: 30, entity: "rate|dnscat",
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i)
				bldProc(s, 44, 1, "dnscat")
				for q := 0; q < 15; q++ {
					c := dnsUDP(fmt.Sprintf("127.0.0.1:%d", 20000+i*15+q), "127.0.0.53:53", 44)
					c.Cookie, c.Destroyed = uint64(i*15+q+1), true
					s.Closed = append(s.Closed, c)
				}
				return s
			},
		},
		{
			name: "resolver configuration changes mid-run", steps: 3, entity: "nameservers:", rule: RuleDNSHijack,
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i)
				if i == 2 {
					s.Nameservers = []netip.Addr{netip.MustParseAddr("203.0.113.66")}
				}
				return s
			},
		},
		{
			name: "DNS via the configured stub resolver is fine, and resolved's upstream queries too", steps: 5,
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, dnsUDP(fmt.Sprintf("127.0.0.1:%d", 40000+i), "127.0.0.53:53", 50),
					dnsUDP(fmt.Sprintf("10.0.0.5:%d", 41000+i), "10.0.0.1:53", 51),
					dnsUDP(fmt.Sprintf("10.0.0.5:%d", 42000+i), "10.0.0.1:53", 0))
				bldProc(s, 50, 1, "curl")
				r := bldProc(s, 51, 1, "systemd-resolve")
				r.UID = 991
				s.Sockets[2].UID = 991 // same daemon, PID not visible to an unprivileged sensor
				return s
			},
		},
		{
			name: "browser using DoH and a server's inbound DNS stay silent", steps: 2,
			snap: func(i int) *collector.Snapshot {
				s := dnsSnap(i, bldTCP("10.0.0.5:50010", "8.8.8.8:443", "ESTABLISHED", 60),
					collector.Socket{Proto: collector.ProtoUDP, State: collector.StateUnconn, Local: bldAP("0.0.0.0:53"), Remote: bldAP("0.0.0.0:0"), PID: 61},
					bldListen("0.0.0.0:53", 61), bldTCP("10.0.0.5:53", "198.51.100.99:40000", "ESTABLISHED", 61))
				bldProc(s, 60, 1, "firefox")
				bldProc(s, 61, 1, "named")
				return s
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newDNS(*defaultDNSConfig())
			if err != nil {
				t.Fatal(err)
			}
			a := bldSteps(t, d, tc.steps, tc.snap, tc.entity)
			if a == nil {
				return
			}
			if a.Technique != "T1071.004" || a.RuleID != tc.rule || len(a.Evidence) == 0 || a.Recommendation == "" {
				t.Errorf("alert %+v", a)
			}
			if tc.dest != "" && (a.Dest != bldAP(tc.dest) || a.Process == nil) {
				t.Errorf("dest/process: %+v", a)
			}
		})
	}
}

func TestSuspiciousDNSBoundedMemory(t *testing.T) {
	c := defaultDNSConfig()
	c.MaxKeys = 1000
	d, err := newDNS(*c)
	if err != nil {
		t.Fatal(err)
	}
	env := bldEnv()
	for i := 0; i < 200; i++ {
		s := dnsSnap(i)
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Closed = append(s.Closed, collector.Socket{Proto: collector.ProtoUDP, Local: bldAP("10.0.0.5:40000"), Cookie: uint64(n + 1), PID: int32(n + 2),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 53}), 53)})
		}
		d.Detect(s, env)
		if d.rates.Len() > 1000 || d.seen.Len() > maxBeaconSeen {
			t.Fatalf("rates %d seen %d over cap", d.rates.Len(), d.seen.Len())
		}
	}
}
