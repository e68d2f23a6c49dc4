package detect

// Detection throughput on the recorded scenarios (issue 11: at least 5
// million socket observations per second on one core):
//
//	go test ./detect -run '^$' -bench BenchmarkEngineReplay -cpu 1 -benchtime 20x -count 3
//
// Every recording in testdata/recorded is decoded once, before the clock
// starts; one iteration replays all of them, each through a fresh engine
// configured as the scenario suite configures the sensor (built while the
// clock is stopped). obs/s counts socket observations (open sockets plus
// closed ones) per second of Engine.Run; obs/cpu-s per second of this
// process's CPU time (getrusage) spent in Engine.Run, the figure for one core
// that a busy machine does not skew (with -cpu 1 at most one thread runs Go
// code, the garbage collector included).

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// loadRecording decodes every snapshot of a recording.
func loadRecording(tb testing.TB, path string) []*collector.Snapshot {
	tb.Helper()
	src, err := collector.OpenReplay(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	var snaps []*collector.Snapshot
	for i := 0; i < 10000; i++ {
		snap, err := src.Collect(context.Background())
		if errors.Is(err, io.EOF) {
			return snaps
		}
		if err != nil {
			tb.Fatal(err)
		}
		snaps = append(snaps, snap)
	}
	tb.Fatalf("%s: more than 10000 snapshots", path)
	return nil
}

func BenchmarkEngineReplay(b *testing.B) {
	paths, err := filepath.Glob(filepath.Join("testdata", "recorded", "*.ndjson.gz"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no recordings: %v", err)
	}
	var recs [][]*collector.Snapshot
	obs, nsnaps, procs := 0, 0, 0
	for _, p := range paths {
		snaps := loadRecording(b, p)
		for _, s := range snaps {
			obs += len(s.Sockets) + len(s.Closed)
			procs += len(s.Processes)
		}
		nsnaps += len(snaps)
		recs = append(recs, snaps)
	}
	b.Logf("%d recordings (%s ...), %d snapshots, %d socket observations and %d process entries per pass",
		len(recs), strings.TrimSuffix(filepath.Base(paths[0]), ".ndjson.gz"), nsnaps, obs, procs)
	alerts := 0
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, snaps := range recs {
			b.StopTimer()
			eng := newBenchEngine(b)
			c0 := cpuTime(b)
			b.StartTimer()
			for _, s := range snaps {
				alerts += len(eng.Run(s))
			}
			b.StopTimer()
			cpu += cpuTime(b) - c0
			failOnPanics(b, eng)
			eng.Close()
			b.StartTimer()
		}
	}
	b.StopTimer()
	if alerts == 0 {
		b.Fatal("the replays raised no alert: the engine did not run its detectors")
	}
	b.ReportMetric(float64(obs)*float64(b.N)/b.Elapsed().Seconds(), "obs/s")
	b.ReportMetric(float64(obs)*float64(b.N)/cpu.Seconds(), "obs/cpu-s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*nsnaps), "cpu-ns/snapshot")
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newBenchEngine builds an engine as the replay tests do.
func newBenchEngine(b *testing.B) *Engine {
	b.Helper()
	eng, err := NewEngine(replayConfig(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	return eng
}
