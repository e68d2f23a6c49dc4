package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// `netsentinel test output` sends one synthetic event through each sink and
// says per sink whether it was delivered: here a VictoriaLogs store (the
// Elasticsearch bulk API), a Kafka broker and a file take it, an
// unreachable Elasticsearch and Kafka do not, and the exit status says so.
func TestTestOutputThroughRealSinks(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	br := testserver.StartKafkaBroker(t, "-topics", "netsentinel-test", "-partitions", "1")
	dir := t.TempDir()
	hdr, _ := json.Marshal(vl.Headers())
	cfg := filepath.Join(dir, "netsentinel.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`sinks:
  - "elasticsearch:%s"
  - "kafka:%s/netsentinel-test"
  - "file:%s"
elasticsearch: {headers: %s, dead_letter: %s}
kafka: {dead_letter: %s}
`, vl.InsertURL(), br.Addr, filepath.Join(dir, "alerts.ndjson"), hdr, filepath.Join(dir, "es-dead.ndjson"), filepath.Join(dir, "k-dead.ndjson"))), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(binary, "test", "output", "-c", cfg).Output()
	if err != nil {
		t.Fatalf("test output with every sink up: %v\n%s%s", err, out, stderrOf(err))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	idRe := regexp.MustCompile(`: delivered \(event\.id ([0-9a-f-]{36})\)$`)
	var id string
	for _, want := range []string{"elasticsearch:" + vl.InsertURL(), "kafka:" + br.Addr + "/netsentinel-test", "file:"} {
		found := false
		for _, l := range lines {
			if m := idRe.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, want) {
				found, id = true, m[1]
			}
		}
		if !found {
			t.Errorf("no 'delivered' line for %s in:\n%s", want, out)
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d lines, want one per sink:\n%s", len(lines), out)
	}

	// The event as each receiver holds it.
	rows := vl.Query(t, fmt.Sprintf(`event.id:=%q`, id))
	if len(rows) != 1 || rows[0]["event.kind"] != "alert" || rows[0]["rule.id"] != "netsentinel_test" || !strings.Contains(rows[0]["tags"], "netsentinel-test") {
		t.Errorf("store rows for the test event: %v", rows)
	}
	recs := testserver.KcatConsume(t, br.Addr, "netsentinel-test")
	if len(recs) != 1 || recs[0].Payload == nil {
		t.Fatalf("kafka holds %d messages, want the test event", len(recs))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(*recs[0].Payload), &ev); err != nil {
		t.Fatal(err)
	}
	if field(ev, "event.id") != id || field(ev, "event.kind") != "alert" || field(ev, "rule.id") != "netsentinel_test" || !hasString(ev, "tags", "netsentinel-test") {
		t.Errorf("kafka message is not the test event: %s", *recs[0].Payload)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "alerts.ndjson"))
	if !strings.Contains(string(data), id) || strings.Count(string(data), "\n") != 1 {
		t.Errorf("file sink holds %q, want the one test event", data)
	}

	// Unreachable receivers: one FAILED line each naming the cause, exit 1;
	// the reachable sink still gets its event.
	cmd := exec.Command(binary, "test", "output", "--timeout", "10s",
		"--sink", "elasticsearch:http://elastic:s3cr3t@127.0.0.1:1", "--sink", "kafka:127.0.0.1:1/netsentinel-test",
		"--sink", "file:"+filepath.Join(dir, "more.ndjson"))
	cmd.Dir = t.TempDir()
	out, err = cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("test output with unreachable sinks: %v, want exit 1\n%s", err, out)
	}
	lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"elasticsearch:http://elastic:xxxxx@127.0.0.1:1: FAILED: ", "kafka:127.0.0.1:1/netsentinel-test: FAILED: ", "file:"}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("line %d = %q, want it to start with %q", i, l, want[i])
		}
	}
	if !strings.Contains(lines[0], "connection refused") || !strings.Contains(lines[1], "connection refused") || !strings.Contains(lines[2], "delivered") {
		t.Errorf("causes not named:\n%s", out)
	}
	if strings.Contains(string(out)+stderrOf(err), "s3cr3t") {
		t.Error("output carries the sink password")
	}
	// Nothing is left in the working directory (no default dead-letter files).
	if left, _ := filepath.Glob(filepath.Join(cmd.Dir, "netsentinel-*")); len(left) > 0 {
		t.Errorf("test output left %v in its working directory", left)
	}
}
