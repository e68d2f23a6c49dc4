package collector

import (
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRecordingRoundTrip(t *testing.T) {
	for _, name := range []string{"rec.ndjson", "rec.ndjson.gz"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			rec, err := CreateRecording(path)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			want := []*Snapshot{
				{Time: t0, Hostname: "h", Processes: map[int32]*Process{42: {PID: 42, PPID: 1, Name: "ncat", Cmdline: []string{"ncat", "x"}, StartTime: t0}},
					Sockets: []Socket{{Proto: ProtoTCP, Family: 4, State: StateEstablished, Local: netip.MustParseAddrPort("10.0.0.2:40000"),
						Remote: netip.MustParseAddrPort("198.51.100.10:4444"), PID: 42, Inode: 7, BytesAcked: 100, FirstSeen: t0}},
					Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
				{Time: t0.Add(2 * time.Second), Processes: map[int32]*Process{}},
			}
			for _, s := range want {
				if err := rec.Write(s); err != nil {
					t.Fatal(err)
				}
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			rp, err := OpenReplay(path)
			if err != nil {
				t.Fatal(err)
			}
			defer rp.Close()
			for i, w := range want {
				got, err := rp.Collect(context.Background())
				if err != nil {
					t.Fatalf("snapshot %d: %v", i, err)
				}
				// Seq and SameAs are not recorded: the replay numbers and
				// links the snapshots as the live source does.
				if got.Seq != uint64(i+1) || len(got.SameAs) != len(got.Sockets) {
					t.Fatalf("snapshot %d: Seq %d, %d SameAs for %d sockets", i, got.Seq, len(got.SameAs), len(got.Sockets))
				}
				got.Seq, got.SameAs = 0, nil
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("snapshot %d differs:\n got %+v\nwant %+v", i, got, w)
				}
			}
			if _, err := rp.Collect(context.Background()); err != io.EOF {
				t.Fatalf("after last snapshot: %v, want io.EOF", err)
			}
		})
	}
}
