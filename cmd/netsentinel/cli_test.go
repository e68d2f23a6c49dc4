package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/internal/config"
)

// Help is GNU style: short and long forms together, a value name, the
// default once.
func TestHelpIsGNUStyle(t *testing.T) {
	code, out, stderr := runCLI(t, "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("--help: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"-d, --duration duration", "-o, --output path", "-c, --config file", "--sink SPEC", "--once",
		"record", "replay", "rules", "setup", "config", "completion", "version",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "(default 0s)") || strings.Contains(out, ") (default") {
		t.Errorf("help repeats a zero default:\n%s", out)
	}
	code, out, _ = runCLI(t, "help", "record")
	if code != 0 || !strings.Contains(out, "netsentinel record FILE [flags]") {
		t.Errorf("help record: exit %d:\n%s", code, out)
	}
}

// A bad flag prints one line that names it and where help is, nothing else.
func TestBadFlagIsOneLineWithHelpPointer(t *testing.T) {
	for _, args := range [][]string{{"--frobnicate"}, {"rules", "--frobnicate"}, {"-d", "soon"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout)
		}
		if n := strings.Count(stderr, "\n"); n != 1 {
			t.Errorf("%v: %d stderr lines, want 1: %q", args, n, stderr)
		}
		if !strings.Contains(stderr, "--help'") || !strings.Contains(stderr, strings.TrimLeft(args[len(args)-1], "-")) {
			t.Errorf("%v: %q does not name the flag and point to --help", args, stderr)
		}
	}
}

// Command lines written for Go's flag package (one dash before a long
// name) still parse.
func TestGoStyleLongFlagsStillWork(t *testing.T) {
	got := goStyleLongFlags([]string{"-once", "-duration=5", "-o", "x", "-d", "0", "--", "-once"},
		func(n string) bool { return n == "once" || n == "duration" })
	want := "--once --duration=5 -o x -d 0 -- -once"
	if strings.Join(got, " ") != want {
		t.Errorf("goStyleLongFlags = %q, want %q", strings.Join(got, " "), want)
	}
	// End to end: -format is a long flag; a bad value is reported as such.
	code, _, stderr := runCLI(t, "-format", "xml")
	if code != 2 || !strings.Contains(stderr, "format") {
		t.Errorf("-format xml: exit %d, %q", code, stderr)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_netsentinel", "zsh": "#compdef netsentinel", "fish": "complete -c netsentinel"} {
		code, out, stderr := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %q, output lacks %q", shell, code, stderr, want)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		_, out, _ := runCLI(t, "completion", "bash")
		f := filepath.Join(t.TempDir(), "c.bash")
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v: %s", err, b)
		}
	}
}

// The man pages the packages ship: one per command, valid roff headers.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "man", dir)
	if code != 0 {
		t.Fatalf("man: exit %d: %s", code, stderr)
	}
	for _, page := range []string{"netsentinel.1", "netsentinel-record.1", "netsentinel-config-check.1", "netsentinel-rules.1"} {
		data, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("%s: %v", page, err)
			continue
		}
		if !strings.Contains(string(data), `.TH "NETSENTINEL"`) {
			t.Errorf("%s has no .TH header:\n%.200s", page, data)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "netsentinel.1"))
	if !strings.Contains(string(data), "--duration") {
		t.Errorf("netsentinel.1 does not document --duration")
	}
}

func TestConfigExampleAndCheck(t *testing.T) {
	code, out, _ := runCLI(t, "config", "example")
	if code != 0 || out != string(config.Example) {
		t.Fatalf("config example: exit %d, output differs from internal/config/example.yaml", code)
	}
	path := filepath.Join(t.TempDir(), "netsentinel.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "config", "check", path)
	if code != 0 || !strings.Contains(out, "OK") || strings.Count(out, "\n") != 1 || stderr != "" {
		t.Errorf("config check of the example: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	bad := map[string]string{
		"durration":                         "durration: 5m\n",
		"log.level":                         "log: {level: loud}\n",
		"portz":                             "detect:\n  detectors:\n    suspicious_port: {portz: [1]}\n",
		"carrier-pigeon":                    "sinks: [carrier-pigeon:x]\n",
		"line 1: invalid duration \"soon\"": "interval: soon\n",
		"detect.home_net":                   "detect: {home_net: [10.0.0.0/33]}\n",
		"no such file":                      "",
		"detect.detectors":                  "detect: {detectors: {nope: {}}}\n",
		"ports":                             "detect: {detectors: {suspicious_port: {ports: [\"9050\"]}}}\n",
	}
	for want, body := range bad {
		p := filepath.Join(t.TempDir(), "bad.yaml")
		if want != "no such file" {
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out, stderr := runCLI(t, "config", "check", p)
		if code != 2 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
			t.Errorf("config check of %q: exit %d, stdout %q, stderr %q (want exit 2, one line naming %q)", body, code, out, stderr, want)
		}
	}
}

// `netsentinel health` against nothing listening: exit 1, one line; a bad
// URL or --http-address is bad usage.
func TestHealthCommandExitCodes(t *testing.T) {
	code, out, stderr := runCLI(t, "health", "--url", "http://127.0.0.1:1/healthz", "--timeout", "2s")
	if code != 1 || out != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("health, nothing listening: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if code, _, stderr := runCLI(t, "health", "--url", "127.0.0.1:9870"); code != 2 || !strings.Contains(stderr, "--url") {
		t.Errorf("health --url without scheme: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "--http-address", "localhost", "--once"); code != 2 || !strings.Contains(stderr, "http.address") {
		t.Errorf("--http-address localhost: exit %d, %q", code, stderr)
	}
}
