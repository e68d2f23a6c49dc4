package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/schemas"
	"github.com/netsentinel/netsentinel/sinks"
)

// newSetupCmd: what a sink needs on the server side. Today:
// `netsentinel setup elasticsearch [-c config] [--url URL]`.
func newSetupCmd(stdout, stderr io.Writer) *cobra.Command {
	setup := &cobra.Command{
		Use:   "setup elasticsearch [flags]",
		Short: "Install what a sink needs on the server side (the Elasticsearch index template)",
		RunE: ran(func(_ *cobra.Command, args []string) error {
			return usagef("setup: want 'setup elasticsearch [-c config] [--url URL]'")
		}),
	}
	es := &cobra.Command{
		Use:   "elasticsearch [flags]",
		Short: "Install the Elasticsearch index template (idempotent)",
		Args:  cobra.NoArgs,
	}
	cfgPath := es.Flags().StringP("config", "c", "", "YAML config `file` (the elasticsearch section)")
	url := es.Flags().String("url", "", "Elasticsearch `URL` (overrides elasticsearch.url)")
	logLevel := es.Flags().String("log-level", "info", "log `level`")
	es.RunE = ran(func(cmd *cobra.Command, _ []string) error {
		return cmdSetupElasticsearch(cmd.Context(), *cfgPath, *url, *logLevel, stdout, stderr)
	})
	setup.AddCommand(es)
	return setup
}

func cmdSetupElasticsearch(ctx context.Context, cfgPath, url, logLevel string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return usageError{err.Error()}
		}
	}
	ec := cfg.Elasticsearch
	if url != "" {
		urls, err := sinks.ParseElasticsearchTarget(url)
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
	log := newLogger(config.LogConfig{Level: logLevel, Format: cfg.Log.Format}, stderr)
	msg, err := sinks.SetupElasticsearch(ctx, ec, schemas.IndexTemplate, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, msg)
	return nil
}
