package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

func exfSock(local, remote string, pid int32, cookie, acked, recv uint64) collector.Socket {
	s := bldTCP(local, remote, "ESTABLISHED", pid)
	s.Cookie, s.BytesAcked, s.BytesReceived = cookie, acked, recv
	return s
}

func TestExfil(t *testing.T) {
	const mb = 1_000_000
	cases := []struct {
		name   string
		steps  int
		snap   func(i int) *collector.Snapshot
		entity string
		minB   uint64
	}{
		{
			name: "steady upload over polls crosses 50 MB", steps: 8, entity: "rclone|198.51.100.20", minB: 50 * mb,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), exfSock("10.0.0.5:40000", "198.51.100.20:443", 50, 1, uint64(i)*8*mb, 1000))
				bldProc(s, 50, 1, "rclone")
				return s
			},
		},
		{
			name: "upload seen only by its destroy event (closed between polls)", steps: 2, entity: "curl|203.0.113.9", minB: 120 * mb,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 60, 1, "curl")
				if i == 1 {
					c := exfSock("10.0.0.5:40001", "203.0.113.9:80", 60, 9, 120*mb, 500)
					c.Destroyed, c.State, c.FirstSeen = true, collector.StateClose, s.Time
					s.Closed = append(s.Closed, c)
				}
				return s
			},
		},
		{
			name: "parallel downloads from one host are not exfil", steps: 10,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 70, 1, "aria2c")
				for c := 0; c < 8; c++ {
					s.Sockets = append(s.Sockets, exfSock(fmt.Sprintf("10.0.0.5:%d", 41000+c), "198.51.100.30:443", 70, uint64(100+c), uint64(i)*2000, uint64(i)*50*mb))
				}
				return s
			},
		},
		{
			name: "counters of one connection are not double counted across poll, TIME_WAIT row and close", steps: 4,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 80, 1, "scp")
				switch {
				case i == 1 || i == 2:
					s.Sockets = append(s.Sockets, exfSock("10.0.0.5:40002", "198.51.100.40:22", 80, 77, 40*mb, 0))
				case i == 3:
					tw := exfSock("10.0.0.5:40002", "198.51.100.40:22", 0, 77, 0, 0)
					tw.State = collector.StateTimeWait
					s.Sockets = append(s.Sockets, tw)
					c := exfSock("10.0.0.5:40002", "198.51.100.40:22", 80, 77, 45*mb, 0)
					c.State, c.Destroyed, c.FirstSeen = collector.StateClose, true, bldT0.Add(2*time.Second)
					s.Closed = append(s.Closed, c)
				}
				return s
			},
		},
		{
			name: "connection idle for polls that uploads and closes between two polls", steps: 4, entity: "sftp|198.51.100.45", minB: 60 * mb,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				bldProc(s, 85, 1, "sftp")
				c := exfSock("10.0.0.5:40005", "198.51.100.45:22", 85, 78, 0, 0)
				c.FirstSeen = bldT0.Add(2 * time.Second)
				switch i {
				case 1, 2:
					s.Sockets = append(s.Sockets, c)
				case 3:
					c.BytesAcked, c.State, c.Destroyed = 60*mb, collector.StateClose, true
					s.Closed = append(s.Closed, c)
				}
				return s
			},
		},
		{
			name: "connection open before the sensor started counts from the baseline only", steps: 3,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), exfSock("10.0.0.5:40003", "198.51.100.50:443", 90, 5, 900*mb+uint64(i)*mb, 0))
				bldProc(s, 90, 1, "backup")
				return s
			},
		},
		{
			name: "internal destination is not exfil", steps: 3,
			snap: func(i int) *collector.Snapshot {
				return bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), exfSock("10.0.0.5:40004", "10.0.0.8:445", 91, 6, uint64(i)*100*mb, 0))
			},
		},
		{
			name: "server answering an external client's download is not exfil", steps: 3,
			snap: func(i int) *collector.Snapshot {
				return bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), bldListen("0.0.0.0:443", 1),
					exfSock("10.0.0.5:443", "198.51.100.60:50000", 1, 7, uint64(i)*100*mb, 0))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newExfil(*defaultExfilConfig())
			if err != nil {
				t.Fatal(err)
			}
			a := bldSteps(t, d, tc.steps, tc.snap, tc.entity)
			if a == nil {
				return
			}
			if a.Technique != "T1048" || a.ThreatType != ThreatExfil || a.Process == nil || !a.Dest.IsValid() || a.Evidence["bytes_sent"].(uint64) < tc.minB {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestExfilBoundedMemory(t *testing.T) {
	c := defaultExfilConfig()
	c.MaxConnections, c.MaxKeys = 5000, 1000
	d, err := newExfil(*c)
	if err != nil {
		t.Fatal(err)
	}
	env := bldEnv()
	for i := 0; i < 60; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: bldAP("10.0.0.5:40000"), Cookie: uint64(n + 1),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(n >> 16), byte(n >> 8), byte(n)}), 443), PID: int32(n), BytesAcked: 1000})
			// Every user stages 60 MB on an internal host and uploads.
			for _, dst := range []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}), netip.AddrFrom4([4]byte{198, 51, 100, byte(n)})} {
				s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: bldAP("10.0.0.5:40001"), Cookie: uint64(1<<40 + n<<1 + int(dst.As4()[0]&1)),
					Remote: netip.AddrPortFrom(dst, 22), Inode: 7, UID: uint32(n), BytesAcked: 60_000_000})
			}
		}
		d.Detect(s, env)
		if d.last.Len() > 5000 || d.sums.Len() > 1000 || d.staged.Len() > 1000 || d.covered.Len() > 1000 {
			t.Fatalf("last %d sums %d staged %d covered %d over cap", d.last.Len(), d.sums.Len(), d.staged.Len(), d.covered.Len())
		}
	}
}

