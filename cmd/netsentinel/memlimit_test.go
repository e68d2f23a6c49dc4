package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
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
