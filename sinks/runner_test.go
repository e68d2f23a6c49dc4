package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	yaml "go.yaml.in/yaml/v3"
)

func ev(i int) Event {
	return Event{ID: fmt.Sprintf("e%d", i), Body: []byte(fmt.Sprintf(`{"event":{"id":"e%d"}}`, i))}
}

// fastCfg keeps retries quick in tests.
func fastCfg() RunnerConfig {
	return RunnerConfig{
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		DrainTimeout: 5 * time.Second, CloseTimeout: time.Second,
	}
}

// funcSink records batches and answers with fn.
type funcSink struct {
	name    string
	mu      sync.Mutex
	batches [][]string
	fn      func(ctx context.Context, call int, batch []Event) error
	closed  atomic.Int32
}

func (s *funcSink) Name() string {
	if s.name == "" {
		return "test"
	}
	return s.name
}

func (s *funcSink) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.ID
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	call := len(s.batches)
	s.mu.Unlock()
	if s.fn == nil {
		return nil, nil
	}
	return outcomesOf(batch, s.fn(ctx, call, batch))
}

func (s *funcSink) Close(context.Context) error { s.closed.Add(1); return nil }

func (s *funcSink) calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.batches...)
}

// blockingSink blocks its first Write until release is closed; with
// ignoreCtx it does not even watch its context (a truly stuck sink).
type blockingSink struct {
	funcSink
	entered   chan int // receives the first batch's length
	release   chan struct{}
	ignoreCtx bool
	once      sync.Once
}

func newBlockingSink(ignoreCtx bool) *blockingSink {
	return &blockingSink{entered: make(chan int, 1), release: make(chan struct{}), ignoreCtx: ignoreCtx}
}

func (s *blockingSink) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	_, _ = s.funcSink.Write(ctx, batch)
	s.once.Do(func() { s.entered <- len(batch) })
	if s.ignoreCtx {
		<-s.release
		return nil, nil
	}
	select {
	case <-s.release:
		return nil, nil
	case <-ctx.Done():
		return outcomesOf(batch, &RetryableError{Remaining: batch, Err: ctx.Err()})
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitEntered(t *testing.T, s *blockingSink) int {
	t.Helper()
	select {
	case n := <-s.entered:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("sink Write never called")
		return 0
	}
}

func TestRunnerSlowSinkDoesNotBlockPublishOrOtherSinks(t *testing.T) {
	const n = 100_000
	slow := newBlockingSink(false)
	cfg := fastCfg()
	cfg.QueueSize = 1000
	slowR := NewRunner(slow, cfg, nil, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))

	fast := &funcSink{name: "fast"}
	fcfg := fastCfg()
	fcfg.QueueSize = n + 10
	fastR := NewRunner(fast, fcfg, nil, zap.NewNop())

	slowR.Publish(ev(-1))
	waitEntered(t, slow) // the slow sink now holds 1 event and blocks

	start := time.Now()
	for i := 0; i < n; i++ {
		slowR.Publish(ev(i))
		fastR.Publish(ev(i))
	}
	elapsed := time.Since(start)
	t.Logf("%d Publish calls on each of 2 runners (one blocked): %s", n, elapsed)
	// The slow sink is blocked until release: a Publish that waited on it
	// would never return. The bound only catches a pathological slowdown
	// (the race detector on a loaded 2-core VM takes ~5 s).
	if elapsed > 30*time.Second {
		t.Fatalf("Publish blocked: %s for %d calls", elapsed, n)
	}

	// The fast sink delivers everything while the slow one is still stuck.
	waitFor(t, "fast sink to deliver", 10*time.Second, func() bool { return fastR.Stats().Sent == n })
	if got := len(slow.calls()); got != 1 {
		t.Fatalf("slow sink Write calls = %d, want 1 (still blocked)", got)
	}

	st := slowR.Stats()
	// The buffer holds the in-flight event until it is acknowledged.
	wantDrops := uint64(n + 1 - cfg.QueueSize)
	if st.DroppedBy[DropQueueFull] != wantDrops || st.Dropped != wantDrops {
		t.Fatalf("slow drops = %v, want %d queue_full (published %d, capacity %d)",
			st.DroppedBy, wantDrops, n+1, cfg.QueueSize)
	}
	if got := slowR.Queued(); got != cfg.QueueSize {
		t.Fatalf("queued = %d, want %d", got, cfg.QueueSize)
	}
	if fs := fastR.Stats(); fs.Dropped != 0 {
		t.Fatalf("fast sink dropped %v", fs.DroppedBy)
	}

	close(slow.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := slowR.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fastR.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st = slowR.Stats()
	if st.Sent != uint64(cfg.QueueSize) || st.Dropped != wantDrops {
		t.Fatalf("after drain: sent %d dropped %d, want %d and %d", st.Sent, st.Dropped, cfg.QueueSize, wantDrops)
	}
}

func TestRunnerRetrySendsOnlyRemaining(t *testing.T) {
	s := &funcSink{fn: func(_ context.Context, call int, batch []Event) error {
		if call == 1 {
			return &RetryableError{Remaining: batch[2:], Err: errors.New("429 on 3 items")}
		}
		return nil
	}}
	cfg := fastCfg()
	cfg.BatchSize = 5
	cfg.FlushInterval = 2 * time.Second // the batch fills to 5 long before this
	r := NewRunner(s, cfg, nil, zap.NewNop())
	for i := 0; i < 5; i++ {
		r.Publish(ev(i))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := s.calls()
	want := [][]string{{"e0", "e1", "e2", "e3", "e4"}, {"e2", "e3", "e4"}}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("batches = %v, want %v", calls, want)
	}
	st := r.Stats()
	if st.Sent != 5 || st.Retried != 3 || st.Failed != 1 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want sent 5 retried 3 failed 1", st)
	}
}

