package detect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

// alertKeys reduces alerts to what a user sees of them, minus the random ID.
func alertKeys(as []Alert) []string {
	var k []string
	for _, a := range as {
		k = append(k, fmt.Sprintf("%s|%s|%s|%s|%d|%s", a.RuleID, a.Technique, a.Entity, a.Time, a.Count, a.Message))
	}
	return k
}

// Quiet marks only skip work: every recording (whose replay links each
// snapshot to the one before, as the live tracker does) gives exactly the
// alerts of an engine that examines every socket at every poll.
func TestQuietMarksChangeNoAlert(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "recorded", "*.ndjson.gz"))
	if err != nil || len(paths) < 10 {
		t.Fatalf("recordings: %v (%d)", err, len(paths))
	}
	marked := 0
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".ndjson.gz")
		t.Run(name, func(t *testing.T) {
			on, off := newReplayEngine(t, nil), newReplayEngine(t, nil)
			off.env.quiet.off = true
			src, err := collector.OpenReplay(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var got, want []Alert
			for {
				snap, err := src.Collect(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, on.Run(snap)...)
				for _, m := range on.env.quiet.prevMark {
					if m != 0 {
						marked++
					}
				}
				want = append(want, off.Run(snap)...)
			}
			if !reflect.DeepEqual(alertKeys(got), alertKeys(want)) {
				t.Errorf("with marks:\n%s\nwithout:\n%s", strings.Join(alertKeys(got), "\n"), strings.Join(alertKeys(want), "\n"))
			}
		})
	}
	if marked == 0 {
		t.Error("no socket was ever marked quiet: the test compares nothing")
	}
}

// Marks carry over only to the next snapshot of the same source, and only
// while the listeners and the configuration stay the same.
func TestQuietMarksCarryOnlyToTheNextUnchangedSnapshot(t *testing.T) {
	snaps := steadySnapshots(200, 4, false)
	eng := newReplayEngine(t, nil)
	carried := func(s *collector.Snapshot) int {
		eng.env.quiet.begin(s, &eng.env)
		n := 0
		for _, m := range eng.env.quiet.mark {
			// Not the listener index's own marks, which begin sets
			// itself (and which survive any change but the socket's).
			if m&^quietNotListener != 0 {
				n++
			}
		}
		eng.env.quiet.mark = eng.env.quiet.mark[:0]
		eng.env.listenSnap = nil
		return n
	}
	eng.Run(snaps[0])
	eng.Run(snaps[1])
	// The 200 loopback connections but the one replaced (the external ones
	// move bytes, and exfiltration keeps examining them).
	if n := carried(snaps[2]); n < 2*199 {
		t.Fatalf("next snapshot: %d of %d sockets carried marks, want at least %d", n, len(snaps[2].Sockets), 2*199)
	}
	if n := carried(snaps[3]); n != 0 {
		t.Errorf("a snapshot that skips one: %d sockets carried marks", n)
	}
	// A new listener can turn an egress connection into an accepted one.
	moved := *snaps[2]
	moved.Sockets = append([]collector.Socket{{Proto: collector.ProtoTCP, Family: 4, State: collector.StateListen,
		Local: netip.MustParseAddrPort("0.0.0.0:9999"), Cookie: 12345}}, snaps[2].Sockets...)
	moved.SameAs = collector.LinkSameAs(snaps[1].Sockets, moved.Sockets)
	if n := carried(&moved); n != 0 {
		t.Errorf("a new listener: %d sockets carried marks", n)
	}
	// A reload drops them too (a mark depends on its detector's configuration).
	carried(snaps[2]) // the listeners as before: the next call carries again
	if n := carried(snaps[2]); n == 0 {
		t.Fatal("marks lost without a change")
	}
	if err := eng.Reconfigure(replayConfig(nil)); err != nil {
		t.Fatal(err)
	}
	if n := carried(snaps[2]); n != 0 {
		t.Errorf("after a reload: %d sockets carried marks", n)
	}
}
