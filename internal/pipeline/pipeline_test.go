package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// recording writes n snapshots, step apart, each with a fresh connection to
// a suspicious port (a new entity, so every snapshot alerts once).
func recording(t *testing.T, n int, step time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r, err := collector.CreateRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		ts := t0.Add(time.Duration(i) * step)
		pid := int32(100 + i)
		snap := &collector.Snapshot{
			Time: ts, Hostname: "h",
			Processes: map[int32]*collector.Process{pid: {PID: pid, PPID: 1, Name: "ncat", StartTime: ts}},
			Sockets: []collector.Socket{{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(pid), FirstSeen: ts,
				Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(40000+i)),
				Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}), 4444)}},
		}
		if err := r.Write(snap); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type syncBuf = testserver.SyncBuffer

func newPipeline(t *testing.T, cfg Config, src collector.Source, out *syncBuf, outs ...Output) *Pipeline {
	t.Helper()
	if cfg.ReportPath == "" {
		// Never the working directory: tests do not write into the source tree.
		cfg.ReportPath = filepath.Join(t.TempDir(), "report.json")
	}
	eng, err := detect.NewEngine(detect.Config{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f, err := schemas.NewFormatter("ecs", schemas.Host{Hostname: "h", Name: "h", ID: "id"}, schemas.Meta{Version: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stats := &sinks.Stats{}
	st := sinks.NewStdout(out)
	outs = append([]Output{{Name: "stdout", Runner: sinks.NewRunner(st, sinks.RunnerConfig{}, stats, zap.NewNop())}}, outs...)
	report := func(w *Window, path string) error {
		ss := map[string]schemas.SinkCounters{}
		for _, o := range outs {
			st := o.Runner.Stats()
			ss[o.Name] = schemas.SinkCounters{Sent: st.Sent, Spooled: st.Spooled, Offered: st.Offered,
				Filtered: st.Filtered, Dropped: st.Dropped, DroppedBy: st.DroppedBy}
		}
		return schemas.WriteReportAtomic(path, schemas.BuildReport(schemas.ReportInput{
			Alerts: w.Alerts, Snapshot: w.Last, WindowStart: w.Start, WindowEnd: w.End, Sinks: ss, Suppressed: w.Suppressed,
		}))
	}
	return New(cfg, src, eng, f, outs, report, zap.NewNop())
}

type reportDoc struct {
	Meta struct {
		Start string `json:"window_start"`
		End   string `json:"window_end"`
	} `json:"report_metadata"`
	Summary struct {
		Total int `json:"total_threats"`
	} `json:"executive_summary"`
	Sinks map[string]struct {
		Delivered uint64 `json:"delivered"`
	} `json:"sink_statistics"`
}

func readReport(t *testing.T, path string) reportDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r reportDoc
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// Continuous mode writes one report per window, named by the window end,
// and together they count every alert exactly once; the final report's
// sink counts are taken after the drain.
func TestWindowsEachGetAReport(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 10, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Window: 3 * time.Minute, ReportPath: filepath.Join(dir, "report.json")}, src, &out)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "report-*.json"))
	sort.Strings(files)
	if len(files) != 4 { // 0-3, 3-6, 6-9 minutes, then the final 9-9
		t.Fatalf("window reports = %v, want 4", files)
	}
	total := 0
	for _, f := range files {
		total += readReport(t, f).Summary.Total
	}
	lines := strings.Count(out.String(), "\n")
	if total != 10 || lines != 10 {
		t.Errorf("reports count %d alerts, stdout carried %d, want 10 each", total, lines)
	}
	last := readReport(t, files[len(files)-1])
	if last.Sinks["stdout"].Delivered != 10 {
		t.Errorf("final report stdout delivered = %d, want 10 (counted after the drain)", last.Sinks["stdout"].Delivered)
	}
}

// blockingSink never finishes a write until released.
type blockingSink struct{ release chan struct{} }

func (b *blockingSink) Name() string { return "blocking" }
func (b *blockingSink) Write(ctx context.Context, _ []sinks.Event) ([]sinks.Outcome, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, ctx.Err()
}
func (b *blockingSink) Close(context.Context) error { return nil }

// A sink that never answers does not delay detection or the other sinks,
// and the drain deadline bounds shutdown.
func TestStuckSinkDoesNotBlock(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 50, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	bs := &blockingSink{release: make(chan struct{})}
	stats := &sinks.Stats{}
	stuck := Output{Name: "stuck", Runner: sinks.NewRunner(bs, sinks.RunnerConfig{QueueSize: 5}, stats, zap.NewNop())}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour, DrainTimeout: 500 * time.Millisecond,
		ReportPath: filepath.Join(t.TempDir(), "r.json")}, src, &out, stuck)
	start := time.Now()
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %s with a stuck sink; drain deadline is 500ms", d)
	}
	if n := strings.Count(out.String(), "\n"); n != 50 {
		t.Errorf("stdout got %d alerts, want all 50 despite the stuck sink", n)
	}
	if s := stats.Snapshot(); s.Dropped == 0 {
		t.Errorf("stuck sink stats %+v: want its overflow counted as dropped", s)
	}
	close(bs.release)
}