// Idle connections (no bytes acknowledged yet) cost no memory: most of a
// busy host's connections are idle at any poll.
func TestExfilRemembersOnlyConnectionsThatMovedBytes(t *testing.T) {
	d, err := newExfil(*defaultExfilConfig())
	if err != nil {
		t.Fatal(err)
	}
	env := bldEnv()
	for i := 0; i < 5; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Sockets = append(s.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: bldAP("10.0.0.5:40000"), Cookie: uint64(n + 1),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(n >> 16), byte(n >> 8), byte(n)}), 443), PID: int32(n)})
		}
		s.Sockets = append(s.Sockets, exfSock("10.0.0.5:40001", "198.51.100.9:443", 1, 1<<40, uint64(i+1)*1000, 0))
		d.Detect(s, env)
	}
	if n := d.last.Len(); n != 1 {
		t.Errorf("%d connections remembered, want 1 (the one that moved bytes)", n)
	}
}

// exfUp is an upload connection of pid (uid) to remote with acked bytes.
func exfUp(local, remote string, pid int32, uid uint32, cookie, acked uint64) collector.Socket {
	s := exfSock(local, remote, pid, cookie, acked, 100)
	s.UID, s.Inode = uid, cookie+1000
	return s
}

// exfProc adds a process with a process group and uid.
func exfProc(s *collector.Snapshot, pid, pgid int32, uid uint32, name string) {
	p := bldProc(s, pid, pgid, name)
	p.PGID, p.UID = pgid, uid
}

