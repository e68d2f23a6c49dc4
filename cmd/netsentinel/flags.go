package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

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
func (f durationFlag) Type() string { return "duration" }

// runFlags are the flags of the sensor commands (the bare command, run,
// record, replay). Every flag has a config key; flags override the file.
type runFlags struct {
	configPath string
	cfg        config.Config // flag values land here; only changed flags are applied
	sinks      []string
	fs         *pflag.FlagSet
	dashboard  bool // --dashboard: the live terminal view (no config key: it needs a terminal)
}

// bindRunFlags registers the sensor flags on fs.
func bindRunFlags(fs *pflag.FlagSet) *runFlags {
	rf := &runFlags{cfg: config.Default(), fs: fs}
	c := &rf.cfg
	fs.StringVarP(&rf.configPath, "config", "c", "", "YAML config `file` (flags override it)")
	fs.VarP(durationFlag{&c.Duration}, "duration", "d", "analysis length: seconds (300) or a duration (5m); 0 runs until stopped")
	fs.Var(durationFlag{&c.Window}, "window", "report window in continuous mode (default: the duration; 5m when --duration 0)")
	fs.Lookup("window").DefValue = "" // the help states the real default
	fs.Var(durationFlag{&c.Interval}, "interval", "poll interval, at least 100ms")
	fs.BoolVar(&c.Once, "once", false, "one collection + detection cycle, then the report, then exit")
	fs.StringVarP(&c.Output, "output", "o", c.Output, "report `path`; continuous mode adds each window's end time")
	fs.StringVar(&c.Format, "format", c.Format, "event `format`: ecs or native")
	fs.StringArrayVar(&rf.sinks, "sink", nil, "sink `SPEC`, repeatable: stdout | file:PATH | elasticsearch:URL[,URL] | kafka:BROKERS/TOPIC | syslog:tcp|udp|tls://HOST:PORT; options as ?key=value (default stdout)")
	fs.StringVar(&c.HTTP.Address, "http-address", "", "serve /metrics, /healthz and /readyz on `HOST:PORT` (off by default; e.g. 127.0.0.1:9870)")
	fs.StringVar(&c.HostProc, "host-proc", "", "proc filesystem `root` (default $HOST_PROC or /proc)")
	fs.StringVar(&c.HostRoot, "host-root", "", "the monitored host's root `dir` as mounted here, for host.* (default $HOST_ROOT or /)")
	fs.StringVar(&c.ResolvConf, "resolv-conf", c.ResolvConf, "resolver configuration `file` watched for DNS hijack")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log `level`: debug, info, warn, error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log `format`: console or json")
	fs.StringVar(&c.Log.File, "log-file", "", "write logs to this `file` instead of stderr (--dashboard: default netsentinel.log beside the report)")
	fs.BoolVar(&rf.dashboard, "dashboard", false, "live terminal dashboard (needs a terminal; runs until q unless --duration is given)")
	return rf
}

// config merges file < env < flags and validates the result.
func (rf *runFlags) config() (config.Config, error) {
	cfg := config.Default()
	if rf.configPath != "" {
		var err error
		if cfg, err = config.Load(rf.configPath); err != nil {
			return cfg, usageError{err.Error()}
		}
	}
	cfg.ApplyEnv()
	f := &rf.cfg
	apply := func(name string, fn func()) {
		if rf.fs.Changed(name) {
			fn()
		}
	}
	apply("duration", func() { cfg.Duration = f.Duration })
	apply("window", func() { cfg.Window = f.Window })
	apply("interval", func() { cfg.Interval = f.Interval })
	apply("once", func() { cfg.Once = f.Once })
	apply("output", func() { cfg.Output = f.Output })
	apply("format", func() { cfg.Format = f.Format })
	apply("http-address", func() { cfg.HTTP.Address = f.HTTP.Address })
	apply("host-proc", func() { cfg.HostProc = f.HostProc })
	apply("host-root", func() { cfg.HostRoot = f.HostRoot })
	apply("resolv-conf", func() { cfg.ResolvConf = f.ResolvConf })
	apply("log-level", func() { cfg.Log.Level = f.Log.Level })
	apply("log-format", func() { cfg.Log.Format = f.Log.Format })
	apply("log-file", func() { cfg.Log.File = f.Log.File })
	if len(rf.sinks) > 0 {
		cfg.Sinks = rf.sinks
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err.Error()}
	}
	return cfg, nil
}

// goStyleLongFlags rewrites "-name" and "-name=value" to "--name..." when
// name is a long flag of cmdFlags, so command lines written for Go's flag
// package (which accepted one dash) keep working. Arguments after "--" are
// left alone.
func goStyleLongFlags(args []string, isLong func(string) bool) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && isLong(name) {
			out[i] = "-" + a
		}
	}
	return out
}
