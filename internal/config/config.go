// Package config holds every NetSentinel setting: the YAML file (strict: an
// unknown key is an error), environment overrides for secrets, and flags,
// which override the file. Validation does no I/O and names the bad key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/sinks"
)

// Config is the whole configuration. YAML keys are snake_case.
type Config struct {
	// Duration of the analysis; 0 runs until stopped.
	Duration Duration `yaml:"duration"`
	// Window is the report window in continuous mode (default: one window
	// covering Duration; when Duration is 0 the default is 5m).
	Window Duration `yaml:"window"`
	// Interval between polls.
	Interval Duration `yaml:"interval"`
	// Once runs one collection + detection cycle, then reports and exits.
	Once bool `yaml:"once"`
	// Output is the report path (continuous mode adds the window end time).
	Output string `yaml:"output"`
	// Format of events: "ecs" (default) or "native".
	Format string `yaml:"format"`
	// HostProc is the /proc root ("" = $HOST_PROC or /proc).
	HostProc string `yaml:"host_proc"`
	// ResolvConf is the resolver configuration file watched for DNS hijack.
	ResolvConf string `yaml:"resolv_conf"`
	// DestroyEvents subscribes to socket-destroy notifications (Linux).
	DestroyEvents *bool `yaml:"destroy_events"`
	// ProcEvents subscribes to exec events through the netlink process
	// connector (Linux; used only with CAP_NET_ADMIN in the initial PID
	// namespace), so processes living less than a poll are seen.
	ProcEvents *bool `yaml:"proc_events"`
	// SystemMetrics gathers CPU, memory and interface counters.
	SystemMetrics *bool `yaml:"system_metrics"`

	Log LogConfig `yaml:"log"`

	// HTTP serves /metrics, /healthz and /readyz when Address is set.
	HTTP HTTPConfig `yaml:"http"`

	// Sinks are sink specs: stdout, file:PATH, elasticsearch:URL, kafka:BROKERS/TOPIC,
	// syslog:tcp|udp|tls://HOST:PORT.
	Sinks         []string                  `yaml:"sinks"`
	Queue         sinks.RunnerConfig        `yaml:"queue"`
	File          sinks.FileConfig          `yaml:"file"`
	Elasticsearch sinks.ElasticsearchConfig `yaml:"elasticsearch"`
	Kafka         sinks.KafkaConfig         `yaml:"kafka"`
	Syslog        sinks.SyslogConfig        `yaml:"syslog"`
	// Buffer chooses memory or disk buffers for the sinks (sinks.BufferType).
	Buffer sinks.BufferConfig `yaml:"buffer"`
	// Spool is the disk buffer's settings (default dir: netsentinel-spool
	// beside the report).
	Spool sinks.SpoolConfig `yaml:"spool"`

	// Host metadata for events.
	Dataset   string `yaml:"dataset"`
	Namespace string `yaml:"namespace"`
	// Identity of the monitored host and the sensor (identity.go).
	HostRoot     string             `yaml:"host_root"`
	Labels       map[string]string  `yaml:"labels"`
	Tags         []string           `yaml:"tags"`
	Orchestrator OrchestratorConfig `yaml:"orchestrator"`

	Detect DetectConfig `yaml:"detect"`
	// Exceptions silence known-benign alerts (see detect.ExceptionSpec).
	Exceptions []detect.ExceptionSpec `yaml:"exceptions"`
	// StateDir holds state kept across restarts (the cooldown table);
	// default netsentinel-state beside the report.
	StateDir string `yaml:"state_dir"`
}

// HTTPConfig is the monitoring endpoint. Off unless Address is set.
type HTTPConfig struct {
	Address string `yaml:"address"` // HOST:PORT, e.g. 127.0.0.1:9870
}

// DefaultHTTPPort is the port the docs, examples and `netsentinel health`
// use for the monitoring endpoint.
const DefaultHTTPPort = 9870

// LogConfig configures operational logs (stderr, or File when set).
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // console or json
	// File receives the logs instead of stderr (appended, mode 0600);
	// --dashboard defaults it to netsentinel.log beside the report.
	File string `yaml:"file"`
}

// DetectConfig configures the engine and each detector.
type DetectConfig struct {
	Cooldown Duration `yaml:"cooldown"`
	HomeNet  []string `yaml:"home_net"`
	Disabled []string `yaml:"disabled"`
	// Detectors holds each detector's section, decoded strictly into the
	// detector's own config struct by Resolve.
	Detectors map[string]yaml.Node `yaml:"detectors"`
}

// Duration accepts "300" (seconds) or a Go duration ("5m", "1h30m").
type Duration time.Duration

