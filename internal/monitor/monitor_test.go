package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/sinks"
)

// flakySink fails while err is set: a strict double for a sink whose
// server comes and goes (the real sinks' failures are covered end to end).
type flakySink struct {
	mu   sync.Mutex
	err  error
	outs []sinks.Outcome // per-event outcomes to return (nil: err's fate)
}

func (f *flakySink) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }
func (f *flakySink) get() error    { f.mu.Lock(); defer f.mu.Unlock(); return f.err }

func (f *flakySink) Name() string { return "flaky" }
func (f *flakySink) Write(context.Context, []sinks.Event) ([]sinks.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outs, f.err
}
func (f *flakySink) setOutcome(o sinks.Outcome) {
	f.mu.Lock()
	f.err, f.outs = nil, []sinks.Outcome{o}
	f.mu.Unlock()
}
func (f *flakySink) Close(context.Context) error { return nil }
func (f *flakySink) Check(context.Context) error { return f.get() }

func TestReadinessFollowsSinkWrites(t *testing.T) {
	m := New("test", time.Second)
	defer m.Close()
	file, err := sinks.NewFile(sinks.FileConfig{Path: filepath.Join(t.TempDir(), "a.ndjson")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close(context.Background())
	fileW := m.AddSink("file:a.ndjson", file, nil).Wrap(file)
	flaky := &flakySink{}
	w := m.AddSink("kafka:k:9092/t", flaky, nil).Wrap(flaky)
	if ok, why := m.Ready(); ok || !strings.Contains(why, "starting") {
		t.Errorf("before SinksOpened: %v %q", ok, why)
	}
	m.SinksOpened()
	// The kafka stand-in has a Check: not open until it answers or a write succeeds.
	ev := []sinks.Event{{ID: "1", Body: []byte(`{}`)}}
	if _, err := fileW.Write(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if ok, why := m.Ready(); !ok {
		t.Fatalf("both sinks delivered, not ready: %s", why)
	}
	flaky.set(errors.New("broker down"))
	for i := range failingAfter {
		_, _ = w.Write(context.Background(), ev)
		ok, why := m.Ready()
		if want := i+1 < failingAfter; ok != want {
			t.Errorf("after %d failed writes: ready %v (%s), want %v", i+1, ok, why, want)
		}
	}
	if _, why := m.Ready(); !strings.Contains(why, "kafka:k:9092/t") || !strings.Contains(why, "broker down") || strings.Contains(why, "file:") {
		t.Errorf("reason %q does not name the failing sink and its error alone", why)
	}
	flaky.set(nil)
	_, _ = w.Write(context.Background(), ev)
	if ok, why := m.Ready(); !ok {
		t.Errorf("recovered sink still not ready: %s", why)
	}
	flaky.set(fmt.Errorf("rejected: %w", sinks.ErrPermanent))
	_, _ = w.Write(context.Background(), ev)
	if ok, why := m.Ready(); ok || !strings.Contains(why, "permanently") {
		t.Errorf("one permanent failure: ready %v %q, want not ready, failing permanently", ok, why)
	}
	// Per-event outcomes count too: a dead-lettered event is settled (the
	// server answered), an event left to retry with a permanent cause is not.
	flaky.setOutcome(sinks.Outcome{Status: sinks.DeadLettered, Err: errors.New("mapping")})
	_, _ = w.Write(context.Background(), ev)
	if ok, why := m.Ready(); !ok {
		t.Errorf("after a dead-lettered event: not ready: %s", why)
	}
	flaky.setOutcome(sinks.Outcome{Status: sinks.Retry, Err: fmt.Errorf("topic gone: %w", sinks.ErrPermanent)})
	_, _ = w.Write(context.Background(), ev)
	if ok, why := m.Ready(); ok || !strings.Contains(why, "topic gone") {
		t.Errorf("event left to retry permanently: ready %v %q, want not ready naming the cause", ok, why)
	}
}

func TestHealthyWithinThreeIntervals(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	m := New("test", 2*time.Second)
	defer m.Close()
	m.now = func() time.Time { return now }
	m.started = now
	if ok, _ := m.Healthy(); !ok {
		t.Error("unhealthy at start")
	}
	now = now.Add(7 * time.Second)
	if ok, why := m.Healthy(); ok || !strings.Contains(why, "no successful poll") {
		t.Errorf("7 s without a poll at a 2 s interval: %v %q", ok, why)
	}
	m.Polled(collector.Stats{})
	now = now.Add(6 * time.Second)
	if ok, why := m.Healthy(); !ok {
		t.Errorf("6 s after a poll (limit 6 s): %q", why)
	}
	now = now.Add(time.Millisecond)
	m.PollFailed()
	if ok, why := m.Healthy(); ok || !strings.Contains(why, "last successful poll 6.001s ago") {
		t.Errorf("a failed poll does not count: %v %q", ok, why)
	}
}

// The endpoint over real HTTP: status codes and one-line bodies.
func TestEndpointStatusCodes(t *testing.T) {
	m := New("test", time.Hour)
	defer m.Close()
	flaky := &flakySink{err: errors.New("connection refused")}
	m.AddSink("elasticsearch:http://127.0.0.1:1", flaky, nil)
	m.SinksOpened()
	srv, err := m.Start("127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/metrics": 200, "/nope": 404} {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d %q, want %d", path, resp.StatusCode, b, want)
		}
		if path == "/readyz" && (strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "not connected")) {
			t.Errorf("/readyz body %q", b)
		}
	}
	if _, err := m.Start(srv.Addr(), zap.NewNop()); err == nil || !strings.Contains(err.Error(), "http.address") {
		t.Errorf("a second listener on %s: %v, want an error naming http.address", srv.Addr(), err)
	}
}

// Lost neighbour notifications add up across polls in their counter.
func TestNeighbourEventsLostCounter(t *testing.T) {
	m := New("test", time.Second)
	defer m.Close()
	m.Polled(collector.Stats{NeighborEventsLost: 3})
	m.Polled(collector.Stats{NeighborEventsLost: 2})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "netsentinel_neighbor_events_lost_total" {
			if got := mf.GetMetric()[0].GetCounter().GetValue(); got != 5 {
				t.Errorf("counter %v, want 5", got)
			}
			return
		}
	}
	t.Error("netsentinel_neighbor_events_lost_total not registered")
}
