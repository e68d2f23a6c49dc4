package main

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// TestHostIdentityInEvents replays one alerting snapshot with --host-root
// on the fixture host and a config with labels, tags and a cluster name, in
// a pod's environment: host.* describes the node, agent.* the sensor.
func TestHostIdentityInEvents(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec.ndjson")
	r, err := collector.CreateRecording(rec)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	nc := &collector.Process{PID: 42, PPID: 1, Name: "ncat", Cmdline: []string{"ncat", "198.51.100.10", "4444"}, StartTime: t0}
	if err := r.Write(&collector.Snapshot{Time: t0, Hostname: "h", Processes: map[int32]*collector.Process{42: nc},
		Sockets: []collector.Socket{{Proto: collector.ProtoTCP, Family: 4, State: collector.StateEstablished, PID: 42, Inode: 9, FirstSeen: t0,
			Local: netip.MustParseAddrPort("10.66.0.10:40000"), Remote: netip.MustParseAddrPort("198.51.100.10:4444")}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("labels: {env: prod}\ntags: [dc1]\norchestrator: {cluster_name: prod-eu-1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs(filepath.Join("..", "..", "schemas", "testdata", "hostroot"))
	t.Setenv("NODE_NAME", "node-7")
	t.Setenv("POD_NAME", "netsentinel-x2k9")
	t.Setenv("POD_NAMESPACE", "netsentinel")
	code, out, stderr := runCLI(t, "replay", rec, "-c", cfg, "--host-root", root, "-o", filepath.Join(dir, "r.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var ev struct {
		Host struct {
			Name, Hostname, ID string
			OS                 struct{ Name, Version string }
		}
		Agent struct {
			Name, ID, Type string
			EphemeralID    string `json:"ephemeral_id"`
		}
		Labels       map[string]string
		Tags         []string
		Orchestrator struct {
			Type      string
			Namespace string
			Cluster   struct{ Name string }
			Resource  struct{ Name, Type string }
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() {
		t.Fatalf("no event on stdout; stderr: %s", stderr)
	}
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Hostname()
	h, o := ev.Host, ev.Orchestrator
	if h.Name != "node-7" || h.Hostname != "node-7.example.internal" || h.ID != "0f3c1a9e5b7d4e2f8a6c4b2d0e1f3a5c" ||
		h.OS.Name != "Ubuntu" || h.OS.Version != "24.04" {
		t.Errorf("host = %+v, want the fixture node's identity", h)
	}
	if ev.Agent.Name != self || ev.Agent.Type != "netsentinel" || len(ev.Agent.EphemeralID) != 36 {
		t.Errorf("agent = %+v, want the sensor (%s)", ev.Agent, self)
	}
	if ev.Labels["env"] != "prod" || strings.Join(ev.Tags, ",") != "dc1" {
		t.Errorf("labels %v tags %v", ev.Labels, ev.Tags)
	}
	if o.Type != "kubernetes" || o.Cluster.Name != "prod-eu-1" || o.Namespace != "netsentinel" ||
		o.Resource.Name != "netsentinel-x2k9" || o.Resource.Type != "pod" {
		t.Errorf("orchestrator = %+v", o)
	}
}
