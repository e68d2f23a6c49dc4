// Package monitor is NetSentinel's operational HTTP endpoint: Prometheus
// metrics (/metrics), liveness (/healthz: the poll loop is polling) and
// readiness (/readyz: every sink is open and none is failing). It is off
// unless http.address (--http-address) is set.
//
// The pipeline reports polls, alerts, suppressions and reports through the
// Observer methods; sink counters are read from each sink's runner at scrape
// time (sinkCollector), so the sinks package does not depend on Prometheus.
package monitor

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/schemas"
)

// Monitor holds the metrics and the health state of one run.
type Monitor struct {
	reg      *prometheus.Registry
	interval time.Duration
	started  time.Time
	now      func() time.Time
	ctx      context.Context // ends the sink probes (Close)
	cancel   context.CancelFunc
	opened   atomic.Bool // every sink was opened (SinksOpened)

	lastPoll atomic.Int64 // unix nanos of the last successful poll; 0 = none yet

	mu         sync.Mutex
	sinks      []*Sink
	suppressed func() map[string]uint64 // exception name -> alerts suppressed since start

	alerts      *prometheus.CounterVec
	polls       prometheus.Counter
	pollErrors  prometheus.Counter
	pollSeconds prometheus.Histogram
	sockets     prometheus.Gauge
	noPID       prometheus.Gauge
	processes   prometheus.Gauge
	destroyLost prometheus.Counter
	neighLost   prometheus.Counter
	lastReport  prometheus.Gauge
}

// New builds a Monitor for a run polling every interval.
func New(version string, interval time.Duration) *Monitor {
	m := &Monitor{reg: prometheus.NewRegistry(), interval: interval, now: time.Now}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.started = m.now()
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "netsentinel_build_info",
		Help:        "Build facts; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	f(info)
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netsentinel_alerts_total", Help: "Alerts raised, by rule, ATT&CK technique and severity.",
	}, []string{"rule", "technique", "severity"})
	m.polls = prometheus.NewCounter(prometheus.CounterOpts{Name: "netsentinel_polls_total", Help: "Successful polls (collections)."})
	m.pollErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "netsentinel_poll_errors_total", Help: "Polls that failed."})
	m.pollSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netsentinel_poll_duration_seconds", Help: "Time one collection took.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5 ms .. ~10 s
	})
	m.sockets = prometheus.NewGauge(prometheus.GaugeOpts{Name: "netsentinel_sockets", Help: "Sockets seen at the last poll."})
	m.noPID = prometheus.NewGauge(prometheus.GaugeOpts{Name: "netsentinel_sockets_without_pid", Help: "Sockets at the last poll whose owning process could not be read (another user's, without the capabilities)."})
	m.processes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "netsentinel_processes", Help: "Processes seen at the last poll."})
	m.destroyLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "netsentinel_destroy_events_lost_total", Help: "Socket-destroy notifications the kernel dropped (short connections possibly missed)."})
	m.neighLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "netsentinel_neighbor_events_lost_total", Help: "Neighbour-table (ARP/NDP) change notifications lost (a change reverted within a poll possibly missed)."})
	m.lastReport = prometheus.NewGauge(prometheus.GaugeOpts{Name: "netsentinel_last_report_timestamp_seconds", Help: "Unix time the last report was written; 0 before the first."})
	for _, c := range []prometheus.Collector{m.alerts, m.polls, m.pollErrors, m.pollSeconds,
		m.sockets, m.noPID, m.processes, m.destroyLost, m.neighLost, m.lastReport} {
		f(c)
	}
	f(sinkCollector{m})
	f(suppressedCollector{m})
	return m
}

// SinksOpened marks the end of start-up: every sink was added. /readyz
// fails before.
func (m *Monitor) SinksOpened() { m.opened.Store(true) }

// Close stops the sink probes.
func (m *Monitor) Close() { m.cancel() }

// Registry is where the metrics live (for tests and extra collectors).
func (m *Monitor) Registry() *prometheus.Registry { return m.reg }

// Polled records a successful poll.
func (m *Monitor) Polled(st collector.Stats) {
	m.lastPoll.Store(m.now().UnixNano())
	m.polls.Inc()
	m.pollSeconds.Observe(st.Duration.Seconds())
	m.sockets.Set(float64(st.Sockets))
	m.noPID.Set(float64(st.SocketsNoPID))
	m.processes.Set(float64(st.Processes))
	m.destroyLost.Add(float64(st.DestroyEventsLost))
	m.neighLost.Add(float64(st.NeighborEventsLost))
}

// PollFailed records a failed poll.
func (m *Monitor) PollFailed() { m.pollErrors.Inc() }

// Alerted counts an emitted alert.
func (m *Monitor) Alerted(a *detect.Alert) {
	m.alerts.WithLabelValues(a.RuleID, a.Technique, strings.ToLower(schemas.SeverityName(a.Severity))).Inc()
}

// SetSuppressed gives the source of netsentinel_alerts_suppressed_total:
// alerts each exception matched (and that were not emitted) since the start,
// read at scrape time (detect.Engine.Exceptions().Snapshot, plus every
// configured exception at 0).
func (m *Monitor) SetSuppressed(counts func() map[string]uint64) {
	m.mu.Lock()
	m.suppressed = counts
	m.mu.Unlock()
}

var suppressedDesc = prometheus.NewDesc("netsentinel_alerts_suppressed_total",
	"Alerts an exception matched (not emitted), by exception name.", []string{"exception"}, nil)

type suppressedCollector struct{ m *Monitor }

func (c suppressedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- suppressedDesc }

func (c suppressedCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	fn := c.m.suppressed
	c.m.mu.Unlock()
	if fn == nil {
		return
	}
	for name, n := range fn() {
		ch <- prometheus.MustNewConstMetric(suppressedDesc, prometheus.CounterValue, float64(n), name)
	}
}

// Reported records that a window report was written at t.
func (m *Monitor) Reported(t time.Time) { m.lastReport.Set(float64(t.UnixNano()) / 1e9) }