func TestRunnerWholeBatchRetriedOnPlainError(t *testing.T) {
	s := &funcSink{fn: func(_ context.Context, call int, _ []Event) error {
		if call <= 2 {
			return errors.New("connection refused")
		}
		return nil
	}}
	cfg := fastCfg()
	cfg.BatchSize = 3
	cfg.FlushInterval = 2 * time.Second
	r := NewRunner(s, cfg, nil, zap.NewNop())
	for i := 0; i < 3; i++ {
		r.Publish(ev(i))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(s.calls()); got != 3 {
		t.Fatalf("calls = %d, want 3", got)
	}
	if st := r.Stats(); st.Sent != 3 || st.Retried != 6 || st.Failed != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

// A memory buffer gives up on a batch after max_retries (counted); a
// durable one keeps it (see the spool tests).
func TestRunnerRetriesExhausted(t *testing.T) {
	s := &funcSink{fn: func(context.Context, int, []Event) error { return errors.New("503") }}
	cfg := fastCfg()
	cfg.MaxRetries = 2
	cfg.BatchSize = 4
	cfg.FlushInterval = 2 * time.Second
	r := NewRunner(s, cfg, nil, zap.NewNop())
	for i := 0; i < 4; i++ {
		r.Publish(ev(i))
	}
	waitFor(t, "retries to run out", 5*time.Second, func() bool { return r.Stats().Dropped == 4 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(s.calls()); got != 3 {
		t.Fatalf("calls = %d, want 1 + 2 retries", got)
	}
	st := r.Stats()
	if st.Failed != 3 || st.Sent != 0 || st.Retried != 8 || st.DroppedBy[DropRetriesExhausted] != 4 {
		t.Fatalf("stats = %+v, want 4 retries_exhausted", st)
	}
}

func TestRunnerPermanentErrorNotRetried(t *testing.T) {
	s := &funcSink{fn: func(context.Context, int, []Event) error {
		return fmt.Errorf("401 unauthorized: %w", ErrPermanent)
	}}
	r := NewRunner(s, fastCfg(), nil, zap.NewNop())
	r.Publish(ev(1))
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(s.calls()); got != 1 {
		t.Fatalf("calls = %d, want 1", got)
	}
	if st := r.Stats(); st.DroppedBy[DropPermanent] != 1 || st.Failed != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRunnerPanickingSinkIsIsolated(t *testing.T) {
	s := &funcSink{fn: func(_ context.Context, call int, _ []Event) error {
		if call == 1 {
			panic("boom")
		}
		return nil
	}}
	cfg := fastCfg()
	r := NewRunner(s, cfg, nil, zap.NewNop())
	r.Publish(ev(1))
	waitFor(t, "panic counted", 5*time.Second, func() bool { return r.Stats().DroppedBy[DropPanic] == 1 })
	r.Publish(ev(2))
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Sent != 1 || st.Failed != 1 || st.DroppedBy[DropPanic] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRunnerDrainDeliversEverythingQueued(t *testing.T) {
	const n = 2000
	s := &funcSink{fn: func(context.Context, int, []Event) error {
		time.Sleep(time.Millisecond)
		return nil
	}}
	cfg := fastCfg()
	cfg.BatchSize = 10
	r := NewRunner(s, cfg, nil, zap.NewNop())
	for i := 0; i < n; i++ {
		r.Publish(ev(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Sent != n || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want all %d sent", st, n)
	}
	// Order is kept and nothing is duplicated.
	i := 0
	for _, b := range s.calls() {
		if len(b) > cfg.BatchSize {
			t.Fatalf("batch of %d > BatchSize %d", len(b), cfg.BatchSize)
		}
		for _, id := range b {
			if id != fmt.Sprintf("e%d", i) {
				t.Fatalf("event %d delivered as %s", i, id)
			}
			i++
		}
	}
	if s.closed.Load() != 1 {
		t.Fatalf("sink closed %d times", s.closed.Load())
	}
	r.Publish(ev(n))
	if st := r.Stats(); st.DroppedBy[DropClosed] != 1 {
		t.Fatalf("publish after close: %v", st.DroppedBy)
	}
	if err := r.Close(context.Background()); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestRunnerCloseDeadlineWithStuckSink(t *testing.T) {
	for _, ignoreCtx := range []bool{true, false} {
		t.Run(fmt.Sprintf("ignoresContext=%v", ignoreCtx), func(t *testing.T) {
			s := newBlockingSink(ignoreCtx)
			defer close(s.release)
			cfg := fastCfg()
			cfg.QueueSize = 100
			cfg.CloseTimeout = 100 * time.Millisecond
			r := NewRunner(s, cfg, nil, zap.NewNop())
			r.Publish(ev(0))
			inFlight := waitEntered(t, s)
			for i := 1; i <= 50; i++ {
				r.Publish(ev(i))
			}
			const deadline = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := r.Close(ctx)
			took := time.Since(start)
			t.Logf("Close took %s with a %s deadline", took, deadline)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Close error = %v, want deadline exceeded", err)
			}
			if slack := deadline + abandonGrace + cfg.CloseTimeout + 500*time.Millisecond; took > slack {
				t.Fatalf("Close took %s, more than %s", took, slack)
			}
			st := r.Stats()
			if want := uint64(50 + inFlight); st.DroppedBy[DropShutdown] != want || st.Sent != 0 {
				t.Fatalf("stats = %+v, want %d dropped as shutdown", st, want)
			}
		})
	}
}

func TestRunnerDrainTimeoutAppliesWithoutContextDeadline(t *testing.T) {
	s := newBlockingSink(true)
	defer close(s.release)
	cfg := fastCfg()
	cfg.DrainTimeout = 200 * time.Millisecond
	cfg.CloseTimeout = 50 * time.Millisecond
	dir := t.TempDir()
	cfg.Buffer = openTestSpool(t, dir, SpoolConfig{}, nil)
	r := NewRunner(s, cfg, nil, zap.NewNop())
	r.Publish(ev(0))
	waitEntered(t, s)
	r.Publish(ev(1))
	start := time.Now()
	_ = r.Close(context.Background())
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s with DrainTimeout 200ms", took)
	}
	st := r.Stats()
	if st.Spooled != 2 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want both events kept in the spool", st)
	}
	sp := openTestSpool(t, dir, SpoolConfig{}, nil)
	if got := drainSpool(t, sp, 10); fmt.Sprint(got) != "[e0 e1]" {
		t.Fatalf("spool holds %v after the abandoned write, want [e0 e1]", got)
	}
}

func TestRunnerQueueFullDrops(t *testing.T) {
	s := newBlockingSink(false)
	cfg := fastCfg()
	cfg.QueueSize = 10
	r := NewRunner(s, cfg, nil, zap.NewNop())
	r.Publish(ev(0))
	waitEntered(t, s) // e0 in flight, still held by the buffer
	for i := 1; i <= 30; i++ {
		r.Publish(ev(i))
	}
	if st := r.Stats(); st.DroppedBy[DropQueueFull] != 21 {
		t.Fatalf("stats = %+v, want 21 queue_full (10 held)", st)
	}
	close(s.release)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Sent != 10 {
		t.Fatalf("sent = %d, want 10", st.Sent)
	}
}

func TestRunnerFlushIntervalBatches(t *testing.T) {
	s := &funcSink{}
	cfg := fastCfg()
	cfg.BatchSize = 100
	cfg.FlushInterval = 100 * time.Millisecond
	r := NewRunner(s, cfg, nil, zap.NewNop())
	start := time.Now()
	for i := 0; i < 3; i++ {
		r.Publish(ev(i))
	}
	waitFor(t, "batch", 5*time.Second, func() bool { return r.Stats().Sent == 3 })
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("partial batch written after %s, before FlushInterval", took)
	}
	if calls := s.calls(); len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("batches = %v, want one batch of 3", calls)
	}
	_ = r.Close(context.Background())
}

// oneBatchOf4 publishes four events to a runner over s that delivers them
// as one batch, closes it and returns its stats.
func oneBatchOf4(s Sink, stats *Stats) StatsSnapshot {
	cfg := fastCfg()
	cfg.BatchSize = 4
	cfg.FlushInterval = 2 * time.Second
	r := NewRunner(s, cfg, stats, zap.NewNop())
	for i := 0; i < 4; i++ {
		r.Publish(ev(i))
	}
	_ = r.Close(context.Background())
	return r.Stats()
}

// outcomeSink answers each Write with fn's outcomes.
type outcomeSink struct {
	funcSink
	out func(call int, batch []Event) ([]Outcome, error)
}

func (s *outcomeSink) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	_, _ = s.funcSink.Write(ctx, batch)
	return s.out(len(s.calls()), batch)
}

// The runner alone counts, from the per-event outcomes: a duplicate is
// sent and counted apart, a dead-lettered event is not sent, the sink's
// own re-sends are retried, and only the Retry event is written again.
func TestRunnerCountsOutcomes(t *testing.T) {
	s := &outcomeSink{out: func(call int, batch []Event) ([]Outcome, error) {
		if call > 1 {
			return nil, nil
		}
		err := errors.New("429 on one item")
		return []Outcome{{Status: Delivered}, {Status: Duplicate, Resent: 2},
			{Status: DeadLettered, Err: errors.New("mapper_parsing_exception")},
			{Status: Retry, Err: err}}, &RetryableError{Remaining: batch[3:], Err: err}
	}}
	st := oneBatchOf4(s, nil)
	if st.Sent != 3 || st.Duplicate != 1 || st.DeadLettered != 1 || st.Retried != 3 || st.Failed != 1 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want sent 3 (1 duplicate), dead-lettered 1, retried 2+1, failed 1", st)
	}
	if calls := s.calls(); fmt.Sprint(calls) != "[[e0 e1 e2 e3] [e3]]" {
		t.Fatalf("batches = %v, want the Retry event alone re-sent", calls)
	}
}

// With a memory buffer, a Retry whose error wraps ErrPermanent is dropped
// as permanent while the batch's other Retry events are tried again; a
// Dropped outcome is counted under the sink's reason.
func TestRunnerDropsOnlyPermanentRetries(t *testing.T) {
	s := &outcomeSink{out: func(call int, batch []Event) ([]Outcome, error) {
		if call > 1 {
			return nil, nil
		}
		return []Outcome{{Status: Delivered}, {Status: Retry, Err: fmt.Errorf("topic missing: %w", ErrPermanent)},
			{Status: Dropped, Reason: "kafka_message_rejected"}, {Status: Retry, Err: errors.New("leader moved")}}, errors.New("partly failed")
	}}
	st := oneBatchOf4(s, nil)
	if st.Sent != 2 || st.DroppedBy[DropPermanent] != 1 || st.DroppedBy["kafka_message_rejected"] != 1 || st.Dropped != 2 || st.Failed != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if calls := s.calls(); fmt.Sprint(calls) != "[[e0 e1 e2 e3] [e3]]" {
		t.Fatalf("batches = %v, want only the transient Retry re-sent", calls)
	}
}

// Outcomes that do not match the batch are a sink bug: the runner trusts
// none of them and retries the whole batch.
func TestRunnerDistrustsMismatchedOutcomes(t *testing.T) {
	s := &outcomeSink{out: func(call int, batch []Event) ([]Outcome, error) {
		if call > 1 {
			return nil, nil
		}
		return []Outcome{{Status: Delivered}}, nil
	}}
	if st := oneBatchOf4(s, nil); st.Sent != 4 || st.Failed != 1 || st.Retried != 4 {
		t.Fatalf("stats = %+v, want the 4 events retried then sent", st)
	}
}

func TestRunnerConcurrentPublishAndClose(t *testing.T) {
	s := &funcSink{}
	r := NewRunner(s, fastCfg(), nil, zap.NewNop())
	var wg sync.WaitGroup
	const per, workers = 2000, 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				r.Publish(ev(i))
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	st := r.Stats()
	if st.Sent+st.Dropped != per*workers {
		t.Fatalf("sent %d + dropped %v != published %d", st.Sent, st.DroppedBy, per*workers)
	}
	for reason := range st.DroppedBy {
		if reason != DropClosed {
			t.Fatalf("unexpected drop reason %q", reason)
		}
	}
}

func TestRunnerConfigYAMLAndDefaults(t *testing.T) {
	var c RunnerConfig
	src := "queue_size: 50\nbatch_size: 7\nflush_interval: 250ms\nmax_retries: -1\nbackoff_initial: 2s\nbackoff_max: 1m\ndrain_timeout: 10s\n"
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := RunnerConfig{QueueSize: 50, BatchSize: 7, FlushInterval: 250 * time.Millisecond, MaxRetries: -1,
		BackoffInitial: 2 * time.Second, BackoffMax: time.Minute, DrainTimeout: 10 * time.Second}
	if c != want {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	d := RunnerConfig{}.WithDefaults()
	if d.QueueSize != 10000 || d.DrainTimeout != 30*time.Second || d.FlushInterval != 0 || d.MaxRetries != DefaultMaxRetries {
		t.Fatalf("defaults = %+v", d)
	}
	if err := (RunnerConfig{QueueSize: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "queue_size") {
		t.Fatalf("Validate(-1 queue) = %v", err)
	}
}

func TestRunnerShutdownSpillsFailingBatchesInsteadOfRetrying(t *testing.T) {
	s := &funcSink{fn: func(context.Context, int, []Event) error { return errors.New("connection refused") }}
	cfg := fastCfg()
	cfg.BackoffInitial, cfg.BackoffMax = time.Second, time.Second
	cfg.MaxRetries = -1 // would retry forever
	cfg.Buffer = openTestSpool(t, t.TempDir(), SpoolConfig{}, nil)
	r := NewRunner(s, cfg, nil, zap.NewNop())
	r.Publish(ev(0))
	waitFor(t, "first attempt", 5*time.Second, func() bool { return len(s.calls()) >= 1 })
	r.Publish(ev(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_ = r.Close(ctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close spent %s retrying a dead sink although a spool was there", took)
	}
	if st := r.Stats(); st.Spooled != 2 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want 2 spooled", st)
	}
}

// nopSink accepts everything and keeps nothing.
type nopSink struct{}

func (nopSink) Name() string                                      { return "nop" }
func (nopSink) Write(context.Context, []Event) ([]Outcome, error) { return nil, nil }
func (nopSink) Close(context.Context) error                       { return nil }

// BenchmarkPublish measures Publish on the accepted path (a sink that keeps
// up) and on the drop path (queue full behind a blocked sink).
func BenchmarkPublish(b *testing.B) {
	e := ev(1)
	b.Run("queued", func(b *testing.B) {
		r := NewRunner(nopSink{}, RunnerConfig{QueueSize: 1 << 16}, nil, zap.NewNop())
		defer r.Close(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			r.Publish(e)
		}
	})
	b.Run("queue_full", func(b *testing.B) {
		s := newBlockingSink(false)
		r := NewRunner(s, RunnerConfig{QueueSize: 1}, nil, zap.NewNop())
		defer func() { close(s.release); r.Close(context.Background()) }()
		r.Publish(e)
		<-s.entered
		r.Publish(e)
		b.ReportAllocs()
		for b.Loop() {
			r.Publish(e)
		}
	})
}
