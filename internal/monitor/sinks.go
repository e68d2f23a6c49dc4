package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netsentinel/netsentinel/sinks"
)

// SinkStats is what the monitor reads from a sink's runner at scrape time.
type SinkStats interface {
	Stats() sinks.StatsSnapshot
	Queued() int
}

// Spool is a sink's on-disk spool (its size is exported).
type Spool interface{ Bytes() int64 }

// A sink not known to be connected is checked this often.
const (
	probePeriod  = 10 * time.Second
	probeTimeout = 5 * time.Second
)

// failingAfter is how many failed writes in a row make a sink not ready.
const failingAfter = 3

// Sink is one configured sink as the monitor sees it: its counters, its
// spool, and its health, learnt from the writes it carries (Wrap) and, until
// it is known to be connected, from its own Check.
type Sink struct {
	name  string // the redacted spec: never credentials
	stats SinkStats
	spool Spool

	mu        sync.Mutex
	open      bool  // connected: a write succeeded, or Check passed
	openErr   error // why it is not open (the last Check)
	fails     int   // failed writes in a row
	lastErr   error // the last write error
	permanent bool  // the last write failed with sinks.ErrPermanent
	checker   func(context.Context) error
}

// AddSink registers a sink under its redacted name. spool may be nil.
// Call Wrap on the sink before handing it to its runner, and SetStats once
// the runner exists.
func (m *Monitor) AddSink(name string, s sinks.Sink, spool Spool) *Sink {
	sk := &Sink{name: name, spool: spool, open: true}
	if c, ok := s.(interface{ Check(context.Context) error }); ok {
		// A network sink may start degraded: not open until it answers.
		sk.open, sk.openErr, sk.checker = false, errors.New("not checked yet"), c.Check
	}
	m.mu.Lock()
	m.sinks = append(m.sinks, sk)
	m.mu.Unlock()
	go sk.probe(m.ctx, probePeriod, probeTimeout)
	return sk
}

// SetStats attaches the runner whose counters are exported.
func (s *Sink) SetStats(st SinkStats) {
	s.mu.Lock()
	s.stats = st
	s.mu.Unlock()
}

// Wrap returns s with every Write's outcome recorded for readiness.
func (s *Sink) Wrap(inner sinks.Sink) sinks.Sink { return &watched{Sink: inner, h: s} }

type watched struct {
	sinks.Sink
	h *Sink
}

func (w *watched) Write(ctx context.Context, batch []sinks.Event) ([]sinks.Outcome, error) {
	outs, err := w.Sink.Write(ctx, batch)
	w.h.wrote(writeFailure(outs, err))
	return outs, err
}

// writeFailure is why a Write counts as failed for readiness: its error,
// or the first Retry outcome's (an event left undelivered); nil when every
// event was settled (delivered, duplicate, dead-lettered or dropped: the
// sink is talking to its server). A Retry wrapping ErrPermanent wins.
func writeFailure(outs []sinks.Outcome, err error) error {
	var retry error
	for _, o := range outs {
		if o.Status != sinks.Retry {
			continue
		}
		e := o.Err
		if e == nil {
			e = errors.New("event not delivered")
		}
		if errors.Is(e, sinks.ErrPermanent) {
			return e
		}
		if retry == nil {
			retry = e
		}
	}
	if err != nil {
		return err
	}
	return retry
}

func (s *Sink) wrote(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.open, s.openErr, s.fails, s.lastErr, s.permanent = true, nil, 0, nil, false
		return
	}
	s.fails++
	s.lastErr = err
	s.permanent = errors.Is(err, sinks.ErrPermanent)
}

// ready reports whether the sink is open and delivering, or why not.
func (s *Sink) ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.permanent:
		return false, fmt.Sprintf("sink %s failing permanently: %v", s.name, s.lastErr)
	case s.fails >= failingAfter:
		return false, fmt.Sprintf("sink %s failing (%d writes in a row): %v", s.name, s.fails, s.lastErr)
	case !s.open:
		return false, fmt.Sprintf("sink %s not connected: %v", s.name, s.openErr)
	}
	return true, ""
}

// probe runs the sink's Check every period until it is open or ctx ends.
func (s *Sink) probe(ctx context.Context, period, timeout time.Duration) {
	if s.checker == nil {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		s.mu.Lock()
		open := s.open
		s.mu.Unlock()
		if open {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := s.checker(cctx)
		cancel()
		s.mu.Lock()
		if err == nil {
			s.open, s.openErr = true, nil
		} else if !s.open {
			s.openErr = err
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// outcomes are the values of the outcome label of netsentinel_sink_events_total.
var outcomes = []string{"sent", "retried", "duplicate", "dead_lettered", "spooled", "dropped"}

var (
	sinkEventsDesc = prometheus.NewDesc("netsentinel_sink_events_total",
		"Events by sink and outcome (sent, retried, duplicate, dead_lettered, spooled, dropped).", []string{"sink", "outcome"}, nil)
	sinkDroppedDesc = prometheus.NewDesc("netsentinel_sink_dropped_total",
		"Events a sink dropped, by reason.", []string{"sink", "reason"}, nil)
	sinkQueueDesc = prometheus.NewDesc("netsentinel_sink_queue_events",
		"Events waiting in a sink's in-memory queue.", []string{"sink"}, nil)
	spoolBytesDesc = prometheus.NewDesc("netsentinel_spool_bytes",
		"Bytes in a sink's on-disk spool.", []string{"sink"}, nil)
)

// sinkCollector reads every sink's counters at scrape time.
type sinkCollector struct{ m *Monitor }

func (c sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sinkEventsDesc
	ch <- sinkDroppedDesc
	ch <- sinkQueueDesc
	ch <- spoolBytesDesc
}

func (c sinkCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	list := append([]*Sink(nil), c.m.sinks...)
	c.m.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		st := s.stats
		s.mu.Unlock()
		if st == nil {
			continue
		}
		snap := st.Stats()
		vals := []uint64{snap.Sent, snap.Retried, snap.Duplicate, snap.DeadLettered, snap.Spooled, snap.Dropped}
		for i, o := range outcomes {
			ch <- prometheus.MustNewConstMetric(sinkEventsDesc, prometheus.CounterValue, float64(vals[i]), s.name, o)
		}
		for reason, n := range snap.DroppedBy {
			ch <- prometheus.MustNewConstMetric(sinkDroppedDesc, prometheus.CounterValue, float64(n), s.name, reason)
		}
		ch <- prometheus.MustNewConstMetric(sinkQueueDesc, prometheus.GaugeValue, float64(st.Queued()), s.name)
		var spooled int64 // 0 for a sink without a spool (stdout, spool.disabled)
		if s.spool != nil {
			spooled = s.spool.Bytes()
		}
		ch <- prometheus.MustNewConstMetric(spoolBytesDesc, prometheus.GaugeValue, float64(spooled), s.name)
	}
}