func TestExfilAcrossDestinations(t *testing.T) {
	const mb = 1_000_000
	cases := []struct {
		name   string
		steps  int
		snap   func(i int) *collector.Snapshot
		entity string // "" = silence
		scope  string
		minB   uint64
		ndst   int
	}{
		{
			name: "one process, rotating object-storage addresses, short connections", steps: 7,
			entity: "process:python3", scope: ScopeProcess, minB: 50 * mb, ndst: 5,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				exfProc(s, 50, 50, 1000, "python3")
				if i > 0 { // each poll one 10 MB connection to the next address, closed by the next poll
					c := exfUp(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("203.0.113.%d:443", 100+i), 50, 1000, uint64(i), 10*mb)
					c.State, c.Destroyed, c.FirstSeen = collector.StateClose, true, s.Time
					s.Closed = append(s.Closed, c)
				}
				return s
			},
		},
		{
			name: "one process group, a different tool per upload", steps: 6,
			entity: "group:pgid:60", scope: ScopeGroup, minB: 50 * mb, ndst: 5,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				tools := []string{"curl", "ncat", "socat", "python3", "rclone", "wget"}
				exfProc(s, int32(61+i), 60, 1000, tools[i])
				if i > 0 {
					s.Sockets = append(s.Sockets, exfUp(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("198.51.100.%d:443", 10+i), int32(61+i), 1000, uint64(i), 12*mb))
				}
				return s
			},
		},
		{
			name: "one user, several groups and tools", steps: 5,
			entity: "user:uid:1000", scope: ScopeUser, minB: 50 * mb, ndst: 4,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				tools := []string{"curl", "ncat", "socat", "python3", "rclone"}
				exfProc(s, int32(71+i), int32(71+i), 1000, tools[i])
				if i > 0 {
					s.Sockets = append(s.Sockets, exfUp(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("198.51.100.%d:443", 10+i), int32(71+i), 1000, uint64(i), 15*mb))
				}
				return s
			},
		},
		{
			name: "another user's unowned sockets add up by uid", steps: 5,
			entity: "user:uid:33", scope: ScopeUser, minB: 50 * mb, ndst: 4,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				if i > 0 {
					s.Sockets = append(s.Sockets, exfUp(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("198.51.100.%d:443", 10+i), 0, 33, uint64(i), 15*mb))
				}
				return s
			},
		},
		{
			name: "uploads of different users do not add up", steps: 5,
			snap: func(i int) *collector.Snapshot {
				s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
				if i > 0 {
					s.Sockets = append(s.Sockets, exfUp(fmt.Sprintf("10.0.0.5:%d", 42000+i), fmt.Sprintf("198.51.100.%d:443", 10+i), 0, uint32(1000+i), uint64(i), 15*mb))
				}
				return s
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newExfil(*defaultExfilConfig())
			if err != nil {
				t.Fatal(err)
			}
			env := bldEnv()
			var all []Alert
			for i := 0; i < tc.steps; i++ {
				all = append(all, d.Detect(tc.snap(i), env)...)
			}
			if tc.entity == "" {
				if len(all) != 0 {
					t.Fatalf("want silence, got %+v", all)
				}
				return
			}
			// The detector repeats an alert each poll while over the
			// threshold (the engine's cooldown keeps one): one entity only.
			for _, a := range all {
				if a.Entity != tc.entity {
					t.Fatalf("want alerts for %q only, got %+v", tc.entity, all)
				}
			}
			if len(all) == 0 {
				t.Fatalf("no alert %q", tc.entity)
			}
			a := all[0]
			if a.Technique != "T1048" || a.Evidence["scope"] != tc.scope || a.Evidence["bytes_sent"].(uint64) < tc.minB ||
				a.Evidence["distinct_destinations"] != tc.ndst || !a.Dest.IsValid() {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

// One upload to one destination crosses every scope at once: it raises one
// alert, the (process, destination) one.
func TestExfilOneUploadOneAlert(t *testing.T) {
	d, err := newExfil(*defaultExfilConfig())
	if err != nil {
		t.Fatal(err)
	}
	env := bldEnv()
	var all []Alert
	for i := 0; i < 30; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i)*2*time.Second), exfUp("10.0.0.5:40000", "198.51.100.20:443", 50, 0, 1, uint64(i)*20_000_000))
		exfProc(s, 50, 50, 0, "rclone")
		all = append(all, d.Detect(s, env)...)
	}
	if len(all) == 0 || all[0].Entity != "rclone|198.51.100.20" {
		t.Fatalf("want the destination alert first, got %+v", all)
	}
	for _, a := range all {
		if a.Entity != "rclone|198.51.100.20" {
			t.Errorf("a wider scope alerted for the same upload: %s", a.Message)
		}
	}
}

// staging is uid's transfer to an internal host (over two polls), then
// upload MB to external destinations by uploader's uid.
func stagingSnaps(stageMB, uploadMB uint64, uploaderUID uint32) func(i int) *collector.Snapshot {
	const mb = 1_000_000
	return func(i int) *collector.Snapshot {
		s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
		exfProc(s, 80, 80, 0, "rsync")
		exfProc(s, 81, 81, uploaderUID, "curl")
		switch {
		case i == 1 || i == 2:
			s.Sockets = append(s.Sockets, exfUp("10.0.0.5:40000", "10.0.0.8:22", 80, 0, 1, uint64(i)*stageMB/2*mb))
		case i >= 4 && uploadMB > 0:
			s.Sockets = append(s.Sockets, exfUp("10.0.0.5:40001", "203.0.113.77:443", 81, uploaderUID, 2, uint64(i-3)*uploadMB/4*mb))
		}
		return s
	}
}

