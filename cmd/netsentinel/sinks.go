package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/sinks"
)

// sinkEnv is what the sink kinds' openers take from the config: its sink
// sections, and dead letters beside the report unless a section names a file.
func sinkEnv(cfg *config.Config, stdout io.Writer, log *zap.Logger) sinks.Env {
	return sinks.Env{
		Stdout: stdout, File: cfg.File, Elasticsearch: cfg.Elasticsearch, Kafka: cfg.Kafka, Syslog: cfg.Syslog,
		DeadLetterDir: filepath.Dir(cfg.Output), Log: log,
	}
}

// openSink opens one sink through the registry. A spec its kind refuses
// is a usage error; anything else names the sink.
func openSink(ctx context.Context, sp sinks.Spec, env sinks.Env) (sinks.Sink, error) {
	s, err := sinks.Open(ctx, sp, env)
	if errors.Is(err, sinks.ErrBadSpec) {
		return nil, usageError{err.Error()}
	}
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", sp.Redacted(), err)
	}
	return s, nil
}
