package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/internal/testserver"
)

// Alerts from a real netsentinel run land in a real store speaking the
// Elasticsearch bulk protocol (VictoriaLogs) and are queryable by
// threat.technique.id, event.id and host.name; the counts match what the
// run printed on stdout and what its report says it delivered.
func TestAlertsLandInElasticsearchStore(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	dir := t.TempDir()

	const polls = 40
	rec := suspiciousRecording(t, dir, polls)
	cfg := filepath.Join(dir, "netsentinel.yaml")
	hdr, _ := json.Marshal(vl.Headers())
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`sinks: [stdout, "elasticsearch:%s"]
elasticsearch:
  headers: %s
  dead_letter: %s
`, vl.InsertURL(), hdr, filepath.Join(dir, "dead.ndjson"))), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(binary, "replay", rec, "-c", cfg, "-o", report)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("netsentinel replay: %v\n%s", err, stderrOf(err))
	}
	var ids []string
	var host string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line not JSON: %q", sc.Text())
		}
		ids = append(ids, field(ev, "event.id").(string))
		host, _ = field(ev, "host.name").(string)
	}
	if len(ids) != 2*polls {
		t.Fatalf("stdout carried %d alerts, want %d", len(ids), 2*polls)
	}
	if got := vl.Count(t, "*"); got != len(ids) {
		t.Errorf("store holds %d documents, want %d", got, len(ids))
	}
	for q, want := range map[string]int{
		`threat.technique.id:"T1571"`:                  polls,
		`threat.technique.subtechnique.id:"T1090.003"`: polls,
		fmt.Sprintf(`host.name:=%q`, host):             2 * polls,
	} {
		if got := vl.Count(t, q); got != want {
			t.Errorf("%s: %d documents, want %d", q, got, want)
		}
	}
	for _, id := range []string{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
		rows := vl.Query(t, fmt.Sprintf(`event.id:=%q`, id))
		if len(rows) != 1 || rows[0]["event.kind"] != "alert" {
			t.Errorf("event.id %s: %d rows %v, want the one alert", id, len(rows), rows)
		}
	}
	var rep struct {
		Sinks map[string]struct {
			Delivered uint64 `json:"delivered"`
			Failed    uint64 `json:"failed"`
		} `json:"sink_statistics"`
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	es := rep.Sinks["elasticsearch:"+vl.InsertURL()]
	if es.Delivered != uint64(len(ids)) || es.Failed != 0 {
		t.Errorf("report elasticsearch sink: %+v (all %v), want %d delivered, 0 failed", es, rep.Sinks, len(ids))
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// suspiciousRecording writes a recording of polls snapshots, each with a
// fresh process connecting to a new TEST-NET host on a RAT port and one on a
// Tor port: 2*polls distinct alerts.
func suspiciousRecording(t *testing.T, dir string, polls int) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("rec-%d.ndjson", polls))
	r, err := collector.CreateRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := 0; i < polls; i++ {
		ts := t0.Add(time.Duration(i) * 2 * time.Second)
		pid := int32(1000 + i)
		snap := &collector.Snapshot{Time: ts, Hostname: "e2e-host",
			Processes: map[int32]*collector.Process{pid: {PID: pid, PPID: 1, Name: "implant", StartTime: ts}},
			Sockets: []collector.Socket{
				{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(2 * pid), FirstSeen: ts,
					Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(40000+i)),
					Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), 4444)},
				{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: pid, Inode: uint64(2*pid + 1), FirstSeen: ts,
					Local:  netip.AddrPortFrom(netip.MustParseAddr("10.66.0.10"), uint16(50000+i)),
					Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)}), 9001)},
			}}
		if err := r.Write(snap); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
