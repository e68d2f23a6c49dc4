// Package sinks delivers formatted events: stdout NDJSON, a rotating NDJSON
// file, Elasticsearch and Kafka.
//
// A Sink only knows how to deliver a batch. Each sink is driven by its own
// Runner (runner.go): a bounded queue, batching, retry with backoff, and
// counters. Publishing to a Runner never blocks the caller, so a slow or dead
// sink cannot stall collection, detection or the other sinks.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Event is one formatted document ready to ship.
type Event struct {
	ID   string // event.id: unique, the Elasticsearch _id and the dedupe key
	Body []byte // one compact JSON object, no trailing newline
	// Fields are a few flat values sinks may need without parsing Body
	// (e.g. "rule", "technique", "severity", "host.id" for Kafka keys/headers).
	Fields map[string]string
}

// Sink delivers batches of events.
type Sink interface {
	Name() string
	// Write delivers batch. It returns nil when every event was delivered or
	// permanently disposed of (dead-lettered, counted in Stats). When some
	// events could not be delivered but may be later, it returns a
	// *RetryableError listing exactly those events; any other error means the
	// whole batch may be retried.
	Write(ctx context.Context, batch []Event) error
	// Close flushes and releases resources, giving up when ctx is done.
	Close(ctx context.Context) error
}

// RunnerTuner is a Sink that sets its runner's batching (BatchSize,
// FlushInterval) from its own config, so the command needs no knowledge of
// the kind.
type RunnerTuner interface {
	TuneRunner(rc *RunnerConfig)
}

// RetryableError carries the events of a batch that still need delivery.
type RetryableError struct {
	Remaining []Event
	Err       error
}

func (e *RetryableError) Error() string {
	return fmt.Sprintf("%d events not delivered: %v", len(e.Remaining), e.Err)
}
func (e *RetryableError) Unwrap() error { return e.Err }

// ErrPermanent marks an error that retrying cannot fix (bad config, rejected
// credentials); wrap it with %w.
var ErrPermanent = errors.New("permanent sink error")

// Stats are a sink's delivery counters, safe for concurrent use.
type Stats struct {
	Sent         atomic.Uint64 // delivered (including 409 duplicates)
	Retried      atomic.Uint64 // events re-sent after a transient failure
	Duplicate    atomic.Uint64 // delivered earlier (e.g. ES 409 on create)
	DeadLettered atomic.Uint64 // permanently rejected, written to the dead-letter file
	Spooled      atomic.Uint64 // written to the on-disk spool
	Failed       atomic.Uint64 // write attempts that failed
	Offered      atomic.Uint64 // alerts offered to this sink (before its route)
	Filtered     atomic.Uint64 // alerts its route (min_severity, rules, techniques) left out

	mu      sync.Mutex
	dropped map[string]uint64 // by reason
}

// Drop counts n events dropped for reason.
func (s *Stats) Drop(reason string, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped == nil {
		s.dropped = map[string]uint64{}
	}
	s.dropped[reason] += n
}

// StatsSnapshot is a point-in-time copy of Stats for reports.
type StatsSnapshot struct {
	Sent         uint64            `json:"sent"`
	Retried      uint64            `json:"retried"`
	Duplicate    uint64            `json:"duplicate"`
	DeadLettered uint64            `json:"dead_lettered"`
	Spooled      uint64            `json:"spooled"`
	Failed       uint64            `json:"failed"`
	Offered      uint64            `json:"offered"`
	Filtered     uint64            `json:"filtered"`
	Dropped      uint64            `json:"dropped"`
	DroppedBy    map[string]uint64 `json:"dropped_by_reason,omitempty"`
	// Filled by Runner.Stats (zero from Stats.Snapshot): the buffer's type,
	// the events waiting for the sink, and the buffer's bytes (the spool's
	// size on disk for a disk buffer).
	Buffer      string `json:"buffer,omitempty"`
	Queued      int    `json:"queue_length"`
	BufferBytes int64  `json:"buffer_bytes"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	out := StatsSnapshot{
		Sent: s.Sent.Load(), Retried: s.Retried.Load(), Duplicate: s.Duplicate.Load(),
		DeadLettered: s.DeadLettered.Load(), Spooled: s.Spooled.Load(), Failed: s.Failed.Load(),
		Offered: s.Offered.Load(), Filtered: s.Filtered.Load(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dropped) > 0 {
		out.DroppedBy = make(map[string]uint64, len(s.dropped))
		for k, v := range s.dropped {
			out.DroppedBy[k] = v
			out.Dropped += v
		}
	}
	return out
}
