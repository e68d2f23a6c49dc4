package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/netsentinel/netsentinel/internal/config"
)

// usageError is a bad flag, argument or config value: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// durationFlag accepts "300" (seconds) or "5m".
type durationFlag struct{ d *config.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.D().String()
}
func (f durationFlag) Set(s string) error {
	v, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = config.Duration(v)
	return nil
}

// listFlag collects repeated values (--sink a --sink b).
type listFlag struct{ v *[]string }

func (f listFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strings.Join(*f.v, ",")
}
func (f listFlag) Set(s string) error { *f.v = append(*f.v, s); return nil }

// runFlags are the flags of the main command. Every flag has a config key;
// flags override the file.
type runFlags struct {
	configPath string
	cfg        config.Config // flag values land here; only set flags are applied
	sinks      []string
	set        map[string]bool
}

func newRunFlagSet(out io.Writer) (*flag.FlagSet, *runFlags) {
	rf := &runFlags{cfg: config.Default()}
	fs := flag.NewFlagSet("netsentinel", flag.ContinueOnError)
	fs.SetOutput(out)
	c := &rf.cfg
	fs.StringVar(&rf.configPath, "c", "", "YAML config file (same as --config)")
	fs.StringVar(&rf.configPath, "config", "", "YAML config file")
	fs.Var(durationFlag{&c.Duration}, "d", "analysis duration: seconds (300) or a duration (5m); 0 = until stopped (same as --duration)")
	fs.Var(durationFlag{&c.Duration}, "duration", "analysis duration: seconds (300) or a duration (5m); 0 = until stopped")
	fs.Var(durationFlag{&c.Window}, "window", "report window in continuous mode (default 5m when --duration 0)")
	fs.Var(durationFlag{&c.Interval}, "interval", "poll interval")
	fs.BoolVar(&c.Once, "once", false, "one collection + detection cycle, then the report, then exit")
	fs.StringVar(&c.Output, "o", c.Output, "report path (same as --output)")
	fs.StringVar(&c.Output, "output", c.Output, "report path")
	fs.StringVar(&c.Format, "format", c.Format, "event format: ecs or native")
	fs.Var(listFlag{&rf.sinks}, "sink", "sink, repeatable: stdout | file:PATH | elasticsearch:URL | kafka:BROKERS/TOPIC")
	fs.StringVar(&c.HostProc, "host-proc", "", "proc filesystem root (default $HOST_PROC or /proc)")
	fs.StringVar(&c.HostRoot, "host-root", "", "the monitored host's root filesystem as mounted here, for host.* (default $HOST_ROOT or /)")
	fs.StringVar(&c.ResolvConf, "resolv-conf", c.ResolvConf, "resolver configuration file")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: console or json")
	return fs, rf
}

// parseRun parses the main command's flags and merges file < env < flags.
func parseRun(args []string, out io.Writer) (config.Config, error) {
	fs, rf := newRunFlagSet(out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, err
		}
		return config.Config{}, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return config.Config{}, usagef("unexpected argument %q (commands: run, rules, version, setup, record, replay)", fs.Arg(0))
	}
	rf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { rf.set[f.Name] = true })

	cfg := config.Default()
	if rf.configPath != "" {
		var err error
		if cfg, err = config.Load(rf.configPath); err != nil {
			return cfg, usageError{err.Error()}
		}
	}
	cfg.ApplyEnv()
	f := &rf.cfg
	apply := func(names []string, fn func()) {
		for _, n := range names {
			if rf.set[n] {
				fn()
				return
			}
		}
	}
	apply([]string{"d", "duration"}, func() { cfg.Duration = f.Duration })
	apply([]string{"window"}, func() { cfg.Window = f.Window })
	apply([]string{"interval"}, func() { cfg.Interval = f.Interval })
	apply([]string{"once"}, func() { cfg.Once = f.Once })
	apply([]string{"o", "output"}, func() { cfg.Output = f.Output })
	apply([]string{"format"}, func() { cfg.Format = f.Format })
	apply([]string{"host-proc"}, func() { cfg.HostProc = f.HostProc })
	apply([]string{"host-root"}, func() { cfg.HostRoot = f.HostRoot })
	apply([]string{"resolv-conf"}, func() { cfg.ResolvConf = f.ResolvConf })
	apply([]string{"log-level"}, func() { cfg.Log.Level = f.Log.Level })
	apply([]string{"log-format"}, func() { cfg.Log.Format = f.Log.Format })
	if len(rf.sinks) > 0 {
		cfg.Sinks = rf.sinks
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err.Error()}
	}
	return cfg, nil
}
