package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// What a real netsentinel run writes to Kafka is read back by kcat
// (librdkafka, an independent client): one message per alert, each an ECS
// alert whose event.id, key and headers match what the run printed.
func TestAlertsReadBackFromKafkaByKcat(t *testing.T) {
	br := testserver.StartKafkaBroker(t, "-topics", "netsentinel-alerts", "-partitions", "3")
	dir := t.TempDir()
	rec := suspiciousRecording(t, dir, 30)
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(binary, "replay", rec, "-o", report,
		"--sink", "stdout", "--sink", "kafka:"+br.Addr+"/netsentinel-alerts")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("netsentinel replay: %v\n%s", err, stderrOf(err))
	}
	var sent []string
	hostID := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line not JSON: %q", sc.Text())
		}
		sent = append(sent, field(ev, "event.id").(string))
		hostID, _ = field(ev, "host.id").(string)
	}
	if len(sent) != 60 {
		t.Fatalf("stdout carried %d alerts, want 60", len(sent))
	}
	recs := testserver.KcatConsume(t, br.Addr, "netsentinel-alerts")
	var got []string
	partitions := map[int]bool{}
	for _, r := range recs {
		if r.Payload == nil {
			t.Fatalf("message at %d/%d has no payload", r.Partition, r.Offset)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(*r.Payload), &ev); err != nil {
			t.Fatalf("message is not JSON: %q", *r.Payload)
		}
		id, _ := field(ev, "event.id").(string)
		if field(ev, "event.kind") != "alert" || !hasString(ev, "threat.framework", "MITRE ATT&CK") {
			t.Errorf("message %s is not an ECS alert: %s", id, *r.Payload)
		}
		if h, _ := r.Header("event.id"); h != id {
			t.Errorf("message %s: event.id header %q", id, h)
		}
		if h, _ := r.Header("technique"); h == "" {
			t.Errorf("message %s: no technique header", id)
		}
		if r.Key == nil || *r.Key != hostID {
			t.Errorf("message %s: key %v, want the host id %q", id, r.Key, hostID)
		}
		partitions[r.Partition] = true
		got = append(got, id)
	}
	sort.Strings(sent)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(sent, ",") {
		t.Errorf("kcat read %d alerts, the run printed %d; the event ids differ", len(got), len(sent))
	}
	if len(partitions) != 1 {
		t.Errorf("one host's alerts spread over partitions %v; keyed by host id they share one", partitions)
	}
}
