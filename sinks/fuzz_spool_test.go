package sinks

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// FuzzSpoolReader writes arbitrary bytes as a spool segment and replays it
// through the real spool reader (OpenSpool, Peek, Ack) and the in-memory
// decoder. Neither may panic or loop; the reader must deliver exactly the
// records before the first damage, in order, and count the damage.
// Seed corpus: testdata/fuzz/FuzzSpoolReader plus valid segments built here.
func FuzzSpoolReader(f *testing.F) {
	valid := []byte(spoolMagic)
	for i := 0; i < 3; i++ {
		valid = encodeSpoolRecord(valid, spoolEv(i))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte(spoolMagic))
	f.Add(encodeSpoolRecord([]byte(spoolMagic), Event{ID: "x\x00\xff", Body: []byte("\n\x1b[31m")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		want, derr := ReadSpoolSegment(data)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000000.seg"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		stats := &Stats{}
		s, err := OpenSpool(dir, SpoolConfig{}, stats, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var got []Event
		for i := 0; i <= len(data) && s.Pending() > 0; i++ {
			evs, err := s.Peek(2)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, evs...)
			if err := s.Ack(len(evs)); err != nil {
				t.Fatal(err)
			}
		}
		if s.Pending() != 0 {
			t.Fatalf("reader stuck with %d pending", s.Pending())
		}
		if len(got) != len(want) {
			t.Fatalf("spool delivered %d records, decoder read %d (err %v)", len(got), len(want), derr)
		}
		for i := range got {
			if got[i].ID != want[i].ID || string(got[i].Body) != string(want[i].Body) || len(got[i].Fields) != len(want[i].Fields) {
				t.Fatalf("record %d differs: %+v vs %+v", i, got[i], want[i])
			}
		}
		// Damage after the magic is counted; a well-formed segment is not.
		corrupt := stats.Snapshot().DroppedBy[DropSpoolCorrupt]
		if derr == nil && corrupt != 0 {
			t.Fatalf("clean segment counted %d corrupt", corrupt)
		}
		if derr != nil && len(data) >= spoolHeader && string(data[:spoolHeader]) == spoolMagic && corrupt == 0 {
			t.Fatalf("damage (%v) not counted", derr)
		}
	})
}
