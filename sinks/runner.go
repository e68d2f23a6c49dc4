package sinks

import (
	"context"
	"errors"
	"fmt"
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
	DropRejected         = "rejected"          // a Dropped outcome naming no reason
)

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
	// is retried before it is dropped (default 10; negative: retry until
	// shutdown). A durable Buffer keeps retrying: its events are safe.
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
	// Buffer holds the events waiting for the sink (nil: a MemoryBuffer of
	// QueueSize events). With a durable Buffer (the Spool), QueueSize bounds
	// the hand-over queue between Publish and the buffer instead. The
	// runner closes it after the drain.
	Buffer Buffer `yaml:"-"`
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

// Runner drives one Sink through one Buffer: Publish puts events in (never
// blocking, never touching the disk), and one worker goroutine peeks the
// oldest batch, writes it, and acknowledges it, retrying with one backoff.
//
// With a memory buffer Publish appends to it directly. With a durable
// buffer (the disk spool) Publish hands the event to a bounded queue that a
// second goroutine, the spooler, empties into the spool as soon as it can
// (normally well under a millisecond later): every event is on disk, and
// survives a crash, long before the sink is tried, and a slow disk (an
// fsync, a stall) delays only the spooler, never the caller.
//
// Counting: the runner alone counts. Each Write returns one Outcome per
// event, and the runner adds them up: Delivered and Duplicate are sent
// (Duplicate also counted apart), DeadLettered and Dropped (by the sink's
// reason) are settled, Retry events are written again (counted as
// retried) or dropped as permanent, and each Outcome's Resent adds the
// sink's own re-sends to retried. A Write with an error or a Retry counts
// one failed write. Sinks count nothing; the spool counts its damaged
// records as drops.
type Runner struct {
	sink    Sink
	cfg     RunnerConfig
	stats   *Stats
	log     *zap.Logger
	backoff Backoff
	buf     Buffer
	mem     *MemoryBuffer // buf, when it is one (Publish's fast path)
	durable bool

	intake    chan Event    // durable buffers: Publish -> spooler
	spoolDone chan struct{} // closed when the spooler exits
	kick      chan struct{} // wakes the worker when the buffer gains events

	pubMu  sync.RWMutex // held for reading by Publish, for writing by Close
	closed bool

	stop   chan struct{}      // closed by Close: drain, then exit
	ctx    context.Context    // cancelled at the drain deadline
	cancel context.CancelFunc //
	done   chan struct{}      // closed when the worker exits

	// mu serialises the worker's accounting of a write with Close
	// abandoning a stuck worker, so exactly one of them counts the batch.
	mu        sync.Mutex
	headDone  int // events of the peeked batch already accounted for
	abandoned bool
	leftOnce  sync.Once

	closeOnce sync.Once
	closeErr  error

	dropLog rateLimitedLog
}

// NewRunner starts the worker goroutine for s. stats receives the counters
// (shared with the sink's spool, which counts damaged records); nil
// allocates one.
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
		sink:      s,
		cfg:       cfg,
		stats:     stats,
		log:       log.With(zap.String("sink", s.Name())),
		backoff:   Backoff{Initial: cfg.BackoffInitial, Max: cfg.BackoffMax},
		buf:       cfg.Buffer,
		stop:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		spoolDone: make(chan struct{}),
		dropLog:   rateLimitedLog{every: 10 * time.Second},
		kick:      make(chan struct{}, 1),
	}
	if r.buf == nil {
		r.buf = NewMemoryBuffer(cfg.QueueSize)
	}
	r.durable = r.buf.Durable()
	r.mem, _ = r.buf.(*MemoryBuffer)
	if r.durable {
		r.intake = make(chan Event, cfg.QueueSize)
		go r.spoolLoop()
	} else {
		close(r.spoolDone)
	}
	go r.loop()
	return r
}

// Name is the sink's name.
func (r *Runner) Name() string { return r.sink.Name() }

// Sink returns the driven sink (e.g. to call Reopen on SIGHUP).
func (r *Runner) Sink() Sink { return r.sink }

// Stats returns a snapshot of the counters (sent, retried, duplicate,
// dead_lettered, spooled, failed, dropped by reason) with the buffer's
// state: safe to call at any time from any goroutine (metrics, dashboard).
func (r *Runner) Stats() StatsSnapshot {
	s := r.stats.Snapshot()
	s.Buffer = BufferMemory
	if r.durable {
		s.Buffer = BufferDisk
	}
	s.Queued, s.BufferBytes = r.Queued(), r.buf.Bytes()
	return s
}

