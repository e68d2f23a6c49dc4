package dashboard

import (
	"testing"

	"github.com/netsentinel/netsentinel/detect"
)

// BenchmarkRender is one refresh at 10,000 connections on a 200x60 screen:
// the poll goes through the feed, its rows are built and sorted by bytes,
// and the screen is drawn (with 500 events kept and a filter on, the
// costliest view). The requirement is under 50 ms per refresh; report ns/op:
//
//	go test -run '^$' -bench BenchmarkRender ./internal/dashboard/
func BenchmarkRender(b *testing.B) {
	snap := snapshot(10000)
	var as []detect.Alert
	for i := 0; i < maxEvents; i++ {
		as = append(as, alert(i, detect.Severity(1+i%4), hostile[i%len(hostile)]))
	}
	h := fed(testOpts(), 200, 60, snap, as)
	press(h.Model, "/", "1", "9", "8", "enter")
	b.ReportAllocs()
	for b.Loop() {
		h.poll(snap, nil)
		if h.View() == "" {
			b.Fatal("empty screen")
		}
	}
}
