package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Runner defaults, as named constants (promtail style).
const (
	DefaultQueueSize      = 10000            // events buffered per sink (Telegraf's buffer)
	DefaultBatchSize      = 500              // events per Sink.Write
	DefaultMaxRetries     = 10               // retries of a batch before it spills or drops
	DefaultBackoffInitial = 1 * time.Second  // Filebeat: 1 s -> 60 s
	DefaultBackoffMax     = 60 * time.Second //
	DefaultDrainTimeout   = 30 * time.Second // shutdown drain deadline
	DefaultCloseTimeout   = 5 * time.Second  // Sink.Close after the drain
	// NetworkFlushInterval is the batching wait suggested for the
	// Elasticsearch and Kafka sinks (Vector's 1 s batch timeout). The local
	// sinks keep FlushInterval 0 so alerts appear live.
	NetworkFlushInterval = 1 * time.Second
)

// Drop reasons counted in Stats.
const (
	DropQueueFull        = "queue_full"        // Publish found the queue full
	DropClosed           = "closed"            // Publish after Close
	DropShutdown         = "shutdown"          // still undelivered at the drain deadline
	DropRetriesExhausted = "retries_exhausted" // MaxRetries reached
	DropPermanent        = "permanent"         // the sink returned an ErrPermanent error
	DropPanic            = "sink_panic"        // Sink.Write panicked on the batch
)

// Overflow takes events a Runner cannot deliver or hold (queue full, retries
// exhausted, permanent failure, drain deadline) instead of dropping them: the
// on-disk spool plugs in here. Put is called from Publish, so it must not
// block on the sink; it should return quickly (buffered local I/O). Events
// accepted are counted as Spooled; when Put fails they are dropped and
// counted with the reason at hand.
type Overflow interface {
	Put(events []Event) error
}

// Replayer is an Overflow that keeps events for later delivery (the Spool).
// A Runner whose Overflow is a Replayer feeds the sink from it whenever its
// queue is empty, oldest first, acknowledging each delivered batch; while
// the replayer holds events, Publish appends new ones to it too, so the
// order of delivery is the order of publication. Events pending from an
// earlier run are replayed at start. A Replayer that is an io.Closer is
// closed by Runner.Close after the drain.
type Replayer interface {
	Overflow
	Pending() int
	Peek(max int) ([]Event, error)
	Ack(n int) error
}

// RunnerConfig tunes one sink's queue, batching, retries and shutdown. Zero
// values take the defaults above, except FlushInterval where 0 means "write
// as soon as events are queued".
type RunnerConfig struct {
	// QueueSize bounds the events waiting for this sink (default 10000).
	QueueSize int `yaml:"queue_size"`
	// BatchSize caps the events per Sink.Write (default 500).
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is how long a batch may wait to fill up after its first
	// event. 0 writes whatever is queued immediately (stdout, file); batches
	// still form naturally while the sink is busy.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxRetries is how many times a failed batch (or its undelivered rest)
	// is retried before it goes to Overflow or is dropped (default 10;
	// negative: retry until shutdown).
	MaxRetries int `yaml:"max_retries"`
	// BackoffInitial and BackoffMax bound the full-jitter exponential
	// backoff between retries (defaults 1 s and 60 s).
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
	// DrainTimeout bounds Close when its context has no earlier deadline
	// (default 30 s).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// CloseTimeout bounds Sink.Close after the drain (default 5 s).
	CloseTimeout time.Duration `yaml:"close_timeout"`
	// Overflow, when set, receives events that would otherwise be dropped.
	Overflow Overflow `yaml:"-"`
}

