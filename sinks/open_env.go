package sinks

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"go.uber.org/zap"
)

// Env is what a kind's opener may need beyond its spec: the config's sink
// sections (typed, as the config file has them), where dead letters go,
// the stdout writer and the logger. The command fills it once from its
// config; each opener takes only its own part.
type Env struct {
	Stdout        io.Writer // the stdout sink's writer (os.Stdout in main)
	File          FileConfig
	Elasticsearch ElasticsearchConfig
	Kafka         KafkaConfig
	Syslog        SyslogConfig
	// DeadLetterDir holds a network sink's dead-letter file when its
	// section names none (netsentinel-KIND-deadletter.ndjson).
	DeadLetterDir string
	Log           *zap.Logger
}

// deadLetterPath is the configured dead-letter file, or the kind's default
// in env.DeadLetterDir.
func (env Env) deadLetterPath(configured, kind string) string {
	if configured != "" {
		return configured
	}
	return filepath.Join(env.DeadLetterDir, "netsentinel-"+kind+"-deadletter.ndjson")
}

// Open opens a sink of spec's registered kind. A target the kind's config
// cannot accept is an error wrapping ErrBadSpec (a usage error).
func Open(ctx context.Context, spec Spec, env Env) (Sink, error) {
	k, ok := lookupKind(spec.Kind)
	if !ok {
		return nil, fmt.Errorf("%w %q: unknown sink kind %q (want %s)", ErrBadSpec, spec.Redacted(), spec.Kind, kindList())
	}
	if env.Log == nil {
		env.Log = zap.NewNop()
	}
	return k.Open(ctx, spec, env)
}

// badTarget wraps a target error the way ParseSpec does.
func badTarget(spec Spec, err error) error {
	return fmt.Errorf("%w %q: %v", ErrBadSpec, spec.Redacted(), err)
}
