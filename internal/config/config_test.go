package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/detect"
)

func TestLoadFullFile(t *testing.T) {
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid file rejected: %v", err)
	}
	if cfg.Duration.D() != 5*time.Minute || cfg.Window.D() != time.Minute || cfg.Interval.D() != time.Second {
		t.Errorf("durations = %v %v %v", cfg.Duration.D(), cfg.Window.D(), cfg.Interval.D())
	}
	if cfg.Format != "native" || cfg.Namespace != "prod" || len(cfg.Sinks) != 3 || cfg.Queue.QueueSize != 5000 {
		t.Errorf("decoded %+v", cfg)
	}
	if sc := cfg.Syslog; sc.Format != "cef" || sc.Facility != "local4" || sc.ResendWindow != 5*time.Second ||
		sc.UDPMaxBytes != 4096 || sc.TLS.CAFile != "/etc/ssl/siem-ca.pem" {
		t.Errorf("syslog section decoded as %+v", sc)
	}
	if *cfg.SystemMetrics {
		t.Error("system_metrics: false not applied")
	}
	dc, err := cfg.DetectorConfigs()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := detect.ConfigAs[detect.SuspiciousPortConfig]("suspicious_port", dc["suspicious_port"])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(sp.Ports, ",") != "4444,31337" {
		t.Errorf("suspicious_port.ports = %v, want the file's list", sp.Ports)
	}
	if _, err := detect.NewEngine(detect.Config{Detectors: dc, Disabled: cfg.Detect.Disabled}, nil); err != nil {
		t.Fatalf("engine from file config: %v", err)
	}
}

// Unknown keys anywhere, including inside a detector's section, are errors
// that name the key.
func TestUnknownKeysRejected(t *testing.T) {
	cases := map[string]string{
		"top":      "durration: 5m\n",
		"nested":   "log:\n  colour: true\n",
		"detector": "detect:\n  detectors:\n    suspicious_port:\n      portz: [1]\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err == nil {
				_, err = cfg.DetectorConfigs()
			}
			if err == nil {
				t.Fatalf("%q accepted", body)
			}
			bad := strings.Fields(strings.Split(body, ":")[0])[0]
			if name == "nested" {
				bad = "colour"
			} else if name == "detector" {
				bad = "portz"
			}
			if !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q does not name %q", err, bad)
			}
		})
	}
}

func TestValidateNamesBadKey(t *testing.T) {
	cases := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Format = "xml" }, "format"},
		{func(c *Config) { c.Interval = 0 }, "interval"},
		{func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{func(c *Config) { c.Log.Format = "yaml" }, "log.format"},
		{func(c *Config) { c.Sinks = []string{"carrier-pigeon:x"} }, "sink"},
		{func(c *Config) { c.Detect.HomeNet = []string{"10.0.0.0/33"} }, "detect.home_net"},
		{func(c *Config) { c.Detect.Disabled = []string{"nope"} }, "detect.disabled"},
		{func(c *Config) { c.Window = Duration(time.Millisecond) }, "window"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
		}
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"300": 300 * time.Second, "5m": 5 * time.Minute, "0": 0, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-5", "-1m", "five", "5x"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

// The configuration example in the README is valid: every key exists
// (strict decoding), values validate, detector sections decode.
func TestREADMEConfigExampleIsValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "### Configuration")
	if i < 0 {
		t.Fatal("README has no Configuration section")
	}
	start := strings.Index(text[i:], "```yaml\n")
	if start < 0 {
		t.Fatal("README Configuration section has no yaml example")
	}
	body := text[i+start+len("```yaml\n"):]
	body = body[:strings.Index(body, "```")]
	path := filepath.Join(t.TempDir(), "readme.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("README example: %v", err)
	}
	if _, err := cfg.DetectorConfigs(); err != nil {
		t.Fatalf("README example: %v", err)
	}
}