// WithDefaults returns c with zero values replaced by the defaults.
func (c RunnerConfig) WithDefaults() RunnerConfig {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval < 0 {
		c.FlushInterval = 0
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.BackoffInitial <= 0 {
		c.BackoffInitial = DefaultBackoffInitial
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffInitial {
		c.BackoffMax = c.BackoffInitial
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	return c
}

// Validate rejects settings that cannot be meant, naming the key.
func (c RunnerConfig) Validate() error {
	switch {
	case c.QueueSize < 0:
		return fmt.Errorf("queue.queue_size: negative (%d)", c.QueueSize)
	case c.BatchSize < 0:
		return fmt.Errorf("queue.batch_size: negative (%d)", c.BatchSize)
	case c.FlushInterval < 0:
		return fmt.Errorf("queue.flush_interval: negative (%s)", c.FlushInterval)
	case c.BackoffInitial < 0:
		return fmt.Errorf("queue.backoff_initial: negative (%s)", c.BackoffInitial)
	case c.BackoffMax < 0:
		return fmt.Errorf("queue.backoff_max: negative (%s)", c.BackoffMax)
	case c.DrainTimeout < 0:
		return fmt.Errorf("queue.drain_timeout: negative (%s)", c.DrainTimeout)
	case c.CloseTimeout < 0:
		return fmt.Errorf("queue.close_timeout: negative (%s)", c.CloseTimeout)
	}
	return nil
}

// Runner drives one Sink: a bounded queue filled by Publish (which never
// blocks), one goroutine that batches and writes, retries with backoff, and
// counters. Counting rules: the runner counts Sent, Retried, Failed, Spooled
// and drops; a sink counts what it alone knows (DeadLettered, Duplicate,
// its own internal Retried) in the same *Stats. Events a sink dead-letters
// during a Write are not counted as Sent. A sink that counts Sent or Failed
// itself during a Write (the Kafka sink does) is trusted for that call and
// the runner does not add its own count, so nothing is counted twice. The
// Stats must therefore belong to this one runner and its sink.
type Runner struct {
	sink    Sink
	cfg     RunnerConfig
	stats   *Stats
	log     *zap.Logger
	backoff Backoff

	queue  chan Event
	replay Replayer      // cfg.Overflow when it can replay
	kick   chan struct{} // wakes the worker when the replayer gains events

	pubMu  sync.RWMutex // held for reading by Publish, for writing by Close
	closed bool

	stop   chan struct{}      // closed by Close: drain, then exit
	ctx    context.Context    // cancelled at the drain deadline
	cancel context.CancelFunc //
	done   chan struct{}      // closed when the worker exits

	// mu guards the in-flight batch so that exactly one of the worker and
	// Close (when it abandons a stuck worker) accounts for it.
	mu        sync.Mutex
	inflight  []Event
	abandoned bool

	closeOnce sync.Once
	closeErr  error

	dropLog rateLimitedLog
}

// NewRunner starts the worker goroutine for s. stats may be shared with the
// sink (for DeadLettered/Duplicate); nil allocates one.
func NewRunner(s Sink, cfg RunnerConfig, stats *Stats, log *zap.Logger) *Runner {
	cfg = cfg.WithDefaults()
	if stats == nil {
		stats = &Stats{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		sink:    s,
		cfg:     cfg,
		stats:   stats,
		log:     log.With(zap.String("sink", s.Name())),
		backoff: Backoff{Initial: cfg.BackoffInitial, Max: cfg.BackoffMax},
		queue:   make(chan Event, cfg.QueueSize),
		stop:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		dropLog: rateLimitedLog{every: 10 * time.Second},
		kick:    make(chan struct{}, 1),
	}
	r.replay, _ = cfg.Overflow.(Replayer)
	go r.loop()
	return r
}

// Name is the sink's name.
func (r *Runner) Name() string { return r.sink.Name() }

// Sink returns the driven sink (e.g. to call Reopen on SIGHUP).
func (r *Runner) Sink() Sink { return r.sink }

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() StatsSnapshot { return r.stats.Snapshot() }

// Queued is the number of events waiting in the queue (not in flight).
func (r *Runner) Queued() int { return len(r.queue) }

// Publish queues ev for delivery. It never blocks: when the queue is full the
// event goes to Overflow, or is dropped and counted as "queue_full".
func (r *Runner) Publish(ev Event) {
	r.pubMu.RLock()
	if r.closed {
		r.pubMu.RUnlock()
		r.stats.Drop(DropClosed, 1)
		r.dropLog.maybe(r.log, DropClosed, 1)
		return
	}
	if r.replay != nil && r.replay.Pending() > 0 {
		// Older events wait in the spool: keep the order by queueing behind them.
		r.pubMu.RUnlock()
		r.spillOrDrop([]Event{ev}, DropSpoolError, nil)
		return
	}
	select {
	case r.queue <- ev:
		r.pubMu.RUnlock()
		return
	default:
	}
	r.pubMu.RUnlock()
	r.spillOrDrop([]Event{ev}, DropQueueFull, nil)
}

// spillOrDrop hands events to Overflow, or counts them dropped for reason.
func (r *Runner) spillOrDrop(evs []Event, reason string, cause error) {
	if len(evs) == 0 {
		return
	}
	n := uint64(len(evs))
	if ov := r.cfg.Overflow; ov != nil {
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("overflow panicked: %v", p)
				}
			}()
			return ov.Put(evs)
		}()
		if err == nil {
			r.stats.Spooled.Add(n)
			if r.replay != nil {
				select {
				case r.kick <- struct{}{}:
				default:
				}
			}
			return
		}
		cause = errors.Join(cause, fmt.Errorf("overflow: %w", err))
		switch {
		case errors.Is(err, ErrSpoolFull):
			reason = DropSpoolFull
		case r.replay != nil:
			reason = DropSpoolError
		}
	}
	r.stats.Drop(reason, n)
	r.dropLog.maybeErr(r.log, reason, n, cause)
}

// loop is the worker: batch, deliver, until stopped and drained or cancelled.
func (r *Runner) loop() {
	defer close(r.done)
	for {
		if r.replay != nil && len(r.queue) == 0 && r.ctx.Err() == nil && r.replay.Pending() > 0 {
			if !r.replayBatch() {
				break
			}
			continue
		}
		batch, more := r.collect()
		if len(batch) > 0 {
			if !r.deliver(batch) {
				return // abandoned by Close
			}
		}
		if !more {
			break
		}
	}
	if r.ctx.Err() != nil || r.replay != nil {
		r.drainQueue(DropShutdown)
	}
}

// replayBatch delivers the oldest batch held by the replayer and
// acknowledges it. Failed writes are retried with backoff for as long as the
// runner runs (the events are safe on disk meanwhile). It returns false when
// the worker should stop: shutting down with the sink still failing, the
// drain deadline, or Close abandoning the worker; the events stay in the
// replayer for the next run.
func (r *Runner) replayBatch() bool {
	evs, err := r.replay.Peek(r.cfg.BatchSize)
	if err != nil {
		r.log.Error("reading the spool failed", zap.Error(err))
		return sleepCtx(r.ctx, r.backoff.Delay(3), r.stop)
	}
	if len(evs) == 0 {
		if r.replay.Pending() > 0 { // nothing readable yet: do not spin
			return sleepCtx(r.ctx, r.cfg.BackoffInitial, r.stop)
		}
		return true // damaged records were skipped (and counted)
	}
	pending := evs
	for attempt := 0; ; attempt++ {
		// Only an attempt begun after Close is the drain's: one that began
		// earlier may have failed before the sink recovered.
		final := r.stopping()
		w := r.writeOnce(pending, false)
		r.mu.Lock()
		abandoned := r.abandoned
		r.mu.Unlock()
		if abandoned {
			return false
		}
		w.count(r.stats)
		remaining, reason, err := w.remaining, w.reason, w.err
		if reason != "" {
			// The sink will never take these (a panic): count them, do not
			// loop on them.
			r.stats.Drop(reason, uint64(len(remaining)))
			r.dropLog.maybeErr(r.log, reason, uint64(len(remaining)), err)
			remaining = nil
		}
		if len(remaining) == 0 {
			if err := r.replay.Ack(len(evs)); err != nil {
				r.log.Error("acknowledging spooled events failed (they may be sent again)", zap.Error(err))
			}
			return true
		}
		if r.ctx.Err() != nil || final {
			return false // still failing at shutdown: keep them for the next run
		}
		d := r.backoff.Delay(attempt)
		r.log.Warn("sink write of spooled events failed, retrying",
			zap.Int("events", len(remaining)), zap.Int("attempt", attempt+1),
			zap.Duration("backoff", d), zap.Error(err))
		if !sleepCtx(r.ctx, d, r.stop) && r.ctx.Err() != nil {
			return false
		}
		// Woken by Close: one more attempt, the drain's; a failure then ends it.
		r.stats.Retried.Add(uint64(len(remaining)))
		pending = remaining
	}
}

// collect gathers the next batch. more is false when the worker should exit
// after delivering it (stopped and queue empty, or cancelled).
func (r *Runner) collect() (batch []Event, more bool) {
	select {
	case ev := <-r.queue:
		batch = append(make([]Event, 0, min(r.cfg.BatchSize, len(r.queue)+1)), ev)
	case <-r.stop:
		// Closing: take what is left without waiting.
		batch = r.fillNow(nil)
		more = len(batch) > 0 && r.ctx.Err() == nil
		if r.replay != nil && r.ctx.Err() == nil && r.replay.Pending() > 0 {
			more = true // deliver the spool too, until the drain deadline
		}
		return batch, more
	case <-r.kick:
		return nil, true
	case <-r.ctx.Done():
		return nil, false
	}
	if r.cfg.FlushInterval <= 0 || len(batch) >= r.cfg.BatchSize {
		return r.fillNow(batch), true
	}
	t := time.NewTimer(r.cfg.FlushInterval)
	defer t.Stop()
	for len(batch) < r.cfg.BatchSize {
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		case <-t.C:
			return batch, true
		case <-r.stop:
			return r.fillNow(batch), true
		case <-r.ctx.Done():
			return batch, true
		}
	}
	return batch, true
}

