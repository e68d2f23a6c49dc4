package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/detect"
)

func TestFullFileTuning(t *testing.T) {
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	x, err := cfg.CompileExceptions()
	if err != nil || x.Len() != 1 || x.Names()[0] != "backup-ssh" {
		t.Fatalf("exceptions: %v, %v", x.Names(), err)
	}
	specs, err := cfg.SinkSpecs()
	if err != nil {
		t.Fatal(err)
	}
	high := specs[2]
	if high.Spec.Target != "/var/log/netsentinel/high.ndjson" || high.Route.MinSeverity != 3 ||
		strings.Join(high.Route.Rules, ",") != "tor,exfiltration" {
		t.Fatalf("routed sink: %+v", high)
	}
	if !specs[0].Route.IsZero() {
		t.Errorf("stdout has a route: %+v", specs[0].Route)
	}
	if cfg.StateDir != "/var/lib/netsentinel/state" {
		t.Errorf("state_dir %q", cfg.StateDir)
	}
}

// An exception or a route naming an unknown rule, field or value is a
// config error naming it.
func TestTuningErrorsNameTheProblem(t *testing.T) {
	for body, want := range map[string]string{
		"exceptions:\n  - name: a\n    rules: [lateral_movment]\n    match: {process.name: [ssh]}\n": `exceptions[0] "a": rules: unknown rule "lateral_movment"`,
		"exceptions:\n  - name: a\n    match: {process.nme: [ssh]}\n":                                `exceptions[0] "a": match: unknown field "process.nme"`,
		"exceptions:\n  - name: a\n    match: {source.ip: [10.0.0.0/40]}\n":                          `source.ip: value "10.0.0.0/40"`,
		"exceptions:\n  - name: a\n    matches: {source.ip: [10.0.0.1]}\n":                           "matches",
		"sinks: [\"file:/tmp/x?min_severity=urgent\"]\n":                                             `unknown severity "urgent"`,
		"sinks: [\"file:/tmp/x?rules=tor,nope\"]\n":                                                  `unknown rule "nope"`,
		"sinks: [\"file:/tmp/x?techniques=T9999\"]\n":                                                `"T9999" is not a live ATT&CK technique`,
		"sinks: [\"file:/tmp/x?min_sev=high\"]\n":                                                    `unknown sink option "min_sev"`,
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", body, err, want)
		}
	}
}

func TestRestartRequired(t *testing.T) {
	base := Default()
	base.Sinks = []string{"stdout", "elasticsearch:https://u:secret@es:9200"}
	same := base
	same.Sinks = []string{"stdout?min_severity=high", "elasticsearch:https://u:secret@es:9200?rules=tor"}
	same.Detect.Cooldown = Duration(1)
	same.Detect.Disabled = []string{"beaconing"}
	same.Exceptions = []detect.ExceptionSpec{{Name: "x"}}
	if got := RestartRequired(&base, &same); len(got) != 0 {
		t.Errorf("detect, exceptions and routes need a restart? %v", got)
	}
	buffered := same
	buffered.Sinks = []string{"stdout?min_severity=high", "elasticsearch:https://u:secret@es:9200?rules=tor&buffer=memory"}
	if got := RestartRequired(&base, &buffered); !slices.Equal(got, []string{"sinks"}) {
		t.Errorf("a buffer change: RestartRequired = %v, want [sinks]", got)
	}
	next := same
	next.Sinks = []string{"stdout", "elasticsearch:https://u:other@es:9200"}
	next.Elasticsearch.APIKeyFile = "/run/secrets/k"
	next.Interval = Duration(5)
	got := RestartRequired(&base, &next)
	if !slices.Equal(got, []string{"interval", "sinks", "elasticsearch"}) {
		t.Errorf("RestartRequired = %v, want [interval sinks elasticsearch]", got)
	}
	for _, k := range got {
		if strings.Contains(k, "secret") || strings.Contains(k, "other") {
			t.Errorf("a credential in %q", k)
		}
	}
}

// Every YAML block of the README's Tuning section loads and validates, and
// its exceptions give an example for every rule.
func TestREADMETuningExamplesAreValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "\n## Tuning\n")
	if i < 0 {
		t.Fatal("README has no Tuning section")
	}
	section := text[i+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	covered := map[string]bool{}
	blocks := strings.Split(section, "```yaml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("%d yaml blocks in the Tuning section, want the exceptions and the routes", len(blocks))
	}
	for n, b := range blocks {
		body := b[:strings.Index(b, "```")]
		path := filepath.Join(t.TempDir(), "tuning.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Fatalf("Tuning block %d: %v", n, err)
		}
		for _, e := range cfg.Exceptions {
			for _, r := range e.Rules {
				covered[r] = true
			}
		}
	}
	for _, r := range detect.AllRuleIDs() {
		if !covered[r] {
			t.Errorf("the Tuning section has no example exception for rule %q", r)
		}
	}
}