// Cancelling (SIGINT) mid-run still drains and writes the report.
func TestCancelStillWritesReport(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 3, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Hour, Duration: time.Hour, Paced: true, ReportPath: path}, src, &out)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel once the first poll's alert is out, however slow the machine
		for deadline := time.Now().Add(10 * time.Second); out.String() == "" && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if r := readReport(t, path); r.Summary.Total != 1 || r.Sinks["stdout"].Delivered != 1 {
		t.Errorf("report after cancel: %+v, want the one alert of the first poll, delivered", r)
	}
}

// A report that cannot be written fails the run (exit 1), after the sinks
// delivered everything.
func TestUnwritableReportFailsRun(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 2, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, ReportPath: filepath.Join(t.TempDir(), "missing-dir", "r.json")}, src, &out)
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "missing-dir") {
		t.Fatalf("Run = %v, want an error naming the report path", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("stdout got %d alerts, want 2 despite the report failure", n)
	}
}

// At debug level every poll logs one "poll" line with what it saw, so an
// operator can tell a quiet host from a sensor that is not polling.
func TestDebugLogsEachPoll(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 3, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, ReportPath: filepath.Join(t.TempDir(), "r.json")}, src, &out)
	core, logs := observer.New(zap.DebugLevel)
	p.log = zap.New(core)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	polls := logs.FilterMessage("poll").All()
	if len(polls) != 3 {
		t.Fatalf("%d poll lines, want one per snapshot (3)", len(polls))
	}
	for i, e := range polls {
		f := e.ContextMap()
		if e.Level != zap.DebugLevel || f["poll"] != int64(i+1) || f["sockets"] != int64(1) || f["processes"] != int64(1) {
			t.Errorf("poll line %d: level %v fields %v", i, e.Level, f)
		}
	}
	if f := polls[0].ContextMap(); f["alerts"] != int64(1) {
		t.Errorf("first poll logged %v alerts, want 1 (ncat to port 4444)", f["alerts"])
	}
}

// The observer (the dashboard's hook) sees every poll's snapshot with the
// alerts detected in it, the same alerts the sinks carry.
func TestObserverSeesEveryPollAndAlert(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 5, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, ReportPath: filepath.Join(t.TempDir(), "report.json")}, src, &out)
	var polls, alerts int
	var last time.Time
	p.SetObserver(func(snap *collector.Snapshot, as []detect.Alert) {
		polls++
		last = snap.Time
		for _, a := range as {
			if a.Technique != "T1571" {
				t.Errorf("observed alert %s %s, want T1571", a.RuleID, a.Technique)
			}
		}
		alerts += len(as)
	})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); polls != 5 || alerts != 5 || lines != 5 {
		t.Errorf("observer saw %d polls and %d alerts, stdout %d lines; want 5 each", polls, alerts, lines)
	}
	if !last.Equal(t0.Add(4 * time.Minute)) {
		t.Errorf("last observed snapshot at %v, want %v", last, t0.Add(4*time.Minute))
	}
}

// failingFormatter cannot format anything.
type failingFormatter struct{}

func (failingFormatter) Format(*detect.Alert) ([]byte, error) { return nil, errors.New("no formatter") }
func (failingFormatter) Name() string                         { return "failing" }