// fillNow appends queued events without waiting, up to BatchSize.
func (r *Runner) fillNow(batch []Event) []Event {
	for len(batch) < r.cfg.BatchSize {
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// drainQueue empties the queue into Overflow or drops.
func (r *Runner) drainQueue(reason string) {
	for {
		batch := r.fillNow(nil)
		if len(batch) == 0 {
			return
		}
		r.spillOrDrop(batch, reason, nil)
	}
}

// deliver writes batch, retrying what remains. It returns false when Close
// abandoned the worker (and accounted for the batch itself).
func (r *Runner) deliver(batch []Event) bool {
	r.mu.Lock()
	if r.abandoned {
		r.mu.Unlock()
		r.spillOrDrop(batch, DropShutdown, nil)
		return false
	}
	r.inflight = batch
	r.mu.Unlock()

	pending := batch
	for attempt := 0; ; attempt++ {
		w := r.writeOnce(pending, true)
		r.mu.Lock()
		if r.abandoned {
			r.mu.Unlock()
			return false
		}
		w.count(r.stats)
		remaining, reason, err := w.remaining, w.reason, w.err
		if len(remaining) == 0 {
			r.inflight = nil
			r.mu.Unlock()
			return true
		}
		if reason == "" && (r.ctx.Err() != nil || r.stopping() && r.cfg.Overflow != nil) {
			// At the deadline, or shutting down with a spool to take the
			// events: do not spend the drain time retrying a failing sink.
			reason = DropShutdown
		}
		if reason == "" && r.cfg.MaxRetries >= 0 && attempt >= r.cfg.MaxRetries {
			reason = DropRetriesExhausted
		}
		if reason != "" {
			r.inflight = nil
			r.mu.Unlock()
			r.spillOrDrop(remaining, reason, err)
			return true
		}
		r.inflight = remaining
		r.mu.Unlock()

		d := r.backoff.Delay(attempt)
		r.log.Warn("sink write failed, retrying",
			zap.Int("events", len(remaining)), zap.Int("attempt", attempt+1),
			zap.Duration("backoff", d), zap.Error(err))
		var wake <-chan struct{} // with a spool, Close cuts the wait short
		if r.cfg.Overflow != nil {
			wake = r.stop
		}
		if !sleepCtx(r.ctx, d, wake) {
			r.mu.Lock()
			if r.abandoned {
				r.mu.Unlock()
				return false
			}
			r.inflight = nil
			r.mu.Unlock()
			r.spillOrDrop(remaining, DropShutdown, err)
			return true
		}
		r.stats.Retried.Add(uint64(len(remaining)))
		pending = remaining
	}
}

// writeResult is one Sink.Write and what it left undelivered.
type writeResult struct {
	pending, remaining []Event
	reason             string // set when the remaining events must not be retried
	err                error
	deadLettered       uint64
	sinkSent, sinkFail bool // the sink counted Sent / Failed itself
}

// writeOnce writes pending once and classifies what is left, for both
// delivery paths. An ErrPermanent failure is final for the live queue
// (permanentIsFinal) but kept by the spool until the sink is fixed.
func (r *Runner) writeOnce(pending []Event, permanentIsFinal bool) writeResult {
	dlBefore, sentBefore, failedBefore := r.stats.DeadLettered.Load(), r.stats.Sent.Load(), r.stats.Failed.Load()
	w := writeResult{pending: pending, err: r.write(pending)}
	w.deadLettered = r.stats.DeadLettered.Load() - dlBefore
	w.sinkSent = r.stats.Sent.Load() != sentBefore
	w.sinkFail = r.stats.Failed.Load() != failedBefore
	var re *RetryableError
	var pe *panicError
	switch {
	case w.err == nil:
	case errors.As(w.err, &pe):
		w.remaining, w.reason = pending, DropPanic // poison: never retry or replay it
	case permanentIsFinal && errors.Is(w.err, ErrPermanent):
		w.remaining, w.reason = pending, DropPermanent
	case errors.As(w.err, &re):
		w.remaining = re.Remaining
		if len(w.remaining) > len(pending) {
			w.remaining = w.remaining[:len(pending)] // a sink bug must not grow the batch
		}
	default:
		w.remaining = pending
	}
	return w
}

// count adds the write's Sent (less what the sink dead-lettered) and Failed
// to stats, unless the sink counted them itself.
func (w writeResult) count(stats *Stats) {
	delivered := uint64(len(w.pending) - len(w.remaining))
	delivered -= min(delivered, w.deadLettered)
	if !w.sinkSent {
		stats.Sent.Add(delivered)
	}
	if w.err != nil && !w.sinkFail {
		stats.Failed.Add(1)
	}
}

// stopping reports whether Close has been called.
func (r *Runner) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// panicError is a recovered panic from Sink.Write.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("sink panicked: %v", p.v) }

// write calls Sink.Write, turning a panic into an error.
func (r *Runner) write(batch []Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("sink write panicked; batch dropped",
				zap.Any("panic", p), zap.Int("events", len(batch)),
				zap.ByteString("stack", debug.Stack()))
			err = &panicError{v: p}
		}
	}()
	return r.sink.Write(r.ctx, batch)
}

