package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/netsentinel/netsentinel/detect"
)

func loadText(t *testing.T, text string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netsentinel.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		_, err = cfg.DetectorConfigs()
	}
	return cfg, err
}

// The shipped example is a continuous-mode service config that loads
// strictly and validates.
func TestExampleIsTheServiceConfig(t *testing.T) {
	cfg, err := loadText(t, string(Example))
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	if cfg.Duration.D() != 0 || cfg.Window.D() != 5*time.Minute {
		t.Errorf("duration %s, window %s; want 0 and 5m", cfg.Duration.D(), cfg.Window.D())
	}
	if !strings.HasPrefix(cfg.Output, "/var/lib/netsentinel/") || !strings.HasPrefix(cfg.Spool.Dir, "/var/lib/netsentinel/") {
		t.Errorf("report %q and spool %q not under /var/lib/netsentinel", cfg.Output, cfg.Spool.Dir)
	}
	if cfg.HTTP.Address != "" {
		t.Errorf("http.address = %q: the endpoint must be off by default", cfg.HTTP.Address)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0] != "file:/var/log/netsentinel/alerts.ndjson" {
		t.Errorf("sinks = %v, want the file sink under /var/log/netsentinel", cfg.Sinks)
	}
}

// optionLine is a commented-out option: "#" followed directly by the YAML
// line (a key, a list item, or deeper indentation), not "# prose".
var optionLine = regexp.MustCompile(`^(\s*)#([^ #].*|  .*)$`)

// Every commented-out option in the example is a real key with a valid
// value, and each detector section shows exactly the built-in defaults.
func TestExampleCommentedOptionsAreRealDefaults(t *testing.T) {
	var lines []string
	n := 0
	for _, l := range strings.Split(string(Example), "\n") {
		if m := optionLine.FindStringSubmatch(l); m != nil {
			l = m[1] + m[2]
			n++
		}
		lines = append(lines, l)
	}
	if n < 100 {
		t.Fatalf("only %d commented-out options found; the example should show every option", n)
	}
	cfg, err := loadText(t, strings.Join(lines, "\n"))
	if err != nil {
		t.Fatalf("example with every option uncommented: %v", err)
	}
	got, err := cfg.DetectorConfigs()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range detect.Factories() {
		if _, ok := cfg.Detect.Detectors[f.Name]; !ok {
			t.Errorf("detector %s has no section in the example", f.Name)
			continue
		}
		// Compared as YAML: an empty list in the file equals a nil default.
		shown, _ := yaml.Marshal(got[f.Name])
		def, _ := yaml.Marshal(f.DefaultConfig())
		if string(shown) != string(def) {
			t.Errorf("detector %s: the example shows\n%s\nthe defaults are\n%s", f.Name, shown, def)
		}
	}
	if len(cfg.Sinks) != 5 || len(cfg.Exceptions) != 2 || cfg.Orchestrator.ClusterName == "" {
		t.Errorf("uncommented: sinks %v, %d exceptions, orchestrator %+v; want the file, elasticsearch, kafka, syslog and routed sinks, two exceptions and a cluster name",
			cfg.Sinks, len(cfg.Exceptions), cfg.Orchestrator)
	}
}
