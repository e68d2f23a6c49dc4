package detect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// The sensor model: polls every 2 s. A connection that starts at t is either
// short-lived and seen only through a destroy event (FirstSeen stamped at its
// end, between two polls: exact to its duration), or first listed by the
// next poll (FirstSeen = poll time: known only to poll resolution).

const beaconPoll = 2 * time.Second

type beaconConn struct {
	start time.Time
	exact bool
	bytes uint64
}

func beaconRNG(a, b uint64) *rand.Rand {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i], s[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return rand.New(rand.NewChaCha8(s))
}

// beaconRun feeds conns (sorted) through the sensor model and returns, for
// each connection index (1-based), whether an alert had been raised by the
// snapshot that first showed it.
func beaconRun(t *testing.T, d *beacon, conns []beaconConn, pid int32, dst string) (alertAt int, alerts []Alert) {
	t.Helper()
	env := bldEnv()
	phase := time.Duration(0)
	if len(conns) > 0 {
		phase = time.Duration(conns[0].start.UnixNano() % int64(beaconPoll))
	}
	pollAfter := func(x time.Time) time.Time { // first poll time >= x
		base := x.Add(-phase).Truncate(beaconPoll).Add(phase)
		if base.Before(x) {
			base = base.Add(beaconPoll)
		}
		return base
	}
	// Baseline snapshot before anything happens.
	d.Detect(bldSnap(conns[0].start.Add(-10*time.Second)), env)
	seen := 0
	for i := 0; i < len(conns); {
		p := pollAfter(conns[i].start.Add(100 * time.Millisecond))
		prev := bldSnap(p.Add(-beaconPoll))
		d.Detect(prev, env)
		s := bldSnap(p)
		bldProc(s, pid, 1, "implant")
		for ; i < len(conns) && !conns[i].start.Add(100*time.Millisecond).After(p); i++ {
			c := conns[i]
			sock := collector.Socket{Proto: "tcp", Family: 4, State: "ESTABLISHED", Local: bldAP(fmt.Sprintf("10.0.0.5:%d", 30000+i%30000)),
				Remote: bldAP(dst), PID: pid, Cookie: uint64(i + 1), BytesAcked: c.bytes}
			if c.exact {
				sock.State, sock.Destroyed = "CLOSE", true
				sock.FirstSeen = c.start.Add(100 * time.Millisecond)
				s.Closed = append(s.Closed, sock)
			} else {
				sock.FirstSeen = p
				s.Opened = append(s.Opened, sock)
				s.Sockets = append(s.Sockets, sock)
			}
			seen++
		}
		got := d.Detect(s, env)
		if len(got) > 0 && alertAt == 0 {
			alertAt = seen
		}
		alerts = append(alerts, got...)
	}
	return alertAt, alerts
}