// sleepCtx waits d; false if ctx ended or wake was closed first.
func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-wake:
		return false
	}
}

// abandonGrace is how long Close waits, after cancelling the worker's
// context at the deadline, for a Write to return before abandoning it.
const abandonGrace = 100 * time.Millisecond

// Close stops intake, delivers what is queued until ctx's deadline (or
// DrainTimeout, whichever is first), then closes the sink within
// CloseTimeout. Events still undelivered at the deadline go to Overflow or
// are dropped as "shutdown". A Write that ignores its cancelled context is
// abandoned (its batch counted as "shutdown"), so Close returns within the
// deadline + ~100 ms + CloseTimeout at worst. Sinks must tolerate Close
// being called while such a Write is still blocked. Close is idempotent.
func (r *Runner) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { r.closeErr = r.close(ctx) })
	return r.closeErr
}

func (r *Runner) close(ctx context.Context) error {
	r.pubMu.Lock()
	r.closed = true
	r.pubMu.Unlock()
	close(r.stop)

	dctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	var errs []error
	select {
	case <-r.done:
	case <-dctx.Done():
		r.cancel()
		t := time.NewTimer(abandonGrace)
		select {
		case <-r.done:
		case <-t.C:
		}
		t.Stop()
		r.mu.Lock()
		select {
		case <-r.done:
			r.mu.Unlock()
		default:
			r.abandoned = true
			left := r.inflight
			r.inflight = nil
			r.mu.Unlock()
			r.spillOrDrop(left, DropShutdown, nil)
			r.log.Error("sink write still blocked at the drain deadline; abandoned")
		}
		r.drainQueue(DropShutdown)
		errs = append(errs, fmt.Errorf("sink %s: drain: %w", r.sink.Name(), dctx.Err()))
	}
	r.cancel()

	if err := r.closeSink(ctx); err != nil {
		errs = append(errs, err)
	}
	if c, ok := r.cfg.Overflow.(io.Closer); ok && r.replay != nil {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", r.sink.Name(), err))
		}
	}
	snap := r.stats.Snapshot()
	r.log.Info("sink closed", zap.Uint64("sent", snap.Sent), zap.Uint64("retried", snap.Retried),
		zap.Uint64("failed", snap.Failed), zap.Uint64("spooled", snap.Spooled),
		zap.Uint64("dead_lettered", snap.DeadLettered), zap.Uint64("dropped", snap.Dropped))
	return errors.Join(errs...)
}

