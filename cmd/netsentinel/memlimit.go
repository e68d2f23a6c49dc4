package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/internal/pipeline"
)

// DefaultMemoryLimit is the Go soft memory limit set when GOMEMLIMIT is not.
const DefaultMemoryLimit = 100 << 20

// memHeadroom is how far above the live heap the limit is kept once the live
// heap nears the base limit: the limit then bounds garbage to a quarter of
// the live heap (as GOGC=25 would) instead of leaving the collector no room.
const memHeadroom = 1.25

// followMemoryLimit sets the soft memory limit to base and, after every
// garbage collection, raises it to memHeadroom times the live heap when that
// is higher (and lowers it again, never below base, when the live heap
// shrinks). A fixed limit below the live heap makes the collector run
// without pause (at 50,000 connections the agent used 5 s of CPU for one
// poll): the limit trims garbage, it never stands for memory the agent
// needs. The returned function stops following (the limit stays as it is).
func followMemoryLimit(base int64) (stop func()) {
	debug.SetMemoryLimit(base)
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		// The sentinel is unreachable at once: its cleanup runs after the
		// next collection, then arms the next one.
		runtime.AddCleanup(new([16]byte), func(struct{}) {
			if stopped.Load() {
				return
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				want := max(int64(float64(sample[0].Value.Uint64())*memHeadroom), base)
				if cur := debug.SetMemoryLimit(-1); want > cur || want < cur*3/4 {
					debug.SetMemoryLimit(want)
				}
			}
			arm()
		}, struct{}{})
	}
	arm()
	return func() { stopped.Store(true) }
}

// steadyGCPercent is the garbage collector's GOGC once the agent holds its
// working set, when GOGC is not set. The heap is then mostly long-lived
// state (the two socket lists, the tracker, the PID cache and the
// detectors' maps) and a poll adds little garbage (about 100 kB at 10,000
// connections), so the default GOGC=100, which lets the heap grow to twice
// the live state before collecting, only keeps garbage in memory for
// minutes: at 10,000 connections a goal of 26 MB for 13 MB of state. At 50
// the goal is 1.5 times the state; a collection then comes every minute or
// so instead of every two (the runtime forces one every two minutes), each
// costing about a millisecond of CPU per MB of state.
const steadyGCPercent = 50

// gcWarmPolls is the poll after which steadyGCPercent applies: the first
// poll builds the state (every socket seen for the first time) and the
// second allocates the second socket list, and collecting more often while
// the heap grows would cost CPU for no memory.
const gcWarmPolls = 2

// steadyGC is a pipeline.Metrics that passes every call on to the one it
// wraps and sets steadyGCPercent at the gcWarmPolls-th poll. restore puts
// the previous GC percent back (a run inside a test binary must not leave
// its setting behind).
type steadyGC struct {
	pipeline.Metrics
	polls int
	prev  int
	set   bool
}

func (g *steadyGC) Polled(st collector.Stats) {
	g.Metrics.Polled(st)
	if g.polls++; g.polls == gcWarmPolls {
		g.prev, g.set = debug.SetGCPercent(steadyGCPercent), true
	}
}

func (g *steadyGC) restore() {
	if g.set {
		debug.SetGCPercent(g.prev)
		g.set = false
	}
}
