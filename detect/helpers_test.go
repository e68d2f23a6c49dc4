package detect

import (
	"net/netip"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// sock builds a socket; remote "" means a listener (0.0.0.0:0).
func sock(proto, state, local, remote string, pid int32) collector.Socket {
	s := collector.Socket{Proto: proto, State: state, Local: netip.MustParseAddrPort(local), PID: pid, Family: 4}
	if remote == "" {
		if s.Local.Addr().Is6() {
			remote = "[::]:0"
		} else {
			remote = "0.0.0.0:0"
		}
	}
	s.Remote = netip.MustParseAddrPort(remote)
	if s.Local.Addr().Is6() {
		s.Family = 6
	}
	return s
}

func testEnv() *Env { return &Env{Common: Common{HomeNet: DefaultHomeNet()}} }

func TestProcessContextIncludesParent(t *testing.T) {
	snap := snapAt(t0)
	snap.Processes[1] = &collector.Process{PID: 1, Name: "systemd"}
	snap.Processes[100] = &collector.Process{PID: 100, PPID: 1, Name: "sshd"}
	snap.Processes[200] = &collector.Process{PID: 200, PPID: 100, Name: "bash", Exe: "/usr/bin/bash", Cmdline: []string{"bash", "-i"}, UID: 1000, User: "alice"}
	env := testEnv()
	p := ProcessContext(snap, env, 200)
	want := &ProcessInfo{PID: 200, Name: "bash", Executable: "/usr/bin/bash", Args: []string{"bash", "-i"}, User: "alice", UID: 1000, PPID: 100, ParentName: "sshd"}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("ProcessContext = %+v, want %+v", p, want)
	}
	if ProcessContext(snap, env, 999) != nil || ProcessContext(snap, env, 0) != nil {
		t.Fatal("unknown pid must give nil")
	}
	if k := ProcessKey(snap, env, 999); k != "pid:999" {
		t.Errorf("ProcessKey(999) = %q", k)
	}
	if k := ProcessKey(snap, env, 0); k != "unknown" {
		t.Errorf("ProcessKey(0) = %q", k)
	}
	anc := Ancestors(snap, env, 200, 10)
	if len(anc) != 2 || anc[0].Name != "sshd" || anc[1].Name != "systemd" {
		t.Errorf("Ancestors = %v", anc)
	}
	// A cycle must terminate.
	snap.Processes[300] = &collector.Process{PID: 300, PPID: 301, Name: "x"}
	snap.Processes[301] = &collector.Process{PID: 301, PPID: 300, Name: "y"}
	if anc := Ancestors(snap, env, 300, 10); len(anc) != 1 {
		t.Errorf("cycle ancestors = %d entries, want 1", len(anc))
	}
}

func TestDirection(t *testing.T) {
	snap := snapAt(t0)
	snap.Sockets = []collector.Socket{
		sock("tcp", "LISTEN", "0.0.0.0:22", "", 1),
		sock("tcp", "ESTABLISHED", "10.0.0.5:22", "10.0.0.9:51000", 1),       // accepted
		sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.1:443", 2),  // outbound
		sock("tcp", "ESTABLISHED", "127.0.0.1:41001", "127.0.0.1:8080", 2),   // loopback
		sock("udp", "UNCONN", "0.0.0.0:5353", "", 3),                         // udp listener
		sock("tcp", "LISTEN", "127.0.0.1:9000", "", 4),                       // bound to loopback only
		sock("tcp", "ESTABLISHED", "10.0.0.5:9000", "198.51.100.2:50000", 5), // not accepted by 127.0.0.1:9000
	}
	want := []string{DirUnknown, DirIngress, DirEgress, DirInternal, DirUnknown, DirUnknown, DirEgress}
	env := testEnv()
	for i := range snap.Sockets {
		if got := Direction(snap, env, &snap.Sockets[i]); got != want[i] {
			t.Errorf("socket %d %v->%v: direction %q, want %q", i, snap.Sockets[i].Local, snap.Sockets[i].Remote, got, want[i])
		}
	}
}

