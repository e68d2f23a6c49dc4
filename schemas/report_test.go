package schemas

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
	"github.com/netsentinel/netsentinel/detect"
)

func reportSnapshot() *collector.Snapshot {
	t := time.Date(2026, 11, 25, 21, 50, 0, 0, time.UTC)
	return &collector.Snapshot{
		Time: t, Hostname: "sensor-01",
		Sockets: []collector.Socket{
			{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: ap("10.0.0.5:43122"), Remote: ap("203.0.113.7:4444"), PID: 4242},
			{Proto: collector.ProtoTCP, State: collector.StateEstablished, Local: ap("[2001:db8::5]:50000"), Remote: ap("[2001:db8:1::9]:22")},
			{Proto: collector.ProtoTCP, State: collector.StateTimeWait, Local: ap("10.0.0.5:43000"), Remote: ap("203.0.113.9:80")},
			{Proto: collector.ProtoTCP, State: collector.StateListen, Local: ap("0.0.0.0:22"), PID: 1},
			{Proto: collector.ProtoTCP, State: collector.StateListen, Local: ap("[::]:22"), PID: 1},
			{Proto: collector.ProtoUDP, State: collector.StateUnconn, Local: ap("127.0.0.53:53"), Remote: ap("0.0.0.0:0"), PID: 300},
			{Proto: collector.ProtoUDP, State: collector.StateEstablished, Local: ap("10.0.0.5:53211"), Remote: ap("198.51.100.53:53"), PID: 6001},
		},
		Processes: map[int32]*collector.Process{
			1: {PID: 1, Name: "sshd"}, 300: {PID: 300, Name: "systemd-resolve"}, 4242: {PID: 4242, Name: "nc"}, 6001: {PID: 6001, Name: "dig"},
		},
		ARP: []collector.Neighbor{
			{IP: netip.MustParseAddr("10.0.0.1"), MAC: "52:54:00:de:ad:99", Device: "eth0", Complete: true},
			{IP: netip.MustParseAddr("10.0.0.20"), MAC: "52:54:00:de:ad:99", Device: "eth0", Complete: true},
		},
		Counters: collector.Counters{Valid: true},
		System:   collector.SystemMetrics{BytesSent: 1000, BytesRecv: 2000, PacketsSent: 10, PacketsRecv: 20, CPUPercent: 12.5, MemoryPercent: 40.25},
		Stats:    collector.Stats{Sockets: 7, SocketsNoPID: 2, Processes: 4, DestroyEvents: 3},
	}
}

func reportFixture(t testing.TB) ReportInput {
	var alerts []detect.Alert
	for _, na := range fixtureAlerts() {
		alerts = append(alerts, na.alert)
	}
	return ReportInput{
		Alerts: alerts, Snapshot: reportSnapshot(),
		WindowStart: time.Date(2026, 11, 25, 21, 40, 0, 0, time.UTC),
		WindowEnd:   time.Date(2026, 11, 25, 21, 50, 0, 0, time.UTC),
		GeneratedAt: time.Date(2026, 11, 25, 21, 50, 2, 0, time.UTC),
		Version:     "1.0.0-test",
		Collection: CollectionStats{Polls: 300, PollErrors: 1, TotalDuration: 3 * time.Second, MaxDuration: 40 * time.Millisecond,
			SourceErrors: map[string]int{"arp: permission denied": 2}},
		Sinks: map[string]SinkCounters{"stdout": {Sent: 9, DeadLettered: 1, Offered: 14, Filtered: 2,
			Dropped: 2, DroppedBy: map[string]uint64{"queue_full": 2}}},
		DetectorCounters: map[string]uint64{"window_evictions": 0},
		Suppressed:       map[string]uint64{"backup-ssh": 3},
		Lookup:           attackLookup(t),
	}
}

func TestReportGolden(t *testing.T) {
	r := BuildReport(reportFixture(t))
	b, err := MarshalReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := mustValidator(t).ValidateReport(b); err != nil {
		t.Fatalf("report fails its schema: %v", err)
	}
	checkGolden(t, "report.json", b)
}

