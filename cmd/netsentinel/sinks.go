package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/sinks"
)

// deadLetterPath is where a network sink writes permanently rejected events
// when the config names no file: beside the report.
func deadLetterPath(cfg *config.Config, configured, kind string) string {
	if configured != "" {
		return configured
	}
	return filepath.Join(filepath.Dir(cfg.Output), "netsentinel-"+kind+"-deadletter.ndjson")
}

func openElasticsearch(ctx context.Context, cfg *config.Config, target string, stats *sinks.Stats, log *zap.Logger) (sinks.Sink, error) {
	urls, err := sinks.ParseElasticsearchTarget(target)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	ec := cfg.Elasticsearch
	ec.URL, ec.URLs = urls[0], append(urls[1:], ec.URLs...)
	dl, err := sinks.OpenDeadLetter(deadLetterPath(cfg, ec.DeadLetter, "elasticsearch"))
	if err != nil {
		return nil, err
	}
	es, err := sinks.NewElasticsearch(ec, stats, dl, log)
	if err != nil {
		dl.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := es.CheckStartup(cctx); err != nil {
		es.Close(context.Background())
		return nil, err
	}
	return es, nil
}

func openKafka(ctx context.Context, cfg *config.Config, target string, stats *sinks.Stats, log *zap.Logger) (sinks.Sink, error) {
	brokers, topic, err := sinks.ParseKafkaTarget(target)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	kc := cfg.Kafka
	kc.Brokers, kc.Topic = brokers, topic
	dl, err := sinks.OpenDeadLetter(deadLetterPath(cfg, kc.DeadLetter, "kafka"))
	if err != nil {
		return nil, err
	}
	k, err := sinks.NewKafka(kc, stats, dl, log)
	if err != nil {
		dl.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.CheckStartup(cctx); err != nil {
		k.Close(context.Background())
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return k, nil
}

// openSyslog builds a syslog sink: the target's transport, address and
// options over the config's syslog section. It connects on the first write,
// so a server that is down at start only delays delivery.
func openSyslog(cfg *config.Config, target string, stats *sinks.Stats, log *zap.Logger) (sinks.Sink, error) {
	sc, err := sinks.ParseSyslogTarget(target, cfg.Syslog)
	if err != nil {
		return nil, usageError{fmt.Sprintf("sink syslog:%s: %v", target, err)}
	}
	sc.DeadLetter = deadLetterPath(cfg, sc.DeadLetter, "syslog")
	return sinks.NewSyslog(sc, stats, nil, log)
}