func TestIsExternal(t *testing.T) {
	env := testEnv()
	for a, want := range map[string]bool{
		"198.51.100.7": true, "8.8.8.8": true, "2001:db8::1": true,
		"10.0.0.1": false, "127.0.0.1": false, "169.254.1.1": false, "224.0.0.251": false,
		"255.255.255.255": false, "0.0.0.0": false, "fe80::1": false, "::ffff:10.1.1.1": false,
	} {
		if got := env.IsExternal(netip.MustParseAddr(a)); got != want {
			t.Errorf("IsExternal(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestParsePorts(t *testing.T) {
	s, err := ParsePorts([]string{"1080", " 6666-6669 ", "31337", "1080"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sorted(); !reflect.DeepEqual(got, []uint16{1080, 6666, 6667, 6668, 6669, 31337}) {
		t.Fatalf("Sorted = %v", got)
	}
	for _, bad := range []string{"0", "65536", "abc", "10-5", "1-", ""} {
		if _, err := ParsePorts([]string{bad}); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}

func TestWindowCapsAndExpires(t *testing.T) {
	w := NewWindow[string, int](3, time.Minute)
	for i, k := range []string{"a", "b", "c"} {
		*w.Touch(k, t0.Add(time.Duration(i)*time.Second), nil) = i
	}
	w.Touch("a", t0.Add(5*time.Second), nil) // a is now the most recent
	w.Put("d", 9, t0.Add(6*time.Second))     // evicts b, the least recent
	if _, ok := w.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if w.Len() != 3 || w.Evicted() != 1 {
		t.Fatalf("len %d evicted %d", w.Len(), w.Evicted())
	}
	if v, _ := w.Get("a"); *v != 0 {
		t.Fatalf("a = %d, want 0 (kept across touches)", *v)
	}
	first, last, _ := w.Seen("a")
	if !first.Equal(t0) || !last.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("seen a = %v %v", first, last)
	}
	// c last touched at t0+2s; at t0+63s only c is older than a minute.
	if n := w.Expire(t0.Add(63 * time.Second)); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	var keys []string
	w.Range(func(k string, v *int) bool { keys = append(keys, k); return true })
	if !reflect.DeepEqual(keys, []string{"d", "a"}) {
		t.Fatalf("keys after expiry %v, want [d a]", keys)
	}
	counter := w.Touch("n", t0, func() int { return 41 })
	*counter++
	if v, _ := w.Get("n"); *v != 42 {
		t.Fatalf("in-place update lost: %d", *v)
	}
	w.Delete("n")
	if _, ok := w.Get("n"); ok {
		t.Fatal("delete failed")
	}
}

func TestDistinctWindow(t *testing.T) {
	d := NewDistinct[string](5*time.Minute, 3)
	d.Add("h1", t0)
	d.Add("h2", t0.Add(time.Minute))
	d.Add("h1", t0.Add(2*time.Minute)) // refresh h1
	d.Add("h3", t0.Add(3*time.Minute))
	if d.Len() != 3 || !d.Earliest().Equal(t0.Add(time.Minute)) {
		t.Fatalf("len %d earliest %v", d.Len(), d.Earliest())
	}
	d.Add("h4", t0.Add(4*time.Minute)) // full: drops h2 (oldest)
	items := d.Items()
	sort.Strings(items)
	if !reflect.DeepEqual(items, []string{"h1", "h3", "h4"}) {
		t.Fatalf("items %v", items)
	}
	d.Prune(t0.Add(7*time.Minute + 30*time.Second)) // drops h1 (2m) only
	items = d.Items()
	sort.Strings(items)
	if !reflect.DeepEqual(items, []string{"h3", "h4"}) {
		t.Fatalf("after prune %v", items)
	}
}

func TestRecommendationCoversAllThreatTypes(t *testing.T) {
	for _, tt := range []string{ThreatSuspiciousPort, ThreatPortScan, ThreatLateral, ThreatSuspiciousDNS, ThreatTor,
		ThreatBeaconing, ThreatProcessSpawn, ThreatARPSpoofing, ThreatExfil, ThreatIntelMatch, ThreatDNSHijack, ThreatReverse} {
		if r := Recommendation(tt); r == genericRecommendation || len(r) < 40 {
			t.Errorf("%s has no specific recommendation: %q", tt, r)
		}
	}
	if Recommendation("SOMETHING_NEW") != genericRecommendation {
		t.Error("unknown threat type must get the generic text")
	}
	// Every rule of every registered detector gets a non-generic text.
	for _, f := range Factories() {
		d, err := f.New(f.DefaultConfig(), Common{HomeNet: DefaultHomeNet()})
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, r := range d.Rules() {
			if Recommendation(r.ThreatType) == genericRecommendation {
				t.Errorf("rule %s threat type %s has no recommendation in recommend.go", r.ID, r.ThreatType)
			}
		}
	}
}
