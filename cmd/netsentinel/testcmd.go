package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// TestRuleID is the rule id of the synthetic event `netsentinel test output`
// sends; TestTag is in its tags, so pipelines can drop or route it.
const (
	TestRuleID = "netsentinel_test"
	TestTag    = "netsentinel-test"
)

func newTestCmd(stdout, stderr io.Writer) *cobra.Command {
	test := &cobra.Command{
		Use:   "test output [flags]",
		Short: "Send one synthetic test event through every configured sink",
		RunE: ran(func(*cobra.Command, []string) error {
			return usagef("test: want 'test output [-c config] [--sink SPEC]...'")
		}),
	}
	out := &cobra.Command{
		Use:   "output [flags]",
		Short: "Send one synthetic event (tag netsentinel-test, rule netsentinel_test) to every sink; exit 1 if any failed",
		Long: `Sends one synthetic alert (event.kind "alert", tags ["netsentinel-test"], rule.id "netsentinel_test",
severity low) straight to every configured sink, without queue or spool, and prints for each sink
"delivered" or the error. Exit status 1 when any sink failed, like 'filebeat test output'.`,
		Args: cobra.NoArgs,
	}
	cfgPath := out.Flags().StringP("config", "c", "", "YAML config `file` (its sinks and their settings)")
	var specs []string
	out.Flags().StringArrayVar(&specs, "sink", nil, "sink `SPEC` to test instead of the config's, repeatable")
	timeout := out.Flags().Duration("timeout", 30*time.Second, "give up on a sink after this long")
	logLevel := out.Flags().String("log-level", "warn", "log `level` (the sinks' own logs, on stderr)")
	out.RunE = ran(func(cmd *cobra.Command, _ []string) error {
		cfg := config.Default()
		if *cfgPath != "" {
			var err error
			if cfg, err = config.Load(*cfgPath); err != nil {
				return usageError{err.Error()}
			}
		}
		cfg.ApplyEnv()
		if len(specs) > 0 {
			cfg.Sinks = specs
		}
		cfg.Log.Level = *logLevel
		// An unreachable store is the answer, not something to wait out.
		cfg.Elasticsearch.FailFast = true
		if err := cfg.Validate(); err != nil {
			return usageError{err.Error()}
		}
		return cmdTestOutput(cmd.Context(), &cfg, *timeout, stdout, stderr)
	})
	test.AddCommand(out)
	return test
}

// cmdTestOutput writes the test event to each sink in turn.
func cmdTestOutput(ctx context.Context, cfg *config.Config, timeout time.Duration, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	defer func() { _ = log.Sync() }()
	ev, err := testEvent(cfg)
	if err != nil {
		return err
	}
	specs, err := cfg.SinkSpecs()
	if err != nil {
		return usageError{err.Error()}
	}
	// A rejected test event is reported on its line: no dead-letter file
	// is left behind (the default one would land beside the report path).
	tmp, err := os.MkdirTemp("", "netsentinel-test-output-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if cfg.Elasticsearch.DeadLetter == "" {
		cfg.Elasticsearch.DeadLetter = filepath.Join(tmp, "elasticsearch-deadletter.ndjson")
	}
	if cfg.Kafka.DeadLetter == "" {
		cfg.Kafka.DeadLetter = filepath.Join(tmp, "kafka-deadletter.ndjson")
	}
	failed := 0
	for _, ss := range specs {
		name := ss.Spec.Redacted()
		if err := sendTest(ctx, cfg, ss.Spec, ev, timeout, stdout, log); err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: FAILED: %s\n", name, oneLine(err.Error()))
			continue
		}
		fmt.Fprintf(stdout, "%s: delivered (event.id %s)\n", name, ev.ID)
	}
	if failed > 0 {
		return fmt.Errorf("test output: %d of %d sinks failed", failed, len(specs))
	}
	return nil
}

// sendTest opens one sink, writes ev directly (no queue, no spool) and
// closes it. A dead-lettered (rejected) event is a failure.
func sendTest(ctx context.Context, cfg *config.Config, sp sinks.Spec, ev sinks.Event, timeout time.Duration, stdout io.Writer, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := openSink(ctx, sp, sinkEnv(cfg, stdout, log.Named("sink")))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	outs, err := s.Write(ctx, []sinks.Event{ev})
	if err != nil {
		return err
	}
	for _, o := range outs {
		switch o.Status {
		case sinks.DeadLettered:
			return fmt.Errorf("rejected by the server (written to the dead-letter file): %v", o.Err)
		case sinks.Dropped:
			return fmt.Errorf("rejected by the server (dropped, %s): %v", o.Reason, o.Err)
		case sinks.Retry:
			return fmt.Errorf("not delivered: %v", o.Err)
		}
	}
	return nil
}

// testEvent formats the synthetic alert as the sensor formats real ones.
func testEvent(cfg *config.Config) (sinks.Event, error) {
	host, meta := identity(cfg)
	meta.Tags = append(append([]string(nil), meta.Tags...), TestTag)
	f, err := schemas.NewFormatter(cfg.Format, host, meta, schemas.DetectLookup)
	if err != nil {
		return sinks.Event{}, usagef("format: %v", err)
	}
	now := time.Now().UTC()
	a := &detect.Alert{
		ID: newUUID(), RuleID: TestRuleID, ThreatType: "NETSENTINEL_TEST", Technique: "T1071",
		Severity: detect.SeverityLow, Time: now, Entity: "netsentinel-test", Count: 1,
		Message:        "NetSentinel test event (netsentinel test output): checks the path from the sensor to this sink; not a threat",
		Recommendation: "None: this event was sent on purpose to test the pipeline.",
		Evidence:       map[string]any{"test": true},
	}
	body, err := f.Format(a)
	if err != nil {
		return sinks.Event{}, fmt.Errorf("formatting the test event: %w", err)
	}
	return sinks.Event{ID: a.ID, Body: body, Fields: map[string]string{
		"event.id": a.ID, "rule": a.RuleID, "technique": a.Technique,
		"severity": strconv.Itoa(int(a.Severity)), "host.id": host.ID,
	}}, nil
}
