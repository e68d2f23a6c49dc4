package detect

import (
	"fmt"
	"net/netip"
	"strings"
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
					s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateSynSent, Local: bldAP(fmt.Sprintf("[fd00::5]:%d", 40000+h)), Remote: bldAP(fmt.Sprintf("[fd00::%d]:3389", h+10)), PID: 9})
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
			s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: bldAP("10.0.0.5:40000"),
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

// lateralFanOut is one poll with proc (pid 40, uid 1000) connected to each
// remote; owned false leaves the sockets without a readable owner.
func lateralFanOut(owned bool, name string, cmd []string, remotes ...string) *collector.Snapshot {
	s := bldSnap(bldT0)
	for i, r := range remotes {
		c := bldTCP(fmt.Sprintf("10.0.0.5:%d", 41000+i), r, "ESTABLISHED", 40)
		c.UID, c.Inode = 1000, uint64(7000+i)
		if strings.HasPrefix(r, "[") {
			c.Local, c.Family = bldAP(fmt.Sprintf("[fd00::5]:%d", 41000+i)), 6
		}
		if !owned {
			c.PID = 0
		}
		s.Sockets = append(s.Sockets, c)
	}
	p := bldProc(s, 40, 30, name, cmd...)
	p.UID = 1000
	bldProc(s, 30, 1, "bash")
	return s
}