// closeSink runs Sink.Close with its own CloseTimeout budget (the drain may
// have used up ctx) and returns when it does or the budget is spent.
func (r *Runner) closeSink(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CloseTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				res <- fmt.Errorf("sink %s: close panicked: %v", r.sink.Name(), p)
			}
		}()
		res <- r.sink.Close(cctx)
	}()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("sink %s: close: %w", r.sink.Name(), err)
		}
		return nil
	case <-cctx.Done():
		return fmt.Errorf("sink %s: close: %w", r.sink.Name(), cctx.Err())
	}
}

// rateLimitedLog logs drops at most once per interval per reason, with the
// number of events dropped since the last line.
type rateLimitedLog struct {
	every time.Duration
	mu    sync.Mutex
	state map[string]*dropLogState
}

type dropLogState struct {
	last    time.Time
	pending uint64
}

func (l *rateLimitedLog) maybe(log *zap.Logger, reason string, n uint64) {
	l.maybeErr(log, reason, n, nil)
}

func (l *rateLimitedLog) maybeErr(log *zap.Logger, reason string, n uint64, cause error) {
	l.mu.Lock()
	if l.state == nil {
		l.state = map[string]*dropLogState{}
	}
	st := l.state[reason]
	if st == nil {
		st = &dropLogState{}
		l.state[reason] = st
	}
	st.pending += n
	now := time.Now()
	if !st.last.IsZero() && now.Sub(st.last) < l.every {
		l.mu.Unlock()
		return
	}
	count := st.pending
	st.pending, st.last = 0, now
	l.mu.Unlock()
	fields := []zap.Field{zap.String("reason", reason), zap.Uint64("events", count)}
	if cause != nil {
		fields = append(fields, zap.Error(cause))
	}
	log.Warn("sink dropped events", fields...)
}
