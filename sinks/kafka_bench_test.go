package sinks

// Throughput and latency of the Kafka sink against the loopback kfake broker
// (test/servers/bin/kafkabroker), measured from the Write call to the
// broker's acknowledgement (acks=all). Run:
//
//	test/servers/build-kafkabroker.sh
//	go test ./sinks/ -run '^$' -bench BenchmarkKafkaWrite -benchtime 3s -count 3
//
// The defaults (acks=all, zstd, linger 1 ms, batch_size 100) are benchmarked
// beside variants in the same run, so each choice shows as a ratio: a 10 ms
// and a 50 ms (the maximum allowed) linger, bigger produce batches, and no
// compression. batch=N is the number of events per Write (the Runner's
// default batch is 500); p50/p99 are per Write, from the call to the ack.

import (
	"context"
	"slices"
	"testing"
	"time"
)

func BenchmarkKafkaWrite(b *testing.B) {
	br := startKafkaBroker(b, "-topics", "bench", "-partitions", "3")
	evs := kafkaTestEvents(b, "bench", 2000, 16)
	for _, v := range []struct {
		name  string
		batch int
		mod   func(*KafkaConfig)
	}{
		{"defaults/batch=1", 1, nil},
		{"defaults/batch=500", 500, nil},
		{"linger=10ms/batch=1", 1, func(c *KafkaConfig) { c.BatchTimeout = 10 * time.Millisecond }},
		{"linger=10ms/batch=500", 500, func(c *KafkaConfig) { c.BatchTimeout = 10 * time.Millisecond }},
		{"linger=50ms/batch=500", 500, func(c *KafkaConfig) { c.BatchTimeout = 50 * time.Millisecond }},
		{"batch_size=1000/batch=500", 500, func(c *KafkaConfig) { c.BatchSize = 1000 }},
		{"compression=none/batch=500", 500, func(c *KafkaConfig) { c.Compression = "none" }},
	} {
		b.Run(v.name, func(b *testing.B) {
			k, stats := kafkaRealSink(b, br, "bench", v.mod)
			ctx := context.Background()
			if err := countedWrite(b, k, ctx, evs[:v.batch]); err != nil { // warm: connection, metadata
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				off := (i * v.batch) % (len(evs) - v.batch)
				t0 := time.Now()
				if err := countedWrite(b, k, ctx, evs[off:off+v.batch]); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(b.N*v.batch)/elapsed.Seconds(), "events/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			if s := stats.Snapshot(); s.Failed != 0 || s.DeadLettered != 0 {
				b.Fatalf("stats %+v", s)
			}
		})
	}
}