// CountRouted counts an alert offered to this sink, and whether its route
// let it through (the pipeline's routing counters: offered, filtered).
func (r *Runner) CountRouted(passed bool) {
	r.stats.Offered.Add(1)
	if !passed {
		r.stats.Filtered.Add(1)
	}
}

// Queued is the number of events waiting for the sink: in the buffer
// (in-flight batch included) and, for a durable buffer, not yet in it.
func (r *Runner) Queued() int { return r.buf.Len() + len(r.intake) }

// Publish queues ev for delivery. It never blocks and never does I/O: when
// the queue is full the event is dropped and counted as "queue_full".
func (r *Runner) Publish(ev Event) {
	r.pubMu.RLock()
	defer r.pubMu.RUnlock()
	var ok bool
	switch {
	case r.closed:
		r.drop(1, DropClosed, nil)
		return
	case r.durable:
		select {
		case r.intake <- ev:
			return
		default:
		}
	case r.mem != nil:
		ok = r.mem.push(ev)
	default:
		ok = r.buf.Put([]Event{ev}) == nil
	}
	if !ok {
		r.drop(1, DropQueueFull, nil)
		return
	}
	r.wake()
}

func (r *Runner) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// drop counts n events dropped for reason and logs it (rate-limited).
func (r *Runner) drop(n int, reason string, cause error) {
	if n <= 0 {
		return
	}
	r.stats.Drop(reason, uint64(n))
	r.dropLog.maybeErr(r.log, reason, uint64(n), cause)
}

// spoolBatch bounds the events the spooler writes in one Put.
const spoolBatch = 512

// spoolLoop moves published events from the intake queue into the durable
// buffer, as they arrive, until Close; then it moves what is left.
func (r *Runner) spoolLoop() {
	defer close(r.spoolDone)
	batch := make([]Event, 0, spoolBatch)
	for {
		select {
		case ev := <-r.intake:
			batch = r.takeQueued(append(batch[:0], ev))
			r.putDurable(batch)
		case <-r.stop:
			for {
				if batch = r.takeQueued(batch[:0]); len(batch) == 0 {
					return
				}
				r.putDurable(batch)
			}
		}
	}
}

// takeQueued appends to batch what the intake queue holds now, without
// waiting, up to spoolBatch events.
func (r *Runner) takeQueued(batch []Event) []Event {
	for len(batch) < spoolBatch {
		select {
		case ev := <-r.intake:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// putDurable appends to the durable buffer, counting Spooled or drops.
func (r *Runner) putDurable(batch []Event) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("buffer panicked: %v", p)
			}
		}()
		return r.buf.Put(batch)
	}()
	if err == nil {
		r.stats.Spooled.Add(uint64(len(batch)))
		r.wake()
		return
	}
	reason := DropSpoolError
	switch {
	case errors.Is(err, ErrSpoolFull):
		reason = DropSpoolFull
	case errors.Is(err, ErrSpoolClosed):
		reason = DropShutdown
	}
	r.drop(len(batch), reason, err)
}

// loop is the worker: peek, write, ack, until stopped and drained,
// cancelled at the drain deadline, or abandoned by Close.
func (r *Runner) loop() {
	defer close(r.done)
	for r.ctx.Err() == nil {
		evs, err := r.buf.Peek(r.cfg.BatchSize)
		if err != nil {
			r.log.Error("reading the buffer failed", zap.Error(err))
			if !sleepCtx(r.ctx, r.backoff.Delay(3), r.stop) && r.finished() {
				break
			}
			continue
		}
		if len(evs) == 0 {
			if r.buf.Len() > 0 {
				continue // damaged records were skipped (and counted)
			}
			if !r.waitForEvents() {
				break
			}
			continue
		}
		if len(evs) < r.cfg.BatchSize && r.cfg.FlushInterval > 0 && !r.stopping() {
			r.waitToFill()
			if evs, err = r.buf.Peek(r.cfg.BatchSize); err != nil || len(evs) == 0 {
				continue
			}
		}
		if !r.deliver(evs) {
			break
		}
	}
	if !r.durable {
		r.dropLeftover() // at the drain deadline: what is still in memory is lost
	}
}

// waitForEvents waits until the buffer may hold events. false: the worker
// is done (stopped with nothing left, or cancelled).
func (r *Runner) waitForEvents() bool {
	select {
	case <-r.kick:
		return true
	case <-r.ctx.Done():
		return false
	case <-r.stop:
	}
	// Stopping: wait for the spooler's last events, then stop if none.
	select {
	case <-r.spoolDone:
	case <-r.ctx.Done():
		return false
	}
	return r.buf.Len() > 0
}

// finished reports whether the worker should exit after a failure:
// cancelled, or stopping with a durable buffer to keep the events.
func (r *Runner) finished() bool {
	return r.ctx.Err() != nil || r.durable && r.stopping()
}

