// Package sinks delivers formatted events: stdout NDJSON, a rotating NDJSON
// file, Elasticsearch, Kafka and syslog.
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
	// Write delivers batch and says what became of each event: it returns
	// one Outcome per event, in batch order. err summarises the events not
	// delivered (a *RetryableError listing the Retry ones, for logs and
	// direct callers); it is nil when every event is settled. A nil outcome
	// slice means every event got err's fate: delivered when err is nil,
	// else Retry (never retried when err wraps ErrPermanent). A sink counts
	// nothing: the runner alone turns outcomes into counters.
	Write(ctx context.Context, batch []Event) ([]Outcome, error)
	// Close flushes and releases resources, giving up when ctx is done.
	Close(ctx context.Context) error
}

// Status is what became of one event in a Write.
type Status uint8

const (
	// Delivered: the destination accepted the event.
	Delivered Status = iota
	// Duplicate: the destination had it already (an Elasticsearch 409 on
	// create after a lost answer); it counts as sent.
	Duplicate
	// Retry: not delivered now, may be later (Err says why; an Err wrapping
	// ErrPermanent means retrying cannot help).
	Retry
	// DeadLettered: rejected for good and written to the dead-letter file.
	DeadLettered
	// Dropped: rejected for good and kept nowhere (no dead-letter file, or
	// its write failed); Reason names the drop reason counted.
	Dropped
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Duplicate:
		return "duplicate"
	case Retry:
		return "retry"
	case DeadLettered:
		return "dead_lettered"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Outcome is one event's result of a Write.
type Outcome struct {
	Status Status
	// Err is why the event was not delivered (Retry, DeadLettered, Dropped).
	Err error
	// Reason is the drop reason of a Dropped event (e.g.
	// "dead_letter_write_failed").
	Reason string
	// Resent counts the sends the sink repeated for this event within the
	// Write (its own retries; for syslog also frames of earlier events a
	// broken connection may have lost, re-sent ahead of this one).
	Resent int
}

// RunnerTuner is a Sink that sets its runner's batching (BatchSize,
// FlushInterval) from its own config, so the command needs no knowledge of
// the kind.
type RunnerTuner interface {
	TuneRunner(rc *RunnerConfig)
}

// RetryableError is the summary error of a Write that left events to
// retry: it lists them (the same as the Retry outcomes).
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

// Stats are a sink's delivery counters, safe for concurrent use. Only the
// runner (and the spool, for damaged records) writes them: sinks report
// per-event outcomes and count nothing.
type Stats struct {
	Sent         atomic.Uint64 // delivered (including duplicates)
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

// outcomeSet collects what a Write's internal steps decided for its events
// (dead-lettered, duplicate, dropped, re-sent), safe for concurrent steps.
// Steps handle copies of events, so they are matched back by event.id, as
// a multiset: repeated IDs each take one recorded outcome, so the counts
// are exact.
type outcomeSet struct {
	mu     sync.Mutex
	final  map[string][]Outcome
	resent map[string]int
}

func (o *outcomeSet) record(ev Event, out Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.final == nil {
		o.final = map[string][]Outcome{}
	}
	o.final[ev.ID] = append(o.final[ev.ID], out)
}

// resend counts one more send of each of evs.
func (o *outcomeSet) resend(evs []Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.resent == nil {
		o.resent = map[string]int{}
	}
	for _, ev := range evs {
		o.resent[ev.ID]++
	}
}

// result gives batch's outcomes: a recorded one, else Retry for the events
// in retry (with err), else Delivered; re-sends go to each ID's first event.
func (o *outcomeSet) result(batch, retry []Event, err error) []Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	left := map[string]int{}
	for _, ev := range retry {
		left[ev.ID]++
	}
	outs := make([]Outcome, len(batch))
	for i, ev := range batch {
		switch rec := o.final[ev.ID]; {
		case len(rec) > 0:
			outs[i], o.final[ev.ID] = rec[0], rec[1:]
		case left[ev.ID] > 0:
			left[ev.ID]--
			outs[i] = Outcome{Status: Retry, Err: err}
		}
		if n := o.resent[ev.ID]; n > 0 {
			outs[i].Resent, o.resent[ev.ID] = n, 0
		}
	}
	return outs
}

// retryRest is the outcomes of a Write that settled batch[:n] as Delivered
// and left batch[n:] to Retry with err, and its summary error.
func retryRest(batch []Event, n int, err error) ([]Outcome, error) {
	outs := make([]Outcome, len(batch))
	for i := n; i < len(batch); i++ {
		outs[i] = Outcome{Status: Retry, Err: err}
	}
	if n == len(batch) {
		return outs, nil
	}
	return outs, &RetryableError{Remaining: batch[n:], Err: err}
}