// An alert that cannot be formatted is counted in the window's
// format_errors and offered to no sink (so no sink reports it shipped).
func TestUnformattableAlertCountedNotShipped(t *testing.T) {
	src, err := collector.OpenReplay(recording(t, 5, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour}, src, &out)
	p.format = failingFormatter{}
	var alerts, formatErrs int
	p.report = func(w *Window, _ string) error {
		alerts, formatErrs = len(w.Alerts), w.FormatErrs
		return nil
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alerts == 0 || formatErrs != alerts {
		t.Fatalf("%d alerts, %d format errors: want every alert counted", alerts, formatErrs)
	}
	if st := p.outs[0].Runner.Stats(); st.Offered != 0 || st.Sent != 0 || out.String() != "" {
		t.Fatalf("stdout sink %+v, output %q: want nothing offered or sent", st, out.String())
	}
}

// stalledBuffer is a disk buffer whose disk hangs: Put blocks until gate
// closes (a stalled write or fsync).
type stalledBuffer struct {
	*sinks.MemoryBuffer
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (b *stalledBuffer) Put(evs []sinks.Event) error {
	b.once.Do(func() { close(b.entered) })
	<-b.gate
	return b.MemoryBuffer.Put(evs)
}
func (b *stalledBuffer) Durable() bool { return true }

// A sink whose disk buffer stalls does not hold up polling, detection or
// the other sinks: every snapshot is processed and stdout gets every alert
// while the stalled spool's writer is stuck.
func TestStalledSpoolDoesNotStallPollingOrOtherSinks(t *testing.T) {
	const n = 50
	src, err := collector.OpenReplay(recording(t, n, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	buf := &stalledBuffer{MemoryBuffer: sinks.NewMemoryBuffer(1000), gate: make(chan struct{}), entered: make(chan struct{})}
	defer close(buf.gate)
	stalled := Output{Name: "stalled", Runner: sinks.NewRunner(&blockingSink{release: make(chan struct{})},
		sinks.RunnerConfig{QueueSize: 5, Buffer: buf, DrainTimeout: 300 * time.Millisecond, CloseTimeout: 100 * time.Millisecond}, nil, zap.NewNop())}
	var out syncBuf
	p := newPipeline(t, Config{Interval: time.Second, Duration: time.Hour, DrainTimeout: 300 * time.Millisecond}, src, &out, stalled)
	polls := 0
	p.SetObserver(func(*collector.Snapshot, []detect.Alert) { polls++ })
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-buf.entered:
	default:
		t.Fatal("the stalled buffer was never written to")
	}
	if lines := strings.Count(out.String(), "\n"); polls != n || lines != n {
		t.Fatalf("%d polls, stdout got %d alerts while a spool was stalled; want %d each", polls, lines, n)
	}
	if st := stalled.Runner.Stats(); st.Sent != 0 || st.Dropped == 0 {
		t.Fatalf("stalled sink %+v: want nothing sent and its overflow counted", st)
	}
}

// recyclingSource is a replay that takes snapshots back (collector.Recycler)
// and records when: a snapshot may only come back once a newer one was
// collected, and at most once.
type recyclingSource struct {
	collector.Source
	collected []*collector.Snapshot
	recycled  map[*collector.Snapshot]bool
	errs      []string
}

func (r *recyclingSource) Collect(ctx context.Context) (*collector.Snapshot, error) {
	s, err := r.Source.Collect(ctx)
	if s != nil {
		r.collected = append(r.collected, s)
	}
	return s, err
}

func (r *recyclingSource) Recycle(s *collector.Snapshot) {
	n := len(r.collected)
	switch {
	case r.recycled[s]:
		r.errs = append(r.errs, fmt.Sprintf("snapshot at %v recycled twice", s.Time))
	case n == 0 || r.collected[n-1] == s:
		r.errs = append(r.errs, fmt.Sprintf("snapshot at %v recycled while it is the latest", s.Time))
	}
	r.recycled[s] = true
	s.Sockets = nil // what the collector does: its memory is the next dump's
}

// The pipeline hands each snapshot back to a recycling source once a newer
// one replaced it, never before its window's report was written (every
// report still lists its last poll's connection), and never when an
// observer (the dashboard) may hold it.
func TestSnapshotsRecycledOnlyWhenReplaced(t *testing.T) {
	for _, observed := range []bool{false, true} {
		t.Run(fmt.Sprintf("observer=%v", observed), func(t *testing.T) {
			rep, err := collector.OpenReplay(recording(t, 10, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			src := &recyclingSource{Source: rep, recycled: map[*collector.Snapshot]bool{}}
			dir := t.TempDir()
			var out syncBuf
			p := newPipeline(t, Config{Interval: time.Second, Window: 3 * time.Minute, ReportPath: filepath.Join(dir, "report.json")}, src, &out)
			if observed {
				p.SetObserver(func(*collector.Snapshot, []detect.Alert) {})
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, e := range src.errs {
				t.Error(e)
			}
			want := 9 // all but the last
			if observed {
				want = 0
			}
			if len(src.recycled) != want {
				t.Errorf("%d snapshots recycled, want %d", len(src.recycled), want)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "report-*.json"))
			if len(files) != 4 {
				t.Fatalf("window reports = %v, want 4", files)
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var doc struct {
					NS struct {
						Active []json.RawMessage `json:"active_connections"`
					} `json:"network_state"`
				}
				if err := json.Unmarshal(data, &doc); err != nil {
					t.Fatal(err)
				}
				if len(doc.NS.Active) != 1 {
					t.Errorf("%s lists %d connections, want its last poll's 1", filepath.Base(f), len(doc.NS.Active))
				}
			}
		})
	}
}
