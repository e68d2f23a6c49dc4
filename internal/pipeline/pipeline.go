// Package pipeline runs NetSentinel: tick → collect → detect → format →
// publish to every sink's runner; at the end of each window it writes the
// report. Publishing never blocks (each sink has its own bounded queue), so a
// slow sink cannot delay collection or detection.
//
// Shutdown order (SIGINT/SIGTERM, --duration elapsed, --once, or the end of a
// replayed recording): stop collecting, drain every sink up to the drain
// deadline, then write the final report, so its per-sink counts are final.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// Output is one configured sink: its runner (which holds the sink, its
// buffer and its counters) and its route.
type Output struct {
	Name   string
	Runner *sinks.Runner
	// Route selects the alerts this sink gets (zero: all); Reload replaces it.
	Route sinks.Route
}

// Config controls timing and reports.
type Config struct {
	Interval time.Duration // poll interval
	Duration time.Duration // 0 = until stopped
	Window   time.Duration // report window; 0 = Duration (or 5m when Duration is 0)
	Once     bool
	// Paced is false for replays: snapshots are processed back to back and
	// the run ends when the source returns io.EOF.
	Paced        bool
	ReportPath   string
	DrainTimeout time.Duration
	HostID       string
	// StateDir, when set, holds the cooldown table saved at every window end
	// and at shutdown (see internal/state).
	StateDir string
}

// Pipeline wires a source, the engine, a formatter and outputs.
type Pipeline struct {
	cfg      Config
	src      collector.Source
	eng      *detect.Engine
	format   schemas.Formatter
	outs     []Output
	log      *zap.Logger
	report   ReportFunc
	recorder func(*collector.Snapshot) error
	observer Observer
	metrics  Metrics

	routes  atomic.Pointer[[]sinks.Route] // by index of outs
	excBase map[string]uint64             // exception counts at the window start
	// prev is the snapshot before the current one, handed back to a
	// recycling source (collector.Recycler) once a newer one replaced it
	// everywhere: never with an observer, which may still hold it.
	prev *collector.Snapshot
}

// Observer sees every poll: its snapshot and the alerts detected in it. It is
// called on the pipeline's goroutine after the alerts were published, so it
// must return at once and never block (the dashboard keeps only the latest
// snapshot in a one-slot mailbox); it must not modify what it is given.
type Observer func(snap *collector.Snapshot, alerts []detect.Alert)

// Metrics is told about polls, alerts and reports (internal/monitor serves
// them). Its methods are called on the pipeline's goroutine and must return
// at once.
type Metrics interface {
	Polled(st collector.Stats) // a successful poll
	PollFailed()               // a failed poll
	Alerted(a *detect.Alert)   // an alert formatted and handed to the sinks
	Reported(t time.Time)      // a window report written at t
}

// NoMetrics is a Metrics that does nothing: a pipeline's own until
// SetMetrics.
type NoMetrics struct{}

func (NoMetrics) Polled(collector.Stats) {}
func (NoMetrics) PollFailed()            {}
func (NoMetrics) Alerted(*detect.Alert)  {}
func (NoMetrics) Reported(time.Time)     {}

// ReportFunc writes the report of window w to path.
type ReportFunc func(w *Window, path string) error

// Window accumulates what one report covers.
type Window struct {
	Start, End time.Time
	Alerts     []detect.Alert
	Last       *collector.Snapshot
	Polls      int
	PollErrors int
	Errors     map[string]int // collector sub-source errors by message
	CollectDur time.Duration  // total collection time
	MaxCollect time.Duration
	FormatErrs int
	// Suppressed counts alerts silenced per exception in the window (set
	// when the window's report is written).
	Suppressed map[string]uint64
}

