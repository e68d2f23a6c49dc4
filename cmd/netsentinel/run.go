package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/internal/monitor"
	"github.com/netsentinel/netsentinel/internal/pipeline"
	"github.com/netsentinel/netsentinel/internal/state"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// runMode selects the source: the live host, or a recording (replay), and
// whether snapshots are recorded.
type runMode struct {
	replayPath string
	recordPath string
}

func cmdRun(ctx context.Context, rf *runFlags, stdout, stderr io.Writer, mode runMode) error {
	cfg, err := rf.config()
	if err != nil {
		return err
	}
	if rf.dashboard {
		if err := prepareDashboard(&cfg, rf.fs.Changed("sink"), rf.fs.Changed("duration"), stdout); err != nil {
			return err
		}
	}
	logOut := stderr
	if cfg.Log.File != "" {
		f, err := openLogFile(cfg.Log.File)
		if err != nil {
			return usageError{err.Error()}
		}
		defer f.Close()
		logOut = f
	}
	log := newLogger(cfg.Log, logOut)
	defer func() { _ = log.Sync() }()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft heap target, so detector state near its caps does not
		// double in RSS between collections (1,000,000 endpoints: ~105 MB
		// peak RSS instead of ~175 MB), raised with the live heap so it
		// never starves the collector. GOMEMLIMIT overrides it. Stopped
		// and restored on return: a run inside a test binary must not leave
		// its follower moving the process's limit afterwards.
		prev := debug.SetMemoryLimit(-1)
		stop := followMemoryLimit(DefaultMemoryLimit)
		defer func() { stop(); debug.SetMemoryLimit(prev) }()
	}

	eng, err := newEngine(&cfg, log)
	if err != nil {
		return usageError{err.Error()}
	}
	defer eng.Close()
	stateDir := ""
	if mode.replayPath == "" { // a replay runs on recorded time: no state
		stateDir = state.Dir(cfg.StateDir, cfg.Output)
		restoreCooldowns(eng, stateDir, log)
	}
	host, meta := identity(&cfg)
	rules := map[string]detect.RuleInfo{}
	for _, r := range eng.Rules() {
		rules[r.ID] = r
	}
	meta.Rules = func(id string) (detect.RuleInfo, bool) { r, ok := rules[id]; return r, ok }
	formatter, err := schemas.NewFormatter(cfg.Format, host, meta, schemas.DetectLookup)
	if err != nil {
		return usageError{fmt.Sprintf("format: %v", err)}
	}

	var src collector.Source
	paced := true
	if mode.replayPath != "" {
		if src, err = collector.OpenReplay(mode.replayPath); err != nil {
			return usageError{err.Error()}
		}
		paced = false
	} else {
		opts := collector.Options{
			ProcRoot:      collector.ProcRootFromEnv(cfg.HostProc),
			ResolvConf:    cfg.ResolvConf,
			SystemMetrics: cfg.SystemMetrics == nil || *cfg.SystemMetrics,
			DestroyEvents: cfg.DestroyEvents == nil || *cfg.DestroyEvents,
			ProcEvents:    cfg.ProcEvents == nil || *cfg.ProcEvents,
		}
		if src, err = collector.NewSource(opts, log.Named("collector")); err != nil {
			return fmt.Errorf("starting collector: %w", err)
		}
	}

	var mon *monitor.Monitor
	if cfg.HTTP.Address != "" {
		mon = newMonitor(&cfg, eng)
		defer mon.Close()
		srv, err := mon.Start(cfg.HTTP.Address, log)
		if err != nil {
			src.Close()
			return err
		}
		defer func() {
			if err := srv.Close(); err != nil {
				log.Warn("closing the monitoring endpoint", zap.Error(err))
			}
		}()
	}

	outs, err := openOutputs(ctx, &cfg, stdout, log, mon)
	if err != nil {
		src.Close()
		return err
	}
	if mon != nil {
		mon.SinksOpened()
	}

	p := pipeline.New(pipeline.Config{
		Interval:     cfg.Interval.D(),
		Duration:     cfg.Duration.D(),
		Window:       cfg.Window.D(),
		Once:         cfg.Once,
		Paced:        paced,
		ReportPath:   cfg.Output,
		DrainTimeout: cfg.Queue.DrainTimeout,
		HostID:       host.ID,
		StateDir:     stateDir,
	}, src, eng, formatter, outs, reportWriter(eng, outs, host, version), log)

	var metrics pipeline.Metrics = pipeline.NoMetrics{}
	if mon != nil {
		metrics = mon
	}
	if os.Getenv("GOGC") == "" {
		g := &steadyGC{Metrics: metrics}
		defer g.restore()
		metrics = g
	}
	p.SetMetrics(metrics)

	if mode.recordPath != "" {
		rec, err := collector.CreateRecording(mode.recordPath)
		if err != nil {
			return usageError{err.Error()}
		}
		defer func() {
			if err := rec.Close(); err != nil {
				log.Error("closing recording", zap.Error(err))
			}
			log.Info("recording written", zap.String("path", mode.recordPath), zap.Int("snapshots", rec.Count()))
		}()
		p.SetRecorder(rec.Write)
	}

	// SIGHUP reopens file sinks (logrotate) and reloads the configuration.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go watchHUP(hup, p, cfg, func() (config.Config, error) { return rf.config() }, log)

	log.Info("netsentinel starting",
		zap.String("version", version),
		zap.Duration("duration", cfg.Duration.D()),
		zap.Duration("interval", cfg.Interval.D()),
		zap.Strings("sinks", redactedSinks(cfg.Sinks)),
		zap.String("format", cfg.Format),
		zap.Int("uid", os.Getuid()))
	start := time.Now()
	if rf.dashboard {
		err = runDashboard(ctx, p, dashboardOptions(&cfg, host, outs), stdout, stderr)
	} else {
		err = p.Run(ctx)
	}
	log.Info("netsentinel stopped", zap.Duration("ran", time.Since(start).Round(time.Millisecond)))
	return err
}