func TestStagedExfil(t *testing.T) {
	cases := []struct {
		name          string
		stage, upload uint64
		uid           uint32
		staged        bool
		plainAllowed  bool
	}{
		{name: "staging host, then a 20 MB external upload by the same user", stage: 100, upload: 20, uid: 0, staged: true},
		{name: "staging host, then a 200 MB upload: one staged alert, no plain one", stage: 100, upload: 200, uid: 0, staged: true},
		{name: "nightly 100 MB backup to an internal host alone is silent", stage: 100, upload: 0, uid: 0},
		{name: "backup, then a small external request is silent", stage: 100, upload: 4, uid: 0},
		{name: "backup by root, upload by another user is not staged", stage: 100, upload: 20, uid: 1000},
		{name: "a small internal transfer is no staging", stage: 20, upload: 20, uid: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newExfil(*defaultExfilConfig())
			if err != nil {
				t.Fatal(err)
			}
			env := bldEnv()
			var all []Alert
			snaps := stagingSnaps(tc.stage, tc.upload, tc.uid)
			for i := 0; i < 9; i++ {
				all = append(all, d.Detect(snaps(i), env)...)
			}
			if !tc.staged {
				if len(all) != 0 {
					t.Fatalf("want silence, got %+v", all)
				}
				return
			}
			if len(all) != 1 || all[0].RuleID != RuleStagedExfiltration {
				t.Fatalf("want one staged_exfiltration alert, got %+v", all)
			}
			a := all[0]
			ev := a.Evidence
			if ev["staging_host"] != "10.0.0.8" || ev["staging_process"] != "rsync" || ev["upload_process"] != "curl" ||
				fmt.Sprint(ev["upload_destinations"]) != "[203.0.113.77]" || a.Dest.Addr().String() != "203.0.113.77" ||
				a.Technique != "T1048" || a.Process == nil || a.Process.Name != "curl" {
				t.Errorf("alert %+v", a)
			}
		})
	}
}

func TestExfilConfigRejectsUnknownScope(t *testing.T) {
	c := defaultExfilConfig()
	c.Scopes = []string{"process", "host"}
	if _, err := newExfil(*c); err == nil {
		t.Fatal("want error for an unknown scope")
	}
}

// A connection listed unchanged finds its counters through the handle kept
// from the previous poll (exfil.prevEnts) instead of a look-up; the counts
// and alerts must be those of the look-ups, also when the handle went stale
// because the size cap evicted its entry in between.
func TestExfilHandlesCountAsLookUps(t *testing.T) {
	cfg := *defaultExfilConfig()
	cfg.ThresholdBytes, cfg.StagingBytes, cfg.StagedUploadBytes = 300_000, 1_000_000, 50_000
	cfg.MaxConnections = 1500 // fewer than the connections that move bytes: evictions every poll
	snaps := steadySnapshots(2000, 40, true)
	run := func(handles bool) (alerts []string, carried int, evicted uint64) {
		d, err := newExfil(cfg)
		if err != nil {
			t.Fatal(err)
		}
		env := testEnv()
		env.quiet.off = !handles
		for _, s := range snaps {
			alerts = append(alerts, alertKeys(d.Detect(s, env))...)
			for i, e := range d.prevEnts {
				if e != nil && i < len(s.SameAs) && s.SameAs[i] >= 0 {
					carried++
				}
			}
		}
		return alerts, carried, d.last.Evicted()
	}
	got, carried, evicted := run(true)
	want, none, _ := run(false)
	if len(want) == 0 || evicted == 0 {
		t.Fatalf("the series raised %d alerts and evicted %d entries: it tests nothing", len(want), evicted)
	}
	if carried == 0 || none != 0 {
		t.Fatalf("handles kept for unchanged sockets: %d with handles, %d without", carried, none)
	}
	if !slices.Equal(got, want) {
		t.Errorf("with handles:\n%s\nwith look-ups:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
