package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// Bad usage exits 2 with one line naming the bad flag or value.
func TestBadUsageExits2WithOneLine(t *testing.T) {
	cases := map[string][]string{
		"--interval":       {"--interval", "soon"},
		"format":           {"--format", "xml"},
		"sink":             {"--sink", "carrier-pigeon:x"},
		"frobnicate":       {"--frobnicate"},
		"command \"frob\"": {"frob"},
		"config":           {"-c", "/nonexistent/netsentinel.yaml"},
		"log.level":        {"--log-level", "loud"},
		"no topic":         {"--sink", "kafka:127.0.0.1:9092"},
	}
	for want, args := range cases {
		code, stdout, stderr := runCLI(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
		if stdout != "" {
			t.Errorf("%v: wrote to stdout: %q", args, stdout)
		}
		last := lastLine(stderr)
		if !strings.HasPrefix(last, "netsentinel: ") || !strings.Contains(last, strings.TrimPrefix(want, "--")) {
			t.Errorf("%v: last stderr line %q does not name %q", args, last, want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "netsentinel ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// `rules --format json` lists every detector's rules, each with a live
// ATT&CK technique and at least one tactic.
func TestRulesJSON(t *testing.T) {
	code, out, stderr := runCLI(t, "rules", "--format", "json")
	if code != 0 {
		t.Fatalf("rules: exit %d: %s", code, stderr)
	}
	var views []ruleView
	if err := json.Unmarshal([]byte(out), &views); err != nil {
		t.Fatalf("rules output is not JSON: %v", err)
	}
	seen := map[string]bool{}
	for _, v := range views {
		seen[v.Technique] = true
		tech, ok := detect.Technique(v.Technique)
		if !ok || !tech.Live() {
			t.Errorf("rule %s: technique %q not live in ATT&CK", v.ID, v.Technique)
		}
		if len(v.Tactics) == 0 || v.TechniqueName == "" {
			t.Errorf("rule %s: no tactic or technique name", v.ID)
		}
	}
	for _, want := range []string{"T1571", "T1090.003"} {
		if !seen[want] {
			t.Errorf("rules list no rule for %s", want)
		}
	}
}

// The table prints, under each rule, what it sees as root and as an
// unprivileged user; the rule rows stay aligned.
func TestRulesTableSaysWhatEachRuleSees(t *testing.T) {
	code, out, stderr := runCLI(t, "rules")
	if code != 0 {
		t.Fatalf("rules: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "RULE ") || (len(lines)-1)%3 != 0 {
		t.Fatalf("want a header then three lines per rule, got:\n%s", out)
	}
	col := strings.Index(lines[0], "TECHNIQUE")
	for i := 1; i < len(lines); i += 3 {
		row, root, unpriv := lines[i], lines[i+1], lines[i+2]
		if len(row) <= col || row[col-1] != ' ' || row[col] == ' ' {
			t.Errorf("row %q: technique not in the TECHNIQUE column (%d)", row, col)
		}
		if !strings.HasPrefix(root, "    as root: ") || !strings.HasPrefix(unpriv, "    as unprivileged: ") {
			t.Errorf("rule %q: sees lines %q / %q", row, root, unpriv)
		}
		if id := strings.Fields(row)[0]; id == detect.RuleSuspiciousPort && (strings.Contains(root, "(not stated)") || !strings.Contains(unpriv, "uid")) {
			t.Errorf("suspicious_port sees: %q / %q", root, unpriv)
		}
	}
}

// Replaying a recording is deterministic: same alerts, same order, and the
// report counts them. stdout carries only JSON events.
func TestReplayDeterministic(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec.ndjson.gz")
	r, err := collector.CreateRecording(rec)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ncat := &collector.Process{PID: 42, PPID: 1, Name: "ncat", Cmdline: []string{"ncat", "198.51.100.10", "4444"}, StartTime: t0}
	for i := 0; i < 3; i++ {
		snap := &collector.Snapshot{
			Time: t0.Add(time.Duration(i) * 2 * time.Second), Hostname: "h",
			Processes: map[int32]*collector.Process{42: ncat},
			Sockets: []collector.Socket{
				{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: 42, Inode: 9, FirstSeen: t0,
					Local: netip.MustParseAddrPort("10.66.0.10:40000"), Remote: netip.MustParseAddrPort("198.51.100.10:4444")},
				{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: 42, Inode: 10, FirstSeen: t0,
					Local: netip.MustParseAddrPort("10.66.0.10:40001"), Remote: netip.MustParseAddrPort("198.51.100.11:9001")},
			},
		}
		if err := r.Write(snap); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var runs [2][]string
	for i := range runs {
		report := filepath.Join(dir, "report.json")
		code, out, stderr := runCLI(t, "replay", rec, "-o", report, "--format", "native")
		if code != 0 {
			t.Fatalf("replay: exit %d: %s", code, stderr)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("stdout line is not JSON: %q", sc.Text())
			}
			for _, k := range []string{"timestamp", "threat_type", "severity", "source_ip", "dest_ip", "port", "description", "evidence", "mitre_tactic", "mitre_technique"} {
				if _, ok := ev[k]; !ok {
					t.Errorf("native event lacks %q: %s", k, sc.Text())
				}
			}
			runs[i] = append(runs[i], ev["threat_type"].(string)+"@"+ev["timestamp"].(string))
		}
		data, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Summary struct {
				Total int `json:"total_threats"`
			} `json:"executive_summary"`
		}
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Summary.Total != len(runs[i]) {
			t.Errorf("report total_threats %d, stdout carried %d", rep.Summary.Total, len(runs[i]))
		}
	}
	if len(runs[0]) != 2 {
		t.Fatalf("replay alerts = %v, want one SUSPICIOUS_PORT and one TOR_USAGE (cooldown holds the repeats)", runs[0])
	}
	if strings.Join(runs[0], ",") != strings.Join(runs[1], ",") {
		t.Errorf("replays differ:\n%v\n%v", runs[0], runs[1])
	}
}

// A password in an Elasticsearch URL never reaches the logs or the report.
func TestSinkCredentialsNotLoggedOrReported(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec.ndjson")
	r, err := collector.CreateRecording(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(&collector.Snapshot{Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Processes: map[int32]*collector.Process{}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	cfg := filepath.Join(dir, "c.yaml")
	// An unreachable store: the sink starts degraded (fail_fast off) and retries.
	if err := os.WriteFile(cfg, []byte("elasticsearch:\n  request_timeout: 1s\nqueue:\n  drain_timeout: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, stderr := runCLI(t, "replay", rec, "-c", cfg, "-o", report, "--sink", "elasticsearch:http://elastic:s3cr3t-pw@127.0.0.1:1")
	data, _ := os.ReadFile(report)
	for name, text := range map[string]string{"stderr": stderr, "report": string(data)} {
		if strings.Contains(text, "s3cr3t-pw") {
			t.Errorf("%s contains the password", name)
		}
	}
	if !strings.Contains(string(data), "elasticsearch:http://elastic:xxxxx@127.0.0.1:1") {
		t.Errorf("report does not name the sink by its redacted spec:\n%s", data)
	}
}