// New builds a pipeline.
func New(cfg Config, src collector.Source, eng *detect.Engine, f schemas.Formatter, outs []Output, report ReportFunc, log *zap.Logger) *Pipeline {
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	p := &Pipeline{cfg: cfg, src: src, eng: eng, format: f, outs: outs, report: report, log: log, metrics: NoMetrics{}}
	routes := make([]sinks.Route, len(outs))
	for i, o := range outs {
		routes[i] = o.Route
	}
	p.routes.Store(&routes)
	return p
}

// SetRecorder records every snapshot (netsentinel record).
func (p *Pipeline) SetRecorder(fn func(*collector.Snapshot) error) { p.recorder = fn }

// SetObserver registers fn to see every poll (netsentinel --dashboard).
func (p *Pipeline) SetObserver(fn Observer) { p.observer = fn }

// SetMetrics reports polls, alerts and reports to m (--http-address).
func (p *Pipeline) SetMetrics(m Metrics) {
	if m != nil {
		p.metrics = m
	}
}

func (p *Pipeline) windowLen() time.Duration {
	switch {
	case p.cfg.Window > 0:
		return p.cfg.Window
	case p.cfg.Duration > 0:
		return p.cfg.Duration
	default:
		return 5 * time.Minute
	}
}

// continuous reports whether each window gets its own report file.
func (p *Pipeline) continuous() bool {
	if p.cfg.Once {
		return false
	}
	return p.cfg.Duration == 0 || p.windowLen() < p.cfg.Duration
}

