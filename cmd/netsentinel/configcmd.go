package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/netsentinel/netsentinel/internal/config"
)

// DefaultConfigPath is where the packages install the config.
const DefaultConfigPath = "/etc/netsentinel/netsentinel.yaml"

func newConfigCmd(stdout, _ io.Writer) *cobra.Command {
	cfg := &cobra.Command{
		Use:   "config check [FILE] | config example",
		Short: "Check a config file, or print the commented example config",
		RunE: ran(func(*cobra.Command, []string) error {
			return usagef("config: want 'config check [FILE]' or 'config example'")
		}),
	}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a config file strictly (default " + DefaultConfigPath + "); exit 0 with OK, or 2 naming the bad key or value",
		Args:  cobra.MaximumNArgs(1),
		RunE: ran(func(_ *cobra.Command, args []string) error {
			path := DefaultConfigPath
			if len(args) == 1 {
				path = args[0]
			}
			return cmdConfigCheck(path, stdout)
		}),
	}
	example := &cobra.Command{
		Use:   "example",
		Short: "Print the full commented example config (the file the packages install)",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { _, _ = stdout.Write(config.Example) },
	}
	cfg.AddCommand(check, example)
	return cfg
}

// cmdConfigCheck loads path as the sensor would (strict YAML, environment,
// validation, every detector's section, the engine) without collecting or
// opening a sink.
func cmdConfigCheck(path string, stdout io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return usageError{err.Error()}
	}
	cfg.ApplyEnv()
	if err := cfg.Validate(); err != nil {
		return usagef("config %s: %v", path, err)
	}
	eng, err := newEngine(&cfg, nopLogger())
	if err != nil {
		return usagef("config %s: %v", path, err)
	}
	eng.Close()
	mode := fmt.Sprintf("duration %s", cfg.Duration.D())
	if cfg.Duration.D() == 0 {
		mode = "continuous"
	}
	fmt.Fprintf(stdout, "config %s: OK (%s, sinks: %s)\n", path, mode, strings.Join(redactedSinks(cfg.Sinks), ", "))
	return nil
}