// waitToFill waits up to FlushInterval for the buffer to hold a full batch.
func (r *Runner) waitToFill() {
	t := time.NewTimer(r.cfg.FlushInterval)
	defer t.Stop()
	for r.buf.Len() < r.cfg.BatchSize {
		select {
		case <-r.kick:
		case <-t.C:
			return
		case <-r.stop:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// deliver writes the peeked batch evs until every event is delivered or
// disposed of, then acknowledges it. It returns false when the worker
// should exit: abandoned by Close, cancelled at the drain deadline, or
// stopping with a durable buffer while the sink still fails (the events
// stay there for the next run).
func (r *Runner) deliver(evs []Event) bool {
	pending := evs
	for attempt := 0; ; attempt++ {
		// Only an attempt begun after Close is the drain's: one that began
		// earlier may have failed before the sink recovered.
		final := r.stopping()
		w := r.writeOnce(pending, !r.durable)
		r.mu.Lock()
		if r.abandoned {
			r.mu.Unlock()
			return false
		}
		r.count(w)
		remaining, reason, err := w.remaining, w.reason, w.err
		if reason == "" && !r.durable && r.cfg.MaxRetries >= 0 && attempt >= r.cfg.MaxRetries && len(remaining) > 0 {
			reason = DropRetriesExhausted
		}
		if reason != "" {
			// The sink will never take these: count them, do not loop on them.
			r.drop(len(remaining), reason, err)
			remaining = nil
		}
		if len(remaining) == 0 {
			r.headDone = 0
			r.mu.Unlock()
			if err := r.buf.Ack(len(evs)); err != nil {
				r.log.Error("acknowledging delivered events failed (they may be sent again)", zap.Error(err))
			}
			return true
		}
		r.headDone = len(evs) - len(remaining)
		r.mu.Unlock()
		if r.ctx.Err() != nil || final && r.durable {
			return false // a durable buffer keeps them for the next run
		}
		d := r.backoff.Delay(attempt)
		r.log.Warn("sink write failed, retrying",
			zap.Int("events", len(remaining)), zap.Int("attempt", attempt+1),
			zap.Duration("backoff", d), zap.Error(err))
		var wake <-chan struct{} // with a durable buffer, Close cuts the wait short
		if r.durable {
			wake = r.stop
		}
		if !sleepCtx(r.ctx, d, wake) && r.ctx.Err() != nil {
			return false
		}
		// Woken by Close: one more attempt, the drain's; a failure then ends it.
		r.stats.Retried.Add(uint64(len(remaining)))
		pending = remaining
	}
}

// dropLeftover counts what a memory buffer still holds as dropped at
// shutdown, once (by the worker at the deadline, or by Close when it
// abandons a stuck worker).
func (r *Runner) dropLeftover() {
	r.leftOnce.Do(func() {
		r.mu.Lock()
		n := r.buf.Len() - r.headDone
		r.mu.Unlock()
		r.drop(n, DropShutdown, nil)
	})
}

// writeResult is one Sink.Write, judged: its outcomes and what is left
// to retry.
type writeResult struct {
	pending   []Event
	outs      []Outcome // one per pending event
	remaining []Event   // the Retry ones the runner will try again
	reason    string    // set when all of remaining must not be retried
	err       error
	final     bool // Retry outcomes wrapping ErrPermanent are dropped
}

// writeOnce writes pending once and judges the outcomes. An ErrPermanent
// Retry is final for a memory buffer (permanentIsFinal) but kept by a
// durable one until the sink is fixed.
func (r *Runner) writeOnce(pending []Event, permanentIsFinal bool) writeResult {
	outs, err := r.write(pending)
	w := writeResult{pending: pending, err: err, final: permanentIsFinal}
	var pe *panicError
	if errors.As(err, &pe) {
		w.remaining, w.reason = pending, DropPanic // poison: never retry or replay it
		return w
	}
	w.outs = normalizeOutcomes(pending, outs, err)
	for i, o := range w.outs {
		if o.Status == Retry && !(permanentIsFinal && errors.Is(o.Err, ErrPermanent)) {
			w.remaining = append(w.remaining, pending[i])
		}
	}
	return w
}

// normalizeOutcomes gives one outcome per event: nil outcomes mean every
// event shares err's fate; a count that does not match the batch is a sink
// bug, and nothing it said is trusted (all Retry).
func normalizeOutcomes(pending []Event, outs []Outcome, err error) []Outcome {
	if outs != nil && len(outs) == len(pending) {
		return outs
	}
	if outs != nil {
		err = fmt.Errorf("sink returned %d outcomes for %d events (%v)", len(outs), len(pending), err)
	}
	outs = make([]Outcome, len(pending))
	if err != nil {
		for i := range outs {
			outs[i] = Outcome{Status: Retry, Err: err}
		}
	}
	return outs
}

// count turns the write's outcomes into the counters: the runner alone
// counts sent, duplicate, dead-lettered, retried (the sink's own re-sends),
// drops and failed writes.
func (r *Runner) count(w writeResult) {
	failed := w.err != nil
	var permanent int
	var permErr error
	for _, o := range w.outs {
		r.stats.Retried.Add(uint64(max(o.Resent, 0)))
		switch o.Status {
		case Delivered:
			r.stats.Sent.Add(1)
		case Duplicate:
			r.stats.Sent.Add(1)
			r.stats.Duplicate.Add(1)
		case DeadLettered:
			r.stats.DeadLettered.Add(1)
		case Dropped:
			reason := o.Reason
			if reason == "" {
				reason = DropRejected
			}
			r.stats.Drop(reason, 1) // the sink logged why
		case Retry:
			failed = true
			if w.final && errors.Is(o.Err, ErrPermanent) {
				permanent, permErr = permanent+1, o.Err
			}
		default:
			failed = true // unknown status: kept for retry
		}
	}
	r.drop(permanent, DropPermanent, permErr)
	if failed || w.reason != "" {
		r.stats.Failed.Add(1)
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
func (r *Runner) write(batch []Event) (outs []Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("sink write panicked; batch dropped",
				zap.Any("panic", p), zap.Int("events", len(batch)),
				zap.ByteString("stack", debug.Stack()))
			outs, err = nil, &panicError{v: p}
		}
	}()
	return r.sink.Write(r.ctx, batch)
}

// abandonGrace is how long Close waits, after cancelling the worker's
// context at the deadline, for a Write to return before abandoning it.
const abandonGrace = 100 * time.Millisecond

// Close stops intake, delivers what is buffered until ctx's deadline (or
// DrainTimeout, whichever is first), then closes the sink and the buffer
// within CloseTimeout each. A durable buffer keeps what is undelivered for
// the next run (a sink still failing at Close gets one more attempt, not
// the whole deadline); with a memory buffer it is dropped as "shutdown". A
// Write that ignores its cancelled context is abandoned, so Close returns
// within the deadline + ~100 ms + 2×CloseTimeout at worst. Sinks must
// tolerate Close being called while such a Write is still blocked. Close
// is idempotent.
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
			r.mu.Unlock()
			r.log.Error("sink write still blocked at the drain deadline; abandoned")
			if !r.durable {
				r.dropLeftover()
			}
		}
		errs = append(errs, fmt.Errorf("sink %s: drain: %w", r.sink.Name(), dctx.Err()))
	}
	// The spooler moves what is left of the intake queue to the disk; one
	// stuck on a stalled disk at the deadline loses what it has not taken.
	if r.durable {
		select {
		case <-r.spoolDone:
		case <-dctx.Done():
			r.drainIntake()
		}
	}
	r.cancel()

	if err := r.bounded(ctx, "close", r.sink.Close); err != nil {
		errs = append(errs, err)
	}
	if err := r.bounded(ctx, "buffer close", func(context.Context) error { return r.buf.Close() }); err != nil {
		errs = append(errs, err)
	}
	snap := r.stats.Snapshot()
	r.log.Info("sink closed", zap.Uint64("sent", snap.Sent), zap.Uint64("retried", snap.Retried),
		zap.Uint64("failed", snap.Failed), zap.Uint64("spooled", snap.Spooled),
		zap.Uint64("dead_lettered", snap.DeadLettered), zap.Uint64("dropped", snap.Dropped),
		zap.Int("left_in_buffer", r.buf.Len()))
	return errors.Join(errs...)
}

// drainIntake counts the events still in the intake queue as dropped.
func (r *Runner) drainIntake() {
	for {
		select {
		case <-r.intake:
			r.drop(1, DropShutdown, nil)
		default:
			return
		}
	}
}

// bounded runs fn with its own CloseTimeout budget (the drain may have used
// up ctx) and returns when it does or the budget is spent.
func (r *Runner) bounded(ctx context.Context, what string, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CloseTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				res <- fmt.Errorf("sink %s: %s panicked: %v", r.sink.Name(), what, p)
			}
		}()
		res <- fn(cctx)
	}()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("sink %s: %s: %w", r.sink.Name(), what, err)
		}
		return nil
	case <-cctx.Done():
		return fmt.Errorf("sink %s: %s: %w", r.sink.Name(), what, cctx.Err())
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