func TestReportContent(t *testing.T) {
	in := reportFixture(t)
	r := BuildReport(in)
	s := r.Summary
	if s.TotalThreats != len(in.Alerts) || len(r.ThreatEvents) != len(in.Alerts) {
		t.Fatalf("total_threats %d, events %d, want %d", s.TotalThreats, len(r.ThreatEvents), len(in.Alerts))
	}
	if s.BySeverity["CRITICAL"] != 4 || s.BySeverity["HIGH"] != 4 || s.BySeverity["MEDIUM"] != 2 || s.BySeverity["LOW"] != 1 {
		t.Errorf("by_severity = %v", s.BySeverity)
	}
	if s.RiskLevel != "CRITICAL" {
		t.Errorf("risk_level = %s", s.RiskLevel)
	}
	// T1059.004 twice (spawn + reverse shell); T1557.002 counts in both its tactics.
	if s.ByTechnique["T1059.004"] != 2 || s.ByTechnique["T1071.004"] != 1 {
		t.Errorf("by_technique = %v", s.ByTechnique)
	}
	if s.ByMitreTactic["Credential Access"] != 1 || s.ByMitreTactic["Collection"] != 1 || s.ByMitreTactic["Command and Control"] != 4 {
		t.Errorf("by_mitre_tactic = %v", s.ByMitreTactic)
	}
	// Sorted by severity (worst first), then time.
	for i := 1; i < len(r.ThreatEvents); i++ {
		a, b := r.ThreatEvents[i-1], r.ThreatEvents[i]
		ra, rb := sevRank(a.Severity), sevRank(b.Severity)
		if ra < rb || (ra == rb && a.Timestamp > b.Timestamp && !strings.Contains(a.Timestamp+b.Timestamp, "+01:00")) {
			t.Errorf("threat_events not sorted at %d: %s %s then %s %s", i, a.Severity, a.Timestamp, b.Severity, b.Timestamp)
		}
	}
	// One recommendation per alert type present, none missing, none repeated.
	types := map[string]bool{}
	for _, a := range in.Alerts {
		types[a.ThreatType] = true
	}
	if len(r.Recommendations) != len(types) || len(r.RecommendationDetails) != len(types) {
		t.Errorf("%d recommendations for %d alert types", len(r.Recommendations), len(types))
	}
	for _, d := range r.RecommendationDetails {
		if !types[d.ThreatType] || d.Recommendation != detect.Recommendation(d.ThreatType) {
			t.Errorf("recommendation for %s: %q", d.ThreatType, d.Recommendation)
		}
		delete(types, d.ThreatType)
	}
	if r.RecommendationDetails[0].Severity != "CRITICAL" {
		t.Errorf("most severe type should come first: %+v", r.RecommendationDetails[0])
	}
	// Network state: 2 TCP established + 1 connected UDP; 2 TCP LISTEN + 1 UDP bound.
	if s.ActiveConnections != 3 || s.ListeningPorts != 3 || len(r.NetworkState.ARPTable) != 2 {
		t.Errorf("active %d listening %d arp %d", s.ActiveConnections, s.ListeningPorts, len(r.NetworkState.ARPTable))
	}
	if c := r.NetworkState.ActiveConnections; c[0].Process == "" && c[1].Process == "" {
		t.Errorf("process names not joined to connections: %+v", c)
	}
	if r.SystemMetrics.CPUPercent != 12.5 || r.Collection.Polls != 300 || r.Collection.CollectionSecondsMean != 0.01 {
		t.Errorf("metrics/collection wrong: %+v %+v", r.SystemMetrics, r.Collection)
	}
	sk := r.Sinks["stdout"]
	if sk.Delivered != 9 || sk.Failed != 3 || sk.Counters.DroppedBy["queue_full"] != 2 {
		t.Errorf("sink stats = %+v", sk)
	}
	if r.Metadata.AnalysisDurationSeconds != 600 || r.Metadata.WindowEnd != "2026-11-25T21:50:00.000Z" || r.Metadata.Hostname != "sensor-01" {
		t.Errorf("metadata = %+v", r.Metadata)
	}
}

