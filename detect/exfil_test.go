package detect

import (
	"fmt"
	"net/netip"
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
					c.Destroyed, c.State, c.FirstSeen = true, "CLOSE", s.Time
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
					tw.State = "TIME_WAIT"
					s.Sockets = append(s.Sockets, tw)
					c := exfSock("10.0.0.5:40002", "198.51.100.40:22", 80, 77, 45*mb, 0)
					c.State, c.Destroyed, c.FirstSeen = "CLOSE", true, bldT0.Add(2*time.Second)
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
	for i := 0; i < 200; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			s.Sockets = append(s.Sockets, collector.Socket{Proto: "tcp", State: "ESTABLISHED", Local: bldAP("10.0.0.5:40000"), Cookie: uint64(n + 1),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(n >> 16), byte(n >> 8), byte(n)}), 443), PID: int32(n), BytesAcked: 1000})
		}
		d.Detect(s, env)
		if d.last.Len() > 5000 || d.sums.Len() > 1000 {
			t.Fatalf("last %d sums %d over cap", d.last.Len(), d.sums.Len())
		}
	}
}
