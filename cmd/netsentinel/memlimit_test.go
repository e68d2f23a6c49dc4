package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/pipeline"
)

// A live heap above the base limit raises the limit (the collector keeps
// room for garbage instead of running without pause); when the heap is
// released the limit comes back down to the base.
func TestFollowMemoryLimit(t *testing.T) {
	// The base is well above what the rest of this test binary keeps live
	// (in-process runs of the agent): released, the heap must fall below
	// base/1.25 for the limit to return to the base.
	const base = 32 << 20
	stop := followMemoryLimit(base)
	defer func() { stop(); debug.SetMemoryLimit(math.MaxInt64) }()
	live := make([][]byte, 0, 96)
	for i := 0; i < 96; i++ {
		live = append(live, make([]byte, 1<<20))
	}
	waitLimit := func(ok func(int64) bool) int64 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			cur := debug.SetMemoryLimit(-1)
			if ok(cur) || time.Now().After(deadline) {
				return cur
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := waitLimit(func(l int64) bool { return l >= 120<<20 }); got < 120<<20 {
		t.Fatalf("limit %d MiB with 96 MiB live, want at least 1.25 times the live heap", got>>20)
	}
	runtime.KeepAlive(live)
	live = nil
	if got := waitLimit(func(l int64) bool { return l == base }); got != base {
		t.Fatalf("limit %d MiB after the heap was released, want the base %d MiB", got>>20, base>>20)
	}
}

// countingMetrics counts the calls passed on to it.
type countingMetrics struct{ polled, failed, alerted, reported int }

func (c *countingMetrics) Polled(collector.Stats) { c.polled++ }
func (c *countingMetrics) PollFailed()            { c.failed++ }
func (c *countingMetrics) Alerted(*detect.Alert)  { c.alerted++ }
func (c *countingMetrics) Reported(time.Time)     { c.reported++ }

// The steady GC percent applies from the gcWarmPolls-th poll on (not while
// the first polls build the state), every call reaches the monitor behind
// it, and the run's end puts the previous setting back.
func TestSteadyGCPercentAfterWarmPolls(t *testing.T) {
	const before = 137 // anything but the steady value
	prev := debug.SetGCPercent(before)
	defer debug.SetGCPercent(prev)
	percent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	next := &countingMetrics{}
	g := &steadyGC{Metrics: next}
	for i := 1; i < gcWarmPolls; i++ {
		g.Polled(collector.Stats{})
		if p := percent(); p != before {
			t.Fatalf("GC percent %d after %d polls, want %d until poll %d", p, i, before, gcWarmPolls)
		}
	}
	g.PollFailed() // a failed poll is not a poll that built state
	g.Polled(collector.Stats{})
	if p := percent(); p != steadyGCPercent {
		t.Fatalf("GC percent %d after %d polls, want %d", p, gcWarmPolls, steadyGCPercent)
	}
	g.Polled(collector.Stats{})
	g.Alerted(&detect.Alert{})
	g.Reported(time.Now())
	if *next != (countingMetrics{polled: gcWarmPolls + 1, failed: 1, alerted: 1, reported: 1}) {
		t.Errorf("calls passed on: %+v", *next)
	}
	g.restore()
	if p := percent(); p != before {
		t.Errorf("GC percent %d after the run, want the previous %d back", p, before)
	}
	// Without a monitor, run wraps the pipeline's no-op metrics.
	(&steadyGC{Metrics: pipeline.NoMetrics{}}).Polled(collector.Stats{})
}