// newEngine builds the detection engine from the config.
func newEngine(cfg *config.Config, log *zap.Logger) (*detect.Engine, error) {
	dc, err := engineConfig(cfg)
	if err != nil {
		return nil, err
	}
	return detect.NewEngine(dc, log.Named("detect"))
}

// openOutputs builds a runner per --sink. A sink that cannot start is an
// error unless its config allows starting degraded (it then retries).
func openOutputs(ctx context.Context, cfg *config.Config, stdout io.Writer, log *zap.Logger, mon *monitor.Monitor) ([]pipeline.Output, error) {
	var outs []pipeline.Output
	fail := func(err error) ([]pipeline.Output, error) {
		for _, o := range outs {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = o.Runner.Close(cctx)
			cancel()
		}
		return nil, err
	}
	specs, err := cfg.SinkSpecs()
	if err != nil {
		return fail(usageError{err.Error()})
	}
	for _, ss := range specs {
		sp := ss.Spec
		stats := &sinks.Stats{}
		slog := log.Named("sink")
		s, err := openSink(ctx, sp, sinkEnv(cfg, stdout, slog))
		if err != nil {
			return fail(err)
		}
		rc := cfg.Queue
		if t, ok := s.(sinks.RunnerTuner); ok {
			t.TuneRunner(&rc)
		}
		var spoolSize monitor.Spool
		if sinks.BufferType(sp, cfg.Buffer) == sinks.BufferDisk && !cfg.Spool.Disabled {
			// A spool that cannot be opened (full or read-only disk) must
			// not stop alerting: run with a memory buffer, loudly.
			if spool, err := sinks.OpenSpool(spoolDir(cfg, sp.String()), cfg.Spool, stats, slog.With(zap.String("sink", s.Name()))); err != nil {
				log.Error("spool unavailable; this sink runs with a memory buffer (lost on a crash, drops counted)",
					zap.String("sink", s.Name()), zap.Error(err))
			} else {
				rc.Buffer = spool // the runner closes it after the drain
				spoolSize = spool
			}
		}
		var watch *monitor.Sink
		driven := s
		if mon != nil { // --http-address: /readyz learns from every write
			watch = mon.AddSink(sp.Redacted(), s, spoolSize)
			driven = watch.Wrap(s)
		}
		r := sinks.NewRunner(driven, rc, stats, slog)
		if watch != nil {
			watch.SetStats(r)
		}
		outs = append(outs, pipeline.Output{Name: sp.Redacted(), Runner: r, Route: ss.Route})
	}
	return outs, nil
}

// spoolDir is the sink's spool directory: spool.dir (default
// netsentinel-spool beside the report) / the sanitised sink spec.
func spoolDir(cfg *config.Config, spec string) string {
	dir := cfg.Spool.Dir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(cfg.Output), "netsentinel-spool")
	}
	return filepath.Join(dir, sinks.SpoolDirName(spec))
}

// redactedSinks are the sink specs with URL passwords hidden, for logs.
func redactedSinks(specs []string) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		base, rt, err := sinks.SplitRoute(s)
		if sp, perr := sinks.ParseSpec(base); err == nil && perr == nil {
			out[i] = sp.Redacted()
			if !rt.IsZero() {
				sep := "?"
				if strings.Contains(out[i], "?") { // syslog keeps options of its own
					sep = "&"
				}
				out[i] += sep + rt.String()
			}
		} else {
			out[i] = "(invalid)"
		}
	}
	return out
}