func TestLateralClientsOnAnyPort(t *testing.T) {
	cases := []struct {
		name   string
		snap   *collector.Snapshot
		entity string // "" = silence
		tech   string
		client string
	}{
		{name: "ssh to three LAN hosts on 2222", entity: "ssh|T1021.004", tech: "T1021.004", client: "ssh",
			snap: lateralFanOut(true, "ssh", []string{"ssh", "-p", "2222", "10.0.0.21"}, "10.0.0.21:2222", "10.0.0.22:2222", "10.0.0.23:2222")},
		{name: "ssh to Tailscale (100.64/10) and ULA hosts on 2200", entity: "ssh|T1021.004", tech: "T1021.004", client: "ssh",
			snap: lateralFanOut(true, "ssh", []string{"ssh"}, "100.100.1.1:2200", "100.100.1.2:2200", "[fd7a:115c:a1e0::3]:2200")},
		{name: "scp to three LAN hosts on 8022", entity: "scp|T1021.004", tech: "T1021.004", client: "scp",
			snap: lateralFanOut(true, "scp", []string{"scp", "-P", "8022", "f", "10.0.0.21:/tmp"}, "10.0.0.21:8022", "10.0.0.22:8022", "10.0.0.23:8022")},
		{name: "one ssh host on 2222 is administration", snap: lateralFanOut(true, "ssh", []string{"ssh", "10.0.0.21"}, "10.0.0.21:2222")},
		{name: "a web client fanning out on 8080 is not lateral movement",
			snap: lateralFanOut(true, "curl", []string{"curl"}, "10.0.0.21:8080", "10.0.0.22:8080", "10.0.0.23:8080")},
		{name: "ssh to external hosts on 2222",
			snap: lateralFanOut(true, "ssh", []string{"ssh"}, "198.51.100.1:2222", "198.51.100.2:2222", "100.128.0.1:2222")},
		{name: "python3 running Impacket psexec.py: one host is enough", entity: "psexec.py|T1021.002", tech: "T1021.002", client: "psexec.py",
			snap: lateralFanOut(true, "python3", []string{"/usr/bin/python3", "/opt/impacket/examples/psexec.py", "corp/admin:pw@10.0.0.30"}, "10.0.0.30:445")},
		{name: "impacket-wmiexec with its comm cut to 15 bytes", entity: "impacket-wmiexec|T1021.003", tech: "T1021.003", client: "impacket-wmiexec",
			snap: lateralFanOut(true, "impacket-wmiexe", nil, "10.0.0.30:135")},
		{name: "evil-winrm (ruby) on a non-standard port", entity: "evil-winrm|T1021.006", tech: "T1021.006", client: "evil-winrm",
			snap: lateralFanOut(true, "ruby", []string{"ruby", "/usr/bin/evil-winrm", "-i", "10.0.0.30", "-P", "15985"}, "10.0.0.30:15985")},
		{name: "nxc ssh sweep on 2222", entity: "nxc|T1021.004", tech: "T1021.004", client: "nxc",
			snap: lateralFanOut(true, "nxc", []string{"/usr/bin/nxc", "ssh", "10.0.0.0/24", "--port", "2222"}, "10.0.0.31:2222")},
		{name: "crackmapexec without a known protocol takes the port's technique", entity: "crackmapexec|T1021.002", tech: "T1021.002", client: "crackmapexec",
			snap: lateralFanOut(true, "crackmapexec", []string{"crackmapexec"}, "10.0.0.31:445")},
		{name: "unowned sockets tied to the ssh of their user by the command line", entity: "ssh|T1021.004", tech: "T1021.004", client: "ssh",
			snap: func() *collector.Snapshot {
				s := lateralFanOut(false, "ssh", []string{"ssh", "-p", "2222", "root@10.0.0.21"}, "10.0.0.21:2222", "10.0.0.22:2222", "10.0.0.23:2222")
				for i, h := range []string{"10.0.0.22", "10.0.0.23"} {
					p := bldProc(s, int32(41+i), 30, "ssh", "ssh", "-p2222", "admin@"+h)
					p.UID = 1000
				}
				return s
			}()},
		{name: "a socket first seen closed (no uid) is not tied to root's ssh",
			snap: func() *collector.Snapshot {
				s := lateralFanOut(false, "ssh", []string{"ssh", "10.0.0.21", "10.0.0.22", "10.0.0.23"}, "10.0.0.21:2222", "10.0.0.22:2222", "10.0.0.23:2222")
				for i := range s.Sockets {
					s.Sockets[i].State, s.Sockets[i].UID, s.Sockets[i].Inode = collector.StateTimeWait, 0, 0
				}
				s.Processes[40].UID = 0
				return s
			}()},
		{name: "unowned socket of another user is not tied to this user's ssh",
			snap: func() *collector.Snapshot {
				s := lateralFanOut(false, "ssh", []string{"ssh", "10.0.0.21"}, "10.0.0.21:2222", "10.0.0.22:2222", "10.0.0.23:2222")
				s.Processes[40].UID = 0
				return s
			}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newLateral(*defaultLateralConfig())
			if err != nil {
				t.Fatal(err)
			}
			a := bldSteps(t, d, 1, func(int) *collector.Snapshot { return tc.snap }, tc.entity)
			if a == nil {
				return
			}
			if a.Technique != tc.tech || a.Evidence["client"] != tc.client || a.Process == nil {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestLateralInferenceIsUnambiguous(t *testing.T) {
	// Two different clients of the socket's user name the same host: the
	// socket is not tied to either, and with no remote-service port it
	// does not count.
	s := lateralFanOut(false, "ssh", []string{"ssh", "10.0.0.21"}, "10.0.0.21:2222")
	p := bldProc(s, 41, 30, "python3", "python3", "wmiexec.py", "admin@10.0.0.21")
	p.UID = 1000
	d, err := newLateral(*defaultLateralConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.Sockets[0].Inode = 9 // the socket's uid is known
	if pid := d.inferOwner(d.clientIndex(s), &s.Sockets[0]); pid != 0 {
		t.Fatalf("inferred pid %d from ambiguous command lines", pid)
	}
	delete(s.Processes, 41)
	if pid := d.inferOwner(d.clientIndex(s), &s.Sockets[0]); pid != 40 {
		t.Fatalf("inferred pid %d, want 40", pid)
	}
}

func TestNamesAddr(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.21")
	for _, arg := range []string{"10.0.0.21", "root@10.0.0.21", "10.0.0.21:2222", "ssh://u@10.0.0.21:2222/x",
		"corp/admin:p@ss@10.0.0.21", "/v:10.0.0.21:3389", "u@10.0.0.21:/tmp/f"} {
		if !namesAddr([]string{arg}, a) {
			t.Errorf("%q does not name %s", arg, a)
		}
	}
	for _, arg := range []string{"10.0.0.210", "10.0.0.2", "-p2222", "host21", "10.0.0.0/24"} {
		if namesAddr([]string{arg}, a) {
			t.Errorf("%q names %s", arg, a)
		}
	}
	if !namesAddr([]string{"[fd00::21]:22"}, netip.MustParseAddr("fd00::21")) || !namesAddr([]string{"u@fd00::21"}, netip.MustParseAddr("fd00::21")) {
		t.Error("IPv6 forms not recognised")
	}
}

func TestLateralConfigRejectsBadClients(t *testing.T) {
	c := defaultLateralConfig()
	c.Clients["mytool"] = "T9999"
	if _, err := newLateral(*c); err == nil {
		t.Fatal("want error for unknown client technique")
	}
	c = defaultLateralConfig()
	c.AttackTools = append(c.AttackTools, "notaclient")
	if _, err := newLateral(*c); err == nil {
		t.Fatal("want error for an attack tool that is not a client")
	}
}
