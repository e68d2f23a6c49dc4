package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func TestLateral(t *testing.T) {
	cases := []struct {
		name   string
		steps  int
		snap   func(i int) *collector.Snapshot
		entity string
		tech   string
	}{
		{
			name: "ssh fan-out to three LAN hosts across polls", steps: 3, entity: "ssh|T1021.004", tech: "T1021.004",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*30*time.Second),
					bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+i), fmt.Sprintf("10.0.0.%d:22", 20+i), "ESTABLISHED", int32(100+i)))
				bldProc(s, int32(100+i), 50, "ssh", "ssh", fmt.Sprintf("10.0.0.%d", 20+i))
				return s
			},
		},
		{
			name: "smb to three hosts via short connections in Closed", steps: 1, entity: "smbclient|T1021.002", tech: "T1021.002",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0)
				for h := 0; h < 3; h++ {
					s.Closed = append(s.Closed, bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+h), fmt.Sprintf("192.168.1.%d:445", h+1), "CLOSE", 7))
				}
				bldProc(s, 7, 1, "smbclient")
				return s
			},
		},
		{
			name: "rdp to ULA hosts", steps: 1, entity: "xfreerdp|T1021.001", tech: "T1021.001",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0)
				for h := 0; h < 4; h++ {
					s.Sockets = append(s.Sockets, collector.Socket{Proto: "tcp", State: "SYN_SENT", Local: bldAP(fmt.Sprintf("[fd00::5]:%d", 40000+h)), Remote: bldAP(fmt.Sprintf("[fd00::%d]:3389", h+10)), PID: 9})
				}
				bldProc(s, 9, 1, "xfreerdp")
				return s
			},
		},
		{
			name: "telnet maps to the parent technique", steps: 1, entity: "telnet|T1021", tech: "T1021",
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0)
				for h := 0; h < 3; h++ {
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+h), fmt.Sprintf("10.9.0.%d:23", h+1), "ESTABLISHED", 11))
				}
				bldProc(s, 11, 1, "telnet")
				return s
			},
		},
		{
			name: "a single ssh to one LAN host is not lateral movement", steps: 20,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), bldTCP("10.0.0.5:40000", "10.0.0.20:22", "ESTABLISHED", 100))
				bldProc(s, 100, 50, "ssh")
				return s
			},
		},
		{
			name: "ssh to external hosts is not lateral movement", steps: 1,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0)
				for h := 0; h < 5; h++ {
					s.Sockets = append(s.Sockets, bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+h), fmt.Sprintf("198.51.100.%d:22", h+1), "ESTABLISHED", 100))
				}
				return s
			},
		},
		{
			name: "inbound ssh from three LAN hosts is not our lateral movement", steps: 1,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0, bldListen("0.0.0.0:22", 1))
				for h := 0; h < 3; h++ {
					s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:22", fmt.Sprintf("10.0.0.%d:5000%d", h+30, h), "ESTABLISHED", 1))
				}
				return s
			},
		},
		{
			name: "hosts spread beyond the window do not add up", steps: 3,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*11*time.Minute),
					bldTCP(fmt.Sprintf("10.0.0.5:%d", 40000+i), fmt.Sprintf("10.0.0.%d:22", 20+i), "ESTABLISHED", int32(100+i)))
				bldProc(s, int32(100+i), 50, "ssh")
				return s
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newLateral(*defaultLateralConfig())
			if err != nil {
				t.Fatal(err)
			}
			a := bldSteps(t, d, tc.steps, tc.snap, tc.entity)
			if a == nil {
				return
			}
			if a.Technique != tc.tech || a.ThreatType != ThreatLateral || a.Process == nil || !a.Dest.IsValid() || a.Evidence["distinct_hosts"].(int) < 3 {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestLateralBoundedMemory(t *testing.T) {
	c := defaultLateralConfig()
	c.MaxProcesses = 500
	d, err := newLateral(*c)
	if err != nil {
		t.Fatal(err)
	}
	env := bldEnv()
	for i := 0; i < 200; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * time.Second))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Sockets = append(s.Sockets, collector.Socket{Proto: "tcp", State: "ESTABLISHED", Local: bldAP("10.0.0.5:40000"),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 22), PID: int32(n + 2)})
		}
		d.Detect(s, env)
		if d.keys.Len() > 500 {
			t.Fatalf("tracker %d > cap", d.keys.Len())
		}
	}
}

func TestLateralConfigRejectsUnknownTechnique(t *testing.T) {
	c := defaultLateralConfig()
	c.Ports[2222] = "T9999"
	if _, err := newLateral(*c); err == nil {
		t.Fatal("want error for unknown technique")
	}
}

func TestDefaultHomeNetCoversCGNATAndULA(t *testing.T) {
	env := bldEnv()
	for a, internal := range map[string]bool{
		"10.1.2.3": true, "172.31.0.1": true, "192.168.1.1": true,
		"100.64.0.1": true, "100.101.102.103": true, "100.127.255.254": true, // CGNAT / Tailscale
		"fd7a:115c:a1e0::1": true, "fc00::1": true, // ULA (Tailscale's IPv6 too)
		"100.63.255.255": false, "100.128.0.1": false, "198.51.100.7": false, "2001:db8::1": false,
	} {
		if got := env.IsInternal(netip.MustParseAddr(a)); got != internal {
			t.Errorf("IsInternal(%s) = %v, want %v", a, got, internal)
		}
	}
}