func newTestBeacon(t *testing.T) *beacon {
	t.Helper()
	d, err := newBeacon(*defaultBeaconConfig())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBeaconPeriodicFlaggedByEighthConnection(t *testing.T) {
	intervals := []time.Duration{time.Second, 3 * time.Second, 10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}
	jitters := []float64{0, 0.1, 0.2}
	const seeds = 40
	for _, iv := range intervals {
		for _, j := range jitters {
			t.Run(fmt.Sprintf("%s_jitter%.0f%%", iv, j*100), func(t *testing.T) {
				for seed := uint64(0); seed < seeds; seed++ {
					rng := beaconRNG(seed, uint64(iv)+uint64(j*100))
					exact := iv < beaconPoll // sub-poll beacons are only seen by destroy events
					start := bldT0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
					var conns []beaconConn
					at := start
					for k := 0; k < 12; k++ {
						conns = append(conns, beaconConn{start: at, exact: exact})
						at = at.Add(time.Duration(float64(iv) * (1 + j*(2*rng.Float64()-1))))
					}
					d := newTestBeacon(t)
					alertAt, alerts := beaconRun(t, d, conns, 4242, "203.0.113.7:443")
					if alertAt == 0 || alertAt > 8+1 { // exact 1 s beacons arrive two per poll
						t.Fatalf("seed %d: flagged at connection %d, want by the 8th", seed, alertAt)
					}
					if alertAt < 8 {
						t.Fatalf("seed %d: flagged at connection %d, before min_connections", seed, alertAt)
					}
					a := alerts[0]
					if a.Technique != "T1071" || a.ThreatType != ThreatBeaconing || a.Dest != bldAP("203.0.113.7:443") ||
						a.Process == nil || a.Process.PID != 4242 || a.Direction != DirEgress {
						t.Fatalf("alert fields %+v", a)
					}
					p := a.Evidence["period_seconds"].(float64)
					if p < iv.Seconds()*0.6-2 || p > iv.Seconds()*1.4+2 {
						t.Fatalf("seed %d: period %.2fs for a %s beacon", seed, p, iv)
					}
				}
			})
		}
	}
}

func TestBeaconRandomIntervalsNotFlagged(t *testing.T) {
	// Exponential inter-arrival times with these means: sub-poll means only
	// through destroy events (exact), the rest at poll resolution.
	means := []time.Duration{time.Second, 3 * time.Second, 30 * time.Second, time.Minute, 10 * time.Minute, time.Hour}
	for _, m := range means {
		t.Run(m.String(), func(t *testing.T) {
			exact := m < 5*time.Second
			wantNoRandomFP(t, 1000+uint64(m), m, func(int) bool { return exact })
		})
	}
	// Mostly exact times with some poll-stamped ones (seen open at a poll):
	// the wide intervals must not let random traffic fit a period.
	for _, m := range []time.Duration{time.Second, 3 * time.Second, 10 * time.Second} {
		t.Run("mixed_"+m.String(), func(t *testing.T) {
			wantNoRandomFP(t, 5000+uint64(m), m, func(k int) bool { return k%5 != 0 })
		})
	}
}

// wantNoRandomFP runs 200 seeds of 40 connections at exponential gaps of
// mean m (+200 ms) and fails if any is flagged; exact(k) says whether
// connection k has an exact time or a poll-stamped one.
func wantNoRandomFP(t *testing.T, salt uint64, m time.Duration, exact func(k int) bool) {
	t.Helper()
	const seeds = 200
	fp := 0
	for seed := uint64(0); seed < seeds; seed++ {
		rng := beaconRNG(seed, salt)
		at := bldT0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		var conns []beaconConn
		for k := 0; k < 40; k++ {
			conns = append(conns, beaconConn{start: at, exact: exact(k)})
			at = at.Add(time.Duration(rng.ExpFloat64()*float64(m)) + time.Millisecond*200)
		}
		d := newTestBeacon(t)
		if alertAt, _ := beaconRun(t, d, conns, 77, "198.51.100.9:443"); alertAt != 0 {
			fp++
			t.Logf("seed %d flagged at connection %d", seed, alertAt)
		}
	}
	if fp != 0 {
		t.Fatalf("false positives: %d/%d", fp, seeds)
	}
}

func TestBeaconExclusionsAndBoundedMemory(t *testing.T) {
	c := defaultBeaconConfig()
	c.MaxKeys = 1000
	c.ExcludeDestinations = []string{"203.0.113.0/24"}
	d, err := newBeacon(*c)
	if err != nil {
		t.Fatal(err)
	}
	// An excluded destination never alerts.
	var conns []beaconConn
	for k := 0; k < 12; k++ {
		conns = append(conns, beaconConn{start: bldT0.Add(time.Duration(k) * time.Minute)})
	}
	if at, _ := beaconRun(t, d, conns, 5, "203.0.113.7:443"); at != 0 {
		t.Fatalf("excluded destination flagged at %d", at)
	}
	// 200k distinct destinations: the key table stays within its cap.
	env := bldEnv()
	for i := 0; i < 200; i++ {
		s := bldSnap(bldT0.Add(time.Hour + time.Duration(i)*2*time.Second))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Opened = append(s.Opened, collector.Socket{Proto: "tcp", State: "ESTABLISHED", Local: bldAP("10.0.0.5:40000"), Cookie: uint64(n + 1),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(n >> 16), byte(n >> 8), byte(n)}), 443), PID: 3})
		}
		d.Detect(s, env)
		if d.keys.Len() > 1000 || d.seen.Len() > maxBeaconSeen {
			t.Fatalf("keys %d seen %d over cap", d.keys.Len(), d.seen.Len())
		}
	}
}

// A beacon whose connections mostly close between polls: only the first is
// seen open (with its PID); the rest arrive as destroy notifications with no
// owner. They must join the first one's series (one alert, naming the
// process, by the 8th connection), not split into a second, "unknown" one.
// The reverse order (owner learnt late) merges the same way.
func TestBeaconOwnerlessConnectionsJoinTheOwnersSeries(t *testing.T) {
	for _, knownAt := range []int{0, 3} {
		t.Run(fmt.Sprintf("owner_seen_at_%d", knownAt), func(t *testing.T) {
			d := newTestBeacon(t)
			env := bldEnv()
			t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			d.Detect(bldSnap(t0.Add(-2*time.Second)), env)
			var alerts []Alert
			alertAt := 0
			for i := 0; i < 10; i++ {
				start := t0.Add(time.Duration(i) * 3 * time.Second)
				s := bldSnap(start.Add(time.Second))
				bldProc(s, 42, 1, "curl")
				sock := collector.Socket{Proto: "tcp", Family: 4, Local: bldAP(fmt.Sprintf("10.0.0.5:%d", 40000+i)),
					Remote: bldAP("198.51.100.7:443"), Cookie: uint64(i + 1), BytesAcked: 700}
				if i == knownAt {
					sock.State, sock.PID, sock.FirstSeen = "ESTABLISHED", 42, s.Time
					s.Opened = append(s.Opened, sock)
					s.Sockets = append(s.Sockets, sock)
				} else {
					sock.State, sock.Destroyed, sock.FirstSeen = "CLOSE", true, start.Add(20*time.Millisecond)
					s.Closed = append(s.Closed, sock)
				}
				got := d.Detect(s, env)
				if len(got) > 0 && alertAt == 0 {
					alertAt = i + 1
				}
				alerts = append(alerts, got...)
			}
			if alertAt == 0 || alertAt > 8 {
				t.Fatalf("first alert at connection %d, want by the 8th (alerts %+v)", alertAt, alerts)
			}
			for _, a := range alerts {
				if a.Process == nil || a.Process.Name != "curl" {
					t.Errorf("alert %q without the owner curl: %+v", a.Entity, a.Process)
				}
			}
		})
	}
}
