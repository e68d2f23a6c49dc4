package dashboard

import (
	"sync"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
)

// maxPending bounds the alerts waiting for the UI: when it is behind, the
// oldest are left out of the list (they are still counted, sent to the sinks
// and in the report).
const maxPending = 1000

// Feed is the pipeline's side of the dashboard: Observe is the pipeline
// observer. It never blocks on the UI: it keeps only the latest snapshot and
// a bounded list of new alerts in a mailbox and wakes the UI with a
// non-blocking send, so a slow or paused screen cannot delay detection.
type Feed struct {
	mu      sync.Mutex
	snap    *collector.Snapshot
	alerts  []detect.Alert
	counts  [5]uint64 // alerts by severity (1..4), all of them
	polls   uint64
	dropped uint64 // alerts left out of the list because the UI was behind
	wake    chan struct{}
}

// NewFeed returns an empty feed.
func NewFeed() *Feed { return &Feed{wake: make(chan struct{}, 1)} }

// Observe records one poll. It is a pipeline.Observer.
func (f *Feed) Observe(snap *collector.Snapshot, alerts []detect.Alert) {
	f.mu.Lock()
	f.snap = snap
	f.polls++
	for i := range alerts {
		if s := alerts[i].Severity; s >= 1 && s <= 4 {
			f.counts[s]++
		}
	}
	f.alerts = append(f.alerts, alerts...)
	if n := len(f.alerts) - maxPending; n > 0 {
		f.dropped += uint64(n)
		f.alerts = append(f.alerts[:0], f.alerts[n:]...)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default: // the UI has a wake-up pending already
	}
}

// pollUpdate is what the UI takes from the mailbox.
type pollUpdate struct {
	snap    *collector.Snapshot // nil when no poll since the last take
	alerts  []detect.Alert
	counts  [5]uint64
	polls   uint64
	dropped uint64
}

// take empties the mailbox.
func (f *Feed) take() pollUpdate {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := pollUpdate{snap: f.snap, alerts: f.alerts, counts: f.counts, polls: f.polls, dropped: f.dropped}
	f.snap, f.alerts = nil, nil
	return u
}
