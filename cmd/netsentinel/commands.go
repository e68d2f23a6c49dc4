package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// fileArg takes the FILE operand of record/replay: the first argument.
func fileArg(cmd string, args []string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usagef("%s: missing FILE (usage: netsentinel %s FILE [flags])", cmd, cmd)
	}
	return args[0], args[1:], nil
}

// cmdRecord runs the sensor as usual and also records every snapshot.
func cmdRecord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := fileArg("record", args)
	if err != nil {
		return err
	}
	return cmdRun(ctx, rest, stdout, stderr, runMode{recordPath: path})
}

// cmdReplay runs detection over a recording, back to back, with the
// recorded snapshot times as the clock: the same file gives the same alerts.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := fileArg("replay", args)
	if err != nil {
		return err
	}
	return cmdRun(ctx, rest, stdout, stderr, runMode{replayPath: path})
}

// cmdSetup installs what a sink needs on the server side. Today:
// `netsentinel setup elasticsearch [-c config] [--url URL]`.
func cmdSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "elasticsearch" {
		return usagef("setup: want 'setup elasticsearch [-c config] [--url URL]'")
	}
	fs := flag.NewFlagSet("netsentinel setup elasticsearch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "YAML config file (the elasticsearch section)")
	url := fs.String("url", "", "Elasticsearch URL (overrides elasticsearch.url)")
	logLevel := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return usageError{err.Error()}
		}
	}
	ec := cfg.Elasticsearch
	if *url != "" {
		urls, err := sinks.ParseElasticsearchTarget(*url)
		if err != nil {
			return usageError{err.Error()}
		}
		ec.URL, ec.URLs = urls[0], urls[1:]
	}
	if ec.URL == "" && len(ec.URLs) == 0 {
		for _, s := range cfg.Sinks {
			s, _, _ = sinks.SplitRoute(s)
			if sp, err := sinks.ParseSpec(s); err == nil && sp.Kind == "elasticsearch" {
				urls, err := sinks.ParseElasticsearchTarget(sp.Target)
				if err == nil {
					ec.URL, ec.URLs = urls[0], urls[1:]
				}
			}
		}
	}
	if ec.URL == "" && len(ec.URLs) == 0 {
		return usagef("setup elasticsearch: no URL (use --url or elasticsearch.url in the config)")
	}
	log := newLogger(config.LogConfig{Level: *logLevel, Format: cfg.Log.Format}, stderr)
	msg, err := sinks.SetupElasticsearch(ctx, ec, schemas.IndexTemplate, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, msg)
	return nil
}