// ParseDuration parses seconds or a Go duration; negative values are errors.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var d time.Duration
	if isDigits(s) {
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d = time.Duration(n) * time.Second
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want seconds like 300 or a duration like 5m)", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return d, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the built-in configuration.
func Default() Config {
	t := true
	return Config{
		Duration:      Duration(60 * time.Second),
		Interval:      Duration(2 * time.Second),
		Output:        "netsentinel_report.json",
		Format:        "ecs",
		ResolvConf:    "/etc/resolv.conf",
		DestroyEvents: &t,
		ProcEvents:    &t,
		SystemMetrics: &t,
		Log:           LogConfig{Level: "info", Format: "console"},
		Sinks:         []string{"stdout"},
		Kafka:         sinks.DefaultKafkaConfig(),
		Dataset:       "netsentinel.alert",
		Namespace:     "default",
		Detect: DetectConfig{
			Cooldown: Duration(10 * time.Minute),
			HomeNet:  defaultHomeNet(),
		},
	}
}

// Load reads a YAML file strictly on top of Default. An unknown key anywhere
// is an error naming the key and line.
func Load(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := decodeStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func decodeStrict(data []byte, into any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ApplyEnv applies environment overrides for secrets and paths:
// HOST_PROC is honoured by collector; credentials by the sinks' own
// configs (NETSENTINEL_ES_API_KEY, NETSENTINEL_ES_PASSWORD,
// NETSENTINEL_KAFKA_PASSWORD).
func (c *Config) ApplyEnv() {
	if v := os.Getenv("NETSENTINEL_HOST_PROC"); v != "" && c.HostProc == "" {
		c.HostProc = v
	}
	c.applyIdentityEnv()
}

// Validate checks values with no I/O; the error names the key.
func (c *Config) Validate() error {
	if c.Interval.D() <= 0 {
		return fmt.Errorf("interval: must be > 0, got %s", c.Interval.D())
	}
	if c.Interval.D() < 100*time.Millisecond {
		return fmt.Errorf("interval: %s is below the 100ms floor", c.Interval.D())
	}
	if c.Window.D() != 0 && c.Window.D() < time.Second {
		return fmt.Errorf("window: %s is below the 1s floor (window reports are named to the second)", c.Window.D())
	}
	if c.Window.D() != 0 && c.Window.D() < c.Interval.D() {
		return fmt.Errorf("window: %s is shorter than interval %s", c.Window.D(), c.Interval.D())
	}
	switch c.Format {
	case "ecs", "native":
	default:
		return fmt.Errorf("format: unknown value %q (want ecs or native)", c.Format)
	}
	if c.Output == "" {
		return errors.New("output: empty report path")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: unknown value %q (want debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		return fmt.Errorf("log.format: unknown value %q (want console or json)", c.Log.Format)
	}
	if a := c.HTTP.Address; a != "" {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("http.address: invalid %q (want HOST:PORT, e.g. 127.0.0.1:%d)", a, DefaultHTTPPort)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("http.address: invalid port %q in %q", port, a)
		}
	}
	if len(c.Sinks) == 0 {
		return errors.New("sinks: at least one sink is required")
	}
	if err := c.Spool.Validate(); err != nil {
		return err
	}
	if err := c.Buffer.Validate(); err != nil {
		return err
	}
	if _, err := c.SinkSpecs(); err != nil {
		return err
	}
	if _, err := c.HomeNet(); err != nil {
		return err
	}
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if c.Detect.Cooldown.D() < 0 {
		return errors.New("detect.cooldown: negative")
	}
	for _, name := range c.Detect.Disabled {
		if _, ok := detect.Lookup(name); !ok {
			return fmt.Errorf("detect.disabled: unknown detector %q", name)
		}
	}
	for name := range c.Detect.Detectors {
		if _, ok := detect.Lookup(name); !ok {
			return fmt.Errorf("detect.detectors: unknown detector %q", name)
		}
	}
	if _, err := c.CompileExceptions(); err != nil {
		return err
	}
	return nil
}

// HomeNet parses detect.home_net.
func (c *Config) HomeNet() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.Detect.HomeNet))
	for _, s := range c.Detect.HomeNet {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("detect.home_net: invalid CIDR %q", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// DetectorConfigs builds each registered detector's config: its defaults,
// overlaid strictly with the user's section.
func (c *Config) DetectorConfigs() (map[string]any, error) {
	out := map[string]any{}
	for _, f := range detect.Factories() {
		cfg := f.DefaultConfig()
		if node, ok := c.Detect.Detectors[f.Name]; ok {
			raw, err := yaml.Marshal(&node)
			if err != nil {
				return nil, fmt.Errorf("detect.detectors.%s: %w", f.Name, err)
			}
			if err := decodeStrict(raw, cfg); err != nil {
				return nil, fmt.Errorf("detect.detectors.%s: %w", f.Name, err)
			}
		}
		out[f.Name] = cfg
	}
	for name := range c.Detect.Detectors {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("detect.detectors: unknown detector %q", name)
		}
	}
	return out, nil
}

// defaultHomeNet is detect.DefaultHomeNet as config strings, so the two never
// drift apart.
func defaultHomeNet() []string {
	var out []string
	for _, p := range detect.DefaultHomeNet() {
		out = append(out, p.String())
	}
	return out
}
