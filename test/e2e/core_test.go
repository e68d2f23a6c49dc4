package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// A process on the monitored host connects to a TEST-NET host on 4444 (a
// classic RAT/C2 port) and another to 9001 (Tor ORPort). The sensor, running
// unprivileged-style inside the host's namespaces, must put a T1571 and a
// T1090.003 alert on stdout (ECS), and a SIGINT mid-run must still leave a
// complete report that counts them.
func TestSuspiciousPortAndTorEndToEnd(t *testing.T) {
	netns.RequireTools(t, "ncat", "nsenter", "unshare")
	topo := netns.New(t, 0)
	const c2 = "198.51.100.10"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c2Listeners(t, ctx, topo, c2, 60, "4444", "9001")

	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	sensor := topo.HostCmd(ctx, binary, "-d", "60", "--interval", "500ms", "-o", report, "--log-format", "json")
	stdout, err := sensor.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	sensor.Stderr = stderr
	if err := topo.Background(sensor); err != nil {
		t.Fatal(err)
	}
	events := readEvents(stdout)
	time.Sleep(time.Second) // first poll taken

	for _, port := range []string{"4444", "9001"} {
		// Each client holds its connection open for 20 s, then exits.
		client := topo.HostCmd(ctx, "sh", "-c", "sleep 20 | timeout 25 ncat "+c2+" "+port)
		if err := topo.Background(client); err != nil {
			t.Fatal(err)
		}
	}

	t1571, _ := events.WaitFor(t, "T1571 alert", 15*time.Second, func(e map[string]any) bool {
		return hasString(e, "threat.technique.id", "T1571")
	})
	tor, _ := events.WaitFor(t, "T1090.003 alert", 15*time.Second, func(e map[string]any) bool {
		return hasString(e, "threat.technique.subtechnique.id", "T1090.003")
	})
	for name, e := range map[string]map[string]any{"T1571": t1571, "T1090.003": tor} {
		if field(e, "event.kind") != "alert" {
			t.Errorf("%s: event.kind = %v, want alert", name, field(e, "event.kind"))
		}
		if field(e, "destination.ip") != c2 {
			t.Errorf("%s: destination.ip = %v, want %s", name, field(e, "destination.ip"), c2)
		}
		if field(e, "process.name") != "ncat" {
			b, _ := json.Marshal(e)
			t.Errorf("%s: process.name = %v, want ncat (process context); event: %s", name, field(e, "process.name"), b)
		}
	}
	if p := field(t1571, "destination.port"); p != float64(4444) {
		t.Errorf("T1571 destination.port = %v, want 4444", p)
	}
	if p := field(tor, "destination.port"); p != float64(9001) {
		t.Errorf("Tor destination.port = %v, want 9001", p)
	}

	// SIGINT mid-run: the sensor drains its sinks and writes the report.
	if err := netns.SignalChild(sensor, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- sensor.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			b, _ := os.ReadFile(stderr.Name())
			t.Fatalf("sensor exited with %v after SIGINT; stderr:\n%s", err, b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sensor did not exit within 20 s of SIGINT")
	}
	if bad := events.BadLines(); len(bad) > 0 {
		t.Errorf("stdout carried %d non-JSON lines, first: %q", len(bad), bad[0])
	}

	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("report after SIGINT: %v", err)
	}
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report is not valid JSON: %v", err)
	}
	total, _ := field(rep, "executive_summary.total_threats").(float64)
	if total < 2 {
		t.Errorf("report total_threats = %v, want >= 2", field(rep, "executive_summary.total_threats"))
	}
	byTech, _ := field(rep, "executive_summary.by_technique").(map[string]any)
	if byTech["T1571"] == nil || byTech["T1090.003"] == nil {
		t.Errorf("report by_technique = %v, want T1571 and T1090.003 counted", byTech)
	}
	if fi, err := os.Stat(report); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("report mode = %v, want 0600", fi.Mode().Perm())
	}
}