// Run blocks until the run ends; it always drains sinks and writes the final
// report, even when ctx is cancelled.
func (p *Pipeline) Run(ctx context.Context) error {
	start := time.Now()
	var deadline <-chan time.Time
	if p.cfg.Duration > 0 && p.cfg.Paced && !p.cfg.Once {
		t := time.NewTimer(p.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	w := &Window{Start: start, Errors: map[string]int{}}
	if !p.cfg.Paced {
		w.Start = time.Time{} // set from the first replayed snapshot
	}
	var tick <-chan time.Time
	if p.cfg.Paced {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	var runErr error
loop:
	for {
		done, err := p.cycle(ctx, &w)
		if err != nil {
			runErr = err
			break
		}
		if done || p.cfg.Once {
			break
		}
		if !p.cfg.Paced {
			if ctx.Err() != nil {
				break
			}
			continue
		}
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case <-tick:
		}
	}
	switch {
	case !p.cfg.Paced && w.Last != nil:
		// A replayed snapshot stands for one poll interval.
		w.End = w.Last.Time.Add(p.cfg.Interval)
	case !p.cfg.Paced:
		w.End = w.Start
	default:
		w.End = time.Now()
	}
	p.drain()
	if err := p.writeReport(w, true); err != nil && runErr == nil {
		runErr = fmt.Errorf("final report: %w", err)
	}
	if err := p.src.Close(); err != nil {
		p.log.Warn("closing collector", zap.Error(err))
	}
	return runErr
}

// rollWindows closes the current window (and any empty ones after it) when
// snapshot time t has passed its end. Windows are aligned to the first
// window's start and cut by snapshot time, so a replay cuts them exactly as
// the live run did.
func (p *Pipeline) rollWindows(w **Window, t time.Time) {
	if !p.continuous() {
		return
	}
	n := p.windowLen()
	for i := 0; t.Sub((*w).Start) >= n; i++ {
		end := (*w).Start.Add(n)
		if i >= 2 && t.Sub(end) >= n {
			// A long gap (the host slept, or a sparse recording): one empty
			// report marks it instead of one per missed window.
			end = t.Add(-t.Sub((*w).Start) % n)
		}
		(*w).End = end
		_ = p.writeReport(*w, false) // logged; the next window may succeed
		*w = &Window{Start: end, Errors: map[string]int{}}
	}
}

// cycle runs one collect → detect → publish step. done is true when the
// source is exhausted (replay).
func (p *Pipeline) cycle(ctx context.Context, wp **Window) (done bool, err error) {
	snap, err := p.src.Collect(ctx)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	w := *wp
	if err != nil {
		if ctx.Err() != nil {
			return true, nil
		}
		w.PollErrors++
		p.metrics.PollFailed()
		p.log.Error("collection failed", zap.Error(err))
		return false, nil
	}
	if w.Start.IsZero() {
		w.Start = snap.Time
	}
	p.rollWindows(wp, snap.Time)
	w = *wp
	w.Polls++
	p.metrics.Polled(snap.Stats)
	w.CollectDur += snap.Stats.Duration
	if snap.Stats.Duration > w.MaxCollect {
		w.MaxCollect = snap.Stats.Duration
	}
	for _, e := range snap.Stats.Errors {
		if len(w.Errors) < 100 {
			w.Errors[e]++
		}
	}
	if p.recorder != nil {
		if err := p.recorder(snap); err != nil {
			return true, err
		}
	}
	w.Last = snap
	alerts := p.eng.Run(snap)
	for _, a := range alerts {
		w.Alerts = append(w.Alerts, a)
		if !p.publish(&a) {
			w.FormatErrs++ // in the report's format_errors; offered to no sink
		}
	}
	if p.observer != nil {
		p.observer(snap, alerts)
	} else if r, ok := p.src.(collector.Recycler); ok {
		// The previous snapshot is no window's Last any more (its report,
		// if its window closed, was written above) and the engine keeps no
		// socket past Run: its memory can hold the next dump.
		if p.prev != nil {
			r.Recycle(p.prev)
		}
		p.prev = snap
	}
	if ce := p.log.Check(zap.DebugLevel, "poll"); ce != nil {
		ce.Write(zap.Int("poll", w.Polls), zap.Duration("collect", snap.Stats.Duration),
			zap.Int("sockets", len(snap.Sockets)), zap.Int("processes", len(snap.Processes)),
			zap.Int("destroy_events", snap.Stats.DestroyEvents), zap.Int("alerts", len(alerts)))
	}
	return false, nil
}

// publish formats a and offers it to every sink; false when it could not
// be formatted (logged; no sink sees it).
func (p *Pipeline) publish(a *detect.Alert) bool {
	body, err := p.format.Format(a)
	if err != nil {
		p.log.Error("formatting alert; not shipped", zap.String("rule", a.RuleID), zap.Error(err))
		return false
	}
	p.metrics.Alerted(a)
	ev := sinks.Event{ID: a.ID, Body: body, Fields: map[string]string{
		"event.id":  a.ID,
		"rule":      a.RuleID,
		"technique": a.Technique,
		"severity":  strconv.Itoa(int(a.Severity)),
		"host.id":   p.cfg.HostID,
	}}
	routes := *p.routes.Load()
	for i, o := range p.outs {
		pass := routes[i].Match(ev)
		o.Runner.CountRouted(pass)
		if !pass {
			continue
		}
		o.Runner.Publish(ev)
	}
	return true
}

// drain closes every runner concurrently, each bounded by the drain deadline.
func (p *Pipeline) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, o := range p.outs {
		wg.Add(1)
		go func(o Output) {
			defer wg.Done()
			if err := o.Runner.Close(ctx); err != nil {
				p.log.Warn("sink did not drain cleanly", zap.String("sink", o.Name), zap.Error(err))
			}
		}(o)
	}
	wg.Wait()
}

// writeReport writes a window's report; a failure is logged (the run goes
// on: alerts still flow to the sinks) and returned.
func (p *Pipeline) writeReport(w *Window, final bool) error {
	path := p.cfg.ReportPath
	if p.continuous() {
		path = schemas.WindowReportPath(p.cfg.ReportPath, w.End)
	}
	w.Suppressed = p.windowSuppressed()
	p.saveState(w.End)
	if err := p.report(w, path); err != nil {
		p.log.Error("writing report", zap.String("path", path), zap.Error(err))
		return err
	}
	p.metrics.Reported(time.Now())
	p.log.Info("report written", zap.String("path", path), zap.Int("alerts", len(w.Alerts)), zap.Bool("final", final))
	return nil
}
