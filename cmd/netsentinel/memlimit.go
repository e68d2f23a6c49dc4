package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
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
