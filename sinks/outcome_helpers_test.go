package sinks

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/zap"
)

// testStats pairs a sink under test with the counters its tests read:
// sinks count nothing, so a test that writes to a sink directly counts its
// outcomes the way the runner does (countedWrite).
var testStats sync.Map // Sink -> *Stats

// trackStats makes countedWrite on s count into stats.
func trackStats(tb testing.TB, s Sink, stats *Stats) {
	testStats.Store(s, stats)
	tb.Cleanup(func() { testStats.Delete(s) })
}

// countedWrite writes batch to s directly (no queue, no retries) and adds
// its outcomes to the sink's tracked Stats with the runner's own counting
// (memory buffer: an ErrPermanent Retry counts as a permanent drop). It
// fails the test when s returns outcomes that do not match the batch.
func countedWrite(tb testing.TB, s Sink, ctx context.Context, batch []Event) error {
	outs, err := s.Write(ctx, batch)
	if outs != nil && len(outs) != len(batch) {
		tb.Errorf("%s.Write returned %d outcomes for %d events", s.Name(), len(outs), len(batch))
	}
	stats := &Stats{}
	if v, ok := testStats.Load(s); ok {
		stats = v.(*Stats)
	}
	r := &Runner{sink: s, stats: stats, log: zap.NewNop()}
	r.count(writeResult{pending: batch, outs: normalizeOutcomes(batch, outs, err), err: err, final: true})
	return err
}

// outcomesOf is what a test double's Write returns for err in the old
// style: nil (all delivered), a *RetryableError (its Remaining are Retry,
// the rest delivered), or any other error (the whole batch shares it).
func outcomesOf(batch []Event, err error) ([]Outcome, error) {
	var re *RetryableError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &re):
		return (&outcomeSet{}).result(batch, re.Remaining, re.Err), err
	}
	return nil, err
}
