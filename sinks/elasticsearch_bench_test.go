package sinks

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// heapPeak samples runtime.MemStats until stopped and keeps the high-water
// marks of HeapInuse and Sys.
type heapPeak struct {
	stop      chan struct{}
	wg        sync.WaitGroup
	heapInuse atomic.Uint64
	sys       atomic.Uint64
}

func startHeapPeak() *heapPeak {
	p := &heapPeak{stop: make(chan struct{})}
	p.sample()
	p.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	})
	return p
}

func (p *heapPeak) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapInuse > p.heapInuse.Load() {
		p.heapInuse.Store(m.HeapInuse)
	}
	if m.Sys > p.sys.Load() {
		p.sys.Store(m.Sys)
	}
}

func (p *heapPeak) Stop() {
	close(p.stop)
	p.wg.Wait()
	p.sample()
}

// BenchmarkElasticsearchBurst100k ships a burst of 100,000 ECS alerts
// through the sink into VictoriaLogs on loopback, side by side for gzip on
// and off and one or two workers. Metrics: events/s, peak HeapInuse during
// the burst (the 100,000 input events, ~150 MB, are included; extra-heap-MB
// is the growth over the heap held before the burst) and peak Sys.
//
//	test/servers/build.sh
//	go test ./sinks/ -run '^$' -bench ElasticsearchBurst100k -benchtime 1x -count 3
func BenchmarkElasticsearchBurst100k(b *testing.B) {
	const burst = 100_000
	vl := testserver.StartVictoriaLogs(b)
	total := 0
	for _, tc := range []struct {
		compression string
		workers     int
	}{{"gzip", 1}, {"gzip", 2}, {"none", 1}, {"none", 2}} {
		b.Run(fmt.Sprintf("compression=%s/workers=%d", tc.compression, tc.workers), func(b *testing.B) {
			cfg := esConfigFor(vl)
			cfg.Compression, cfg.Workers = tc.compression, tc.workers
			dl, err := OpenDeadLetter(filepath.Join(b.TempDir(), "dead.ndjson"))
			if err != nil {
				b.Fatal(err)
			}
			defer dl.Close()
			stats := &Stats{}
			es, err := NewElasticsearch(cfg, dl, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			trackStats(b, es, stats)
			defer es.Close(context.Background())
			var elapsed time.Duration
			var peakHeap, extraHeap, peakSys uint64
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				evs := makeECSAlerts(fmt.Sprintf("bench-%s-%d-%d", tc.compression, tc.workers, i), burst)
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				peak := startHeapPeak()
				b.StartTimer()
				start := time.Now()
				err := countedWrite(b, es, context.Background(), evs)
				elapsed += time.Since(start)
				b.StopTimer()
				peak.Stop()
				if err != nil {
					b.Fatalf("burst not delivered: %v", err)
				}
				peakHeap = max(peakHeap, peak.heapInuse.Load())
				extraHeap = max(extraHeap, peak.heapInuse.Load()-min(peak.heapInuse.Load(), before.HeapInuse))
				peakSys = max(peakSys, peak.sys.Load())
				total += burst
				b.StartTimer()
			}
			b.StopTimer()
			if got := vl.Count(b, "*"); got != total {
				b.Fatalf("store holds %d alerts, want %d", got, total)
			}
			if s := stats.Snapshot(); s.DeadLettered != 0 || s.Dropped != 0 {
				b.Fatalf("losses during the burst: %+v", s)
			}
			b.ReportMetric(float64(burst*b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(extraHeap)/(1<<20), "extra-heap-MB")
			b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MB")
		})
	}
}