func sevRank(s string) int {
	return map[string]int{"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}[s]
}

func TestReportEmptyWindow(t *testing.T) {
	r := BuildReport(ReportInput{WindowStart: time.Unix(0, 0), WindowEnd: time.Unix(60, 0)})
	b, err := MarshalReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := mustValidator(t).ValidateReport(b); err != nil {
		t.Fatalf("empty report fails its schema: %v\n%s", err, b)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["threat_events"] == nil || m["recommendations"] == nil {
		t.Errorf("empty lists must be [] not null: %s", b)
	}
	if r.Summary.RiskLevel != "CLEAN" {
		t.Errorf("risk_level = %s, want CLEAN", r.Summary.RiskLevel)
	}
}

func TestReportCaps(t *testing.T) {
	in := reportFixture(t)
	in.MaxListed, in.MaxThreatEvents = 1, 2
	r := BuildReport(in)
	if len(r.ThreatEvents) != 2 || r.Summary.ThreatEventsOmitted != len(in.Alerts)-2 || r.Summary.TotalThreats != len(in.Alerts) {
		t.Errorf("threat event cap: %d kept, %d omitted", len(r.ThreatEvents), r.Summary.ThreatEventsOmitted)
	}
	if r.ThreatEvents[0].Severity != "CRITICAL" {
		t.Errorf("the cap must keep the most severe: %s", r.ThreatEvents[0].Severity)
	}
	if len(r.NetworkState.ActiveConnections) != 1 || r.Summary.ActiveConnections != 3 || r.NetworkState.OmittedConnections != 2 {
		t.Errorf("connection cap: %d listed, summary %d, omitted %d", len(r.NetworkState.ActiveConnections), r.Summary.ActiveConnections, r.NetworkState.OmittedConnections)
	}
	b, _ := MarshalReport(r)
	if err := mustValidator(t).ValidateReport(b); err != nil {
		t.Error(err)
	}
}

// A host with more connections than the cap: the report lists the first
// DefaultMaxListed in order (protocol, remote, local) and counts the rest.
func TestReportDefaultConnectionCap(t *testing.T) {
	in := reportFixture(t)
	snap := *in.Snapshot
	snap.Sockets = nil
	const n = DefaultMaxListed + 1500
	for i := n - 1; i >= 0; i-- {
		snap.Sockets = append(snap.Sockets, collector.Socket{Proto: collector.ProtoTCP, State: collector.StateEstablished,
			Local:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 8080),
			Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(1024+i))})
	}
	in.Snapshot = &snap
	r := BuildReport(in)
	ac := r.NetworkState.ActiveConnections
	if len(ac) != DefaultMaxListed || r.NetworkState.OmittedConnections != n-DefaultMaxListed || r.Summary.ActiveConnections != n {
		t.Fatalf("%d listed, %d omitted, summary %d; want %d, %d, %d", len(ac), r.NetworkState.OmittedConnections, r.Summary.ActiveConnections, DefaultMaxListed, n-DefaultMaxListed, n)
	}
	for i := 1; i < len(ac); i++ {
		if a, b := ac[i-1], ac[i]; a.RemoteAddress > b.RemoteAddress || (a.RemoteAddress == b.RemoteAddress && a.RemotePort > b.RemotePort) {
			t.Fatalf("not sorted at %d: %+v before %+v", i, a, b)
		}
	}
	if c := ac[0]; c.RemoteAddress != "127.0.0.0" || c.LocalAddress != "127.0.0.1" || c.LocalPort != 8080 || c.Status != "ESTABLISHED" {
		t.Errorf("first connection %+v", c)
	}
	// Exactly the first DefaultMaxListed of the whole order are listed.
	type ep struct {
		addr string
		port int
	}
	var all []ep
	for _, so := range snap.Sockets {
		all = append(all, ep{so.Remote.Addr().String(), int(so.Remote.Port())})
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].addr < all[j].addr || (all[i].addr == all[j].addr && all[i].port < all[j].port)
	})
	for i, c := range ac {
		if (ep{c.RemoteAddress, c.RemotePort}) != all[i] {
			t.Fatalf("listed #%d is %s:%d, want %s:%d", i, c.RemoteAddress, c.RemotePort, all[i].addr, all[i].port)
		}
	}
}

func TestRiskLevel(t *testing.T) {
	cases := []struct {
		crit, high, med, low int
		want                 string
	}{
		{0, 0, 0, 0, "CLEAN"},
		{1, 0, 0, 0, "CRITICAL"},
		{1, 5, 5, 5, "CRITICAL"},
		{0, 3, 0, 0, "HIGH"},
		{0, 2, 0, 0, "MEDIUM"},
		{0, 1, 0, 0, "MEDIUM"},
		{0, 0, 4, 0, "MEDIUM"},
		{0, 0, 3, 0, "LOW"},
		{0, 0, 1, 0, "LOW"},
		{0, 0, 0, 1, "LOW"},
	}
	for _, c := range cases {
		got := RiskLevel(map[string]int{"CRITICAL": c.crit, "HIGH": c.high, "MEDIUM": c.med, "LOW": c.low})
		if got != c.want {
			t.Errorf("RiskLevel(c%d h%d m%d l%d) = %s, want %s", c.crit, c.high, c.med, c.low, got, c.want)
		}
	}
}

func TestWriteReportAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netsentinel_report.json")
	r := BuildReport(reportFixture(t))
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReportAtomic(path, r); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Summary.TotalThreats != r.Summary.TotalThreats {
		t.Errorf("written report does not read back: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("temporary files left behind: %v", names)
	}

	missing := filepath.Join(dir, "no-such-dir", "r.json")
	err = WriteReportAtomic(missing, r)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error for a missing directory should name the path and wrap ErrNotExist: %v", err)
	}
}

func TestWindowReportPath(t *testing.T) {
	end := time.Date(2026, 11, 25, 22, 45, 0, 0, time.FixedZone("CET", 3600))
	cases := map[string]string{
		"netsentinel_report.json": "netsentinel_report-20261125T214500Z.json",
		"/var/lib/ns/report.json": "/var/lib/ns/report-20261125T214500Z.json",
		"report":                  "report-20261125T214500Z",
		"out/r.v1.json":           "out/r.v1-20261125T214500Z.json",
		".json":                   "netsentinel_report-20261125T214500Z.json",
		"dir/":                    "dir/netsentinel_report-20261125T214500Z.json",
	}
	for in, want := range cases {
		if got := WindowReportPath(in, end); got != want {
			t.Errorf("WindowReportPath(%q) = %q, want %q", in, got, want)
		}
	}
	a := WindowReportPath("r.json", end)
	b := WindowReportPath("r.json", end.Add(5*time.Minute))
	if !(a < b) {
		t.Errorf("window names do not sort in time order: %s %s", a, b)
	}
}
