package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/internal/dashboard"
	"github.com/netsentinel/netsentinel/internal/pipeline"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// prepareDashboard checks and adjusts a --dashboard run before anything
// starts. The dashboard owns the terminal: an explicitly named stdout sink is
// refused (it would write over the screen), the built-in default stdout sink
// is left off (alerts are on the screen and in the report), stdout must be a
// terminal, and logs go to a file (--log-file, default netsentinel.log beside
// the report). Unless --duration was given, the run lasts until q.
func prepareDashboard(cfg *config.Config, sinksFlag, durationFlag bool, stdout io.Writer) error {
	isDefault := !sinksFlag && len(cfg.Sinks) == 1 && cfg.Sinks[0] == "stdout"
	for _, s := range cfg.Sinks {
		if sp, err := sinks.ParseSpec(s); err == nil && sp.Kind == "stdout" && !isDefault {
			return usagef("--dashboard owns the terminal, so the stdout sink cannot be used with it: " +
				"name a file instead (--sink file:PATH) or another sink")
		}
	}
	if isDefault {
		cfg.Sinks = nil
	}
	f, ok := stdout.(*os.File)
	if !ok || !dashboard.IsTerminal(f) {
		return usageError{dashboard.ErrNotTerminal.Error()}
	}
	if cfg.Log.File == "" {
		cfg.Log.File = filepath.Join(filepath.Dir(cfg.Output), "netsentinel.log")
	}
	if !durationFlag {
		cfg.Duration = 0
	}
	return nil
}

// dashboardOptions describes the run to the dashboard.
func dashboardOptions(cfg *config.Config, host schemas.Host, outs []pipeline.Output) dashboard.Options {
	homeNet, _ := cfg.HomeNet() // validated at start-up
	return dashboard.Options{
		Host: host.Hostname, Version: version, ReportPath: reportPaths(cfg), LogPath: cfg.Log.File,
		Lookup: schemas.DetectLookup, HomeNet: homeNet, NoColor: os.Getenv("NO_COLOR") != "", // no-color.org
		Sinks: func() []dashboard.SinkStat {
			out := make([]dashboard.SinkStat, 0, len(outs))
			for _, o := range outs {
				s := o.Runner.Stats()
				// Failed as in the report: dead-lettered or dropped.
				out = append(out, dashboard.SinkStat{Name: o.Name, Delivered: s.Sent, Failed: s.DeadLettered + s.Dropped, Spooled: s.Spooled})
			}
			return out
		},
	}
}

// reportPaths names the report file, or the pattern of the per-window files
// when the run is continuous (as the pipeline decides).
func reportPaths(cfg *config.Config) string {
	d, w := cfg.Duration.D(), cfg.Window.D()
	if w == 0 {
		w = d
	}
	if cfg.Once || (d > 0 && w >= d) {
		return cfg.Output
	}
	ext := filepath.Ext(cfg.Output)
	return strings.TrimSuffix(cfg.Output, ext) + "-*" + ext
}

// runDashboard runs the pipeline under the dashboard. Quitting the dashboard
// stops the pipeline exactly as SIGINT does (sinks drain, the final report is
// written); the end of the run (duration, signal) closes the dashboard.
func runDashboard(ctx context.Context, p *pipeline.Pipeline, opts dashboard.Options, stdout, stderr io.Writer) error {
	feed := dashboard.NewFeed()
	p.SetObserver(feed.Observe)
	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	uiCtx, endUI := context.WithCancel(context.Background())
	defer endUI()
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		defer endUI()
		runErr = p.Run(pctx)
	}()
	uiErr := dashboard.Run(uiCtx, feed, opts, os.Stdin, stdout.(*os.File))
	select {
	case <-done:
	default:
		fmt.Fprintln(stderr, "netsentinel: stopping: draining sinks and writing the report")
		stopPipeline()
		<-done
	}
	fmt.Fprintf(stderr, "netsentinel: dashboard closed; report %s; log %s\n", opts.ReportPath, opts.LogPath)
	if runErr != nil {
		return runErr
	}
	if uiErr != nil {
		return fmt.Errorf("dashboard: %w", uiErr)
	}
	return nil
}
