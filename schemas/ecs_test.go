package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/netsentinel/netsentinel/detect"
)

func formatAll(t *testing.T, f Formatter) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, na := range fixtureAlerts() {
		b, err := f.Format(&na.alert)
		if err != nil {
			t.Fatalf("%s: %v", na.name, err)
		}
		if bytes.ContainsAny(b, "\n\r") {
			t.Fatalf("%s: output contains a raw newline", na.name)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func TestECSGolden(t *testing.T) {
	checkGolden(t, "ecs.ndjson", formatAll(t, testECS(t)))
}

func TestNativeGolden(t *testing.T) {
	checkGolden(t, "native.ndjson", formatAll(t, NewNative(attackLookup(t))))
}

func ecsDocOf(t *testing.T, a detect.Alert) map[string]any {
	t.Helper()
	b, err := testECS(t).Format(&a)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

func get(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func strs(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func alertNamed(t *testing.T, name string) detect.Alert {
	for _, na := range fixtureAlerts() {
		if na.name == name {
			return na.alert
		}
	}
	t.Fatalf("no fixture %s", name)
	return detect.Alert{}
}

func TestECSThreatSubtechnique(t *testing.T) {
	d := ecsDocOf(t, alertNamed(t, "suspicious_dns"))
	if got := strs(get(d, "threat.technique.id")); len(got) != 1 || got[0] != "T1071" {
		t.Errorf("threat.technique.id = %v, want [T1071]", got)
	}
	if got := strs(get(d, "threat.technique.name")); len(got) != 1 || got[0] != "Application Layer Protocol" {
		t.Errorf("threat.technique.name = %v", got)
	}
	if got := strs(get(d, "threat.technique.subtechnique.id")); len(got) != 1 || got[0] != "T1071.004" {
		t.Errorf("subtechnique.id = %v, want [T1071.004]", got)
	}
	if got := strs(get(d, "threat.technique.subtechnique.name")); len(got) != 1 || got[0] != "DNS" {
		t.Errorf("subtechnique.name = %v", got)
	}
	if got := strs(get(d, "threat.technique.subtechnique.reference")); len(got) != 1 || got[0] != "https://attack.mitre.org/techniques/T1071/004" {
		t.Errorf("subtechnique.reference = %v", got)
	}
	if got := strs(get(d, "threat.tactic.id")); len(got) != 1 || got[0] != "TA0011" {
		t.Errorf("threat.tactic.id = %v, want [TA0011]", got)
	}
	if get(d, "threat.framework") != "MITRE ATT&CK" {
		t.Errorf("threat.framework = %v", get(d, "threat.framework"))
	}

	// A technique in two tactics lists both, in parallel arrays.
	d = ecsDocOf(t, alertNamed(t, "arp_spoofing"))
	ids, names := strs(get(d, "threat.tactic.id")), strs(get(d, "threat.tactic.name"))
	if strings.Join(ids, ",") != "TA0006,TA0009" || strings.Join(names, ",") != "Credential Access,Collection" {
		t.Errorf("T1557.002 tactics = %v %v, want TA0006,TA0009 Credential Access,Collection", ids, names)
	}

	// A plain technique has no subtechnique object.
	d = ecsDocOf(t, alertNamed(t, "suspicious_port"))
	if get(d, "threat.technique.subtechnique") != nil {
		t.Errorf("T1571 got a subtechnique: %v", get(d, "threat.technique.subtechnique"))
	}
}

func TestECSWithoutLookupKeepsIDs(t *testing.T) {
	f, err := NewECS(testHost, Meta{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := alertNamed(t, "suspicious_dns")
	b, _ := f.Format(&a)
	d := decode(t, b)
	if got := strs(get(d, "threat.technique.subtechnique.id")); len(got) != 1 || got[0] != "T1071.004" {
		t.Errorf("without lookup subtechnique.id = %v", got)
	}
	if get(d, "threat.tactic") != nil || get(d, "threat.technique.name") != nil {
		t.Errorf("without lookup no names or tactics should be invented: %v", get(d, "threat"))
	}
	if get(d, "data_stream.dataset") != DefaultDataset || get(d, "event.dataset") != DefaultDataset || get(d, "data_stream.namespace") != DefaultNamespace {
		t.Errorf("defaults not applied: %v %v", get(d, "data_stream"), get(d, "event.dataset"))
	}
	if get(d, "agent.id") != testHost.ID {
		t.Errorf("agent.id should default to host.id, got %v", get(d, "agent.id"))
	}
}

func TestECSCategories(t *testing.T) {
	cases := []struct {
		name       string
		categories string
		types      string
	}{
		{"suspicious_port", "network,intrusion_detection", "info"},
		{"process_spawn", "intrusion_detection,process", "info,start"},
		{"reverse_shell", "network,intrusion_detection,process", "info,start"},
		{"arp_spoofing", "network,intrusion_detection", "info"},
	}
	for _, c := range cases {
		d := ecsDocOf(t, alertNamed(t, c.name))
		if got := strings.Join(strs(get(d, "event.category")), ","); got != c.categories {
			t.Errorf("%s: event.category = %s, want %s", c.name, got, c.categories)
		}
		if got := strings.Join(strs(get(d, "event.type")), ","); got != c.types {
			t.Errorf("%s: event.type = %s, want %s", c.name, got, c.types)
		}
		if get(d, "event.kind") != "alert" {
			t.Errorf("%s: event.kind = %v", c.name, get(d, "event.kind"))
		}
	}
}

func TestECSSeverityHigherIsWorse(t *testing.T) {
	prevSev, prevRisk := -1, -1.0
	for s := detect.SeverityLow; s <= detect.SeverityCritical; s++ {
		a := alertNamed(t, "suspicious_port")
		a.Severity = s
		d := ecsDocOf(t, a)
		sev, _ := get(d, "event.severity").(json.Number).Int64()
		risk, _ := get(d, "event.risk_score").(json.Number).Float64()
		if int(sev) <= prevSev || risk <= prevRisk || risk > 100 {
			t.Errorf("severity %d: event.severity %d risk %v not increasing (prev %d %v)", s, sev, risk, prevSev, prevRisk)
		}
		if get(d, "netsentinel.severity") != SeverityName(s) {
			t.Errorf("netsentinel.severity = %v, want %s", get(d, "netsentinel.severity"), SeverityName(s))
		}
		prevSev, prevRisk = int(sev), risk
	}
}

func TestECSNetworkFields(t *testing.T) {
	d := ecsDocOf(t, alertNamed(t, "suspicious_port"))
	want := map[string]string{
		"source.ip": "10.0.0.5", "destination.ip": "203.0.113.7", "network.transport": "tcp",
		"network.type": "ipv4", "network.direction": "egress", "process.user.name": "alice", "process.user.id": "1000",
		"process.command_line": "nc 203.0.113.7 4444", "process.parent.name": "bash", "event.id": "a-0001",
		"event.action": "suspicious_port", "rule.id": "suspicious_port", "host.id": testHost.ID,
	}
	for k, v := range want {
		if got := get(d, k); got != v {
			t.Errorf("%s = %v, want %s", k, got, v)
		}
	}
	if get(d, "network.community_id") != CommunityID("tcp", ap("10.0.0.5:43122"), ap("203.0.113.7:4444"), 0) {
		t.Errorf("network.community_id = %v", get(d, "network.community_id"))
	}
	if got := strs(get(d, "related.ip")); strings.Join(got, ",") != "10.0.0.5,203.0.113.7" {
		t.Errorf("related.ip = %v", got)
	}
	d = ecsDocOf(t, alertNamed(t, "exfil_ipv6"))
	if get(d, "network.type") != "ipv6" || get(d, "destination.ip") != "2001:db8:1::9" {
		t.Errorf("IPv6 alert: network.type %v destination.ip %v", get(d, "network.type"), get(d, "destination.ip"))
	}
	// A scan alert has addresses but no ports: no port fields, no community id.
	d = ecsDocOf(t, alertNamed(t, "port_scan"))
	if get(d, "source.port") != nil || get(d, "network.community_id") != nil {
		t.Errorf("port 0 must be omitted: source %v network %v", get(d, "source"), get(d, "network"))
	}
	if get(d, "event.start") != "2026-11-25T21:40:00.000Z" || get(d, "event.end") != "2026-11-25T21:45:01.000Z" {
		t.Errorf("window: event.start %v event.end %v", get(d, "event.start"), get(d, "event.end"))
	}
	// An unknown direction is normalised to "unknown", never passed through.
	a := alertNamed(t, "suspicious_port")
	a.Direction = "sideways"
	if got := get(ecsDocOf(t, a), "network.direction"); got != "unknown" {
		t.Errorf("network.direction for a bad value = %v, want unknown", got)
	}
	// Timestamps are UTC whatever the alert's zone.
	if got := get(ecsDocOf(t, alertNamed(t, "suspicious_dns")), "@timestamp"); got != "2026-11-25T21:45:03.000Z" {
		t.Errorf("@timestamp = %v", got)
	}
}

func TestECSEventIDFallbackIsStable(t *testing.T) {
	a := alertNamed(t, "suspicious_port")
	a.ID = ""
	id1, id2 := get(ecsDocOf(t, a), "event.id"), get(ecsDocOf(t, a), "event.id")
	if id1 == "" || id1 != id2 {
		t.Errorf("fallback event.id not stable: %v %v", id1, id2)
	}
	a.Entity = "other"
	if get(ecsDocOf(t, a), "event.id") == id1 {
		t.Errorf("different alerts got the same fallback id %v", id1)
	}
}

func TestNewFormatter(t *testing.T) {
	for _, name := range Formats {
		f, err := NewFormatter(name, testHost, Meta{}, nil)
		if err != nil || f.Name() != name {
			t.Fatalf("NewFormatter(%q) = %v, %v", name, f, err)
		}
	}
	_, err := NewFormatter("elastic", testHost, Meta{}, nil)
	if err == nil || !strings.Contains(err.Error(), `"elastic"`) {
		t.Errorf("unknown format error should name the value: %v", err)
	}
	for _, bad := range []Meta{{Dataset: "net-sentinel"}, {Namespace: "Prod"}, {Namespace: strings.Repeat("a", 101)}, {Dataset: "a b"}} {
		_, err := NewFormatter("ecs", testHost, bad, nil)
		if !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("Meta %+v accepted (err %v)", bad, err)
		}
	}
	if f, err := NewECS(testHost, Meta{Dataset: "netsentinel.alert", Namespace: "prod_eu1"}, nil); err != nil || f.Index() != "logs-netsentinel.alert-prod_eu1" {
		t.Errorf("valid meta rejected or wrong index: %v %v", f, err)
	}
	if _, err := (&Native{}).Format(nil); err == nil {
		t.Error("nil alert accepted")
	}
}

func TestNativeFields(t *testing.T) {
	n := NewNative(attackLookup(t))
	for _, na := range fixtureAlerts() {
		b, err := n.Format(&na.alert)
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, b)
		for _, k := range []string{"timestamp", "threat_type", "severity", "source_ip", "dest_ip", "port", "description", "evidence", "mitre_tactic", "mitre_technique"} {
			if _, ok := d[k]; !ok {
				t.Errorf("%s: native field %s missing", na.name, k)
			}
		}
		if d["threat_type"] != na.alert.ThreatType || d["mitre_technique"] != na.alert.Technique || d["event_id"] != na.alert.ID {
			t.Errorf("%s: threat_type %v technique %v event_id %v", na.name, d["threat_type"], d["mitre_technique"], d["event_id"])
		}
	}
	a := alertNamed(t, "suspicious_dns")
	b, _ := n.Format(&a)
	d := decode(t, b)
	// The original's timestamp keeps the zone it was taken in.
	if d["timestamp"] != "2026-11-25T22:45:03.000+01:00" || d["severity"] != "MEDIUM" || d["mitre_tactic"] != "Command and Control" ||
		d["dest_ip"] != "198.51.100.53" || d["port"] != json.Number("53") || d["source_ip"] != "10.0.0.5" {
		t.Errorf("native dns alert fields wrong: %s", b)
	}
	a = alertNamed(t, "process_spawn")
	b, _ = n.Format(&a)
	d = decode(t, b)
	if d["source_ip"] != "" || d["dest_ip"] != "" || d["port"] != json.Number("0") {
		t.Errorf("alert without endpoints: source_ip %q dest_ip %q port %v", d["source_ip"], d["dest_ip"], d["port"])
	}
}

// TestHostileInput: whatever a process calls itself, the output is one line
// of valid, bounded JSON that still matches the schema.
func TestHostileInput(t *testing.T) {
	huge := strings.Repeat("A", 3<<20)
	nasty := "evil\nname\r\x1b[31mRED\x1b[0m\x00\xff\xfe\u2028end\"}{"
	a := alertNamed(t, "reverse_shell")
	a.Message = nasty + huge
	a.Entity = huge
	a.ThreatType = nasty
	a.Process = &detect.ProcessInfo{
		PID: 1, Name: nasty, Executable: "/tmp/\xc3\x28" + huge, User: nasty,
		Args: append([]string{nasty, huge, "\xe2\x82"}, make([]string, 100000)...),
	}
	a.Evidence = map[string]any{
		"cmd": huge, nasty: []byte(nasty), "nan": nan(), "deep": deepMap(50), "list": make([]int, 1_000_000),
		"ch": make(chan int), "fn": func() {}, "addr": netip.MustParseAddr("::1"), "ptr": &a.Count,
		"cycle": cyclic(), "cyclic_struct": cyclicStruct(), "bytes": []byte("raw\xffbytes"),
	}
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Formatter{testECS(t), NewNative(attackLookup(t))} {
		b, err := f.Format(&a)
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		if !utf8.Valid(b) {
			t.Errorf("%s: output is not valid UTF-8", f.Name())
		}
		if bytes.ContainsAny(b, "\n\r\x1b\x00") {
			t.Errorf("%s: output contains a raw control character", f.Name())
		}
		if len(b) > 256<<10 {
			t.Errorf("%s: output is %d bytes, want it bounded under 256 KiB", f.Name(), len(b))
		}
		decode(t, b)
		if err := v.Validate(f.Name(), b); err != nil {
			t.Errorf("%s: hostile output fails its schema: %v", f.Name(), err)
		}
		if f.Name() == "ecs" {
			d := decode(t, b)
			if cl, _ := get(d, "process.command_line").(string); len(cl) > MaxCommandLine || !strings.HasSuffix(cl, truncMark) {
				t.Errorf("command_line is %d bytes (cap %d), truncation not marked", len(cl), MaxCommandLine)
			}
			if n := len(strs(get(d, "process.args"))); n == 0 || n > MaxArgs {
				t.Errorf("process.args has %d items (cap %d)", n, MaxArgs)
			}
			if c, _ := get(d, "process.args_count").(json.Number).Int64(); c != int64(len(a.Process.Args)) {
				t.Errorf("process.args_count = %d, want the true count %d", c, len(a.Process.Args))
			}
		}
	}
}

func cyclic() map[string]any {
	m := map[string]any{}
	m["self"] = m
	return m
}

type node struct {
	Name string
	Next *node
}

func cyclicStruct() *node {
	n := &node{Name: "loop"}
	n.Next = n
	return n
}

func nan() float64 { z := 0.0; return z / z }

func deepMap(n int) map[string]any {
	m := map[string]any{"leaf": 1}
	for i := 0; i < n; i++ {
		m = map[string]any{"d": m}
	}
	return m
}

func TestClean(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"a\xffb", 10, "a\uFFFDb"},
		{strings.Repeat("é", 20), 20, strings.Repeat("é", 3) + truncMark}, // 6 bytes + the 14-byte mark, cut on a rune boundary
	}
	for _, c := range cases {
		got := clean(c.in, c.max)
		if !utf8.ValidString(got) || len(got) > c.max && len(c.in) > c.max {
			t.Errorf("clean(%q, %d) = %q: invalid or too long", c.in, c.max, got)
		}
		if got != c.want {
			t.Errorf("clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestCommunityID(t *testing.T) {
	// Vectors from the Community ID spec's baseline (also used by Zeek's tests).
	cases := []struct {
		proto    string
		src, dst string
		seed     uint16
		want     string
	}{
		{"tcp", "1.2.3.4:1122", "5.6.7.8:3344", 0, "1:wCb3OG7yAFWelaUydu0D+125CLM="},
		{"udp", "1.2.3.4:1122", "5.6.7.8:3344", 0, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="},
		{"tcp", "1.2.3.4:1122", "5.6.7.8:3344", 1, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
		{"udp", "1.2.3.4:1122", "5.6.7.8:3344", 1, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
	}
	for _, c := range cases {
		if got := CommunityID(c.proto, ap(c.src), ap(c.dst), c.seed); got != c.want {
			t.Errorf("%s %s→%s seed %d = %s, want %s", c.proto, c.src, c.dst, c.seed, got, c.want)
		}
		if got := CommunityID(c.proto, ap(c.dst), ap(c.src), c.seed); got != c.want {
			t.Errorf("reverse %s %s→%s = %s, want %s", c.proto, c.dst, c.src, got, c.want)
		}
	}
	v6a, v6b := ap("[2001:db8::5]:50000"), ap("[2001:db8:1::9]:22")
	if x, y := CommunityID("tcp", v6a, v6b, 0), CommunityID("tcp", v6b, v6a, 0); x == "" || x != y {
		t.Errorf("IPv6 community id not symmetric: %q %q", x, y)
	}
	// IPv4-mapped IPv6 hashes as IPv4.
	if got := CommunityID("tcp", ap("[::ffff:1.2.3.4]:1122"), ap("5.6.7.8:3344"), 0); got != "1:wCb3OG7yAFWelaUydu0D+125CLM=" {
		t.Errorf("v4-mapped = %s", got)
	}
	for _, c := range [][3]string{{"icmp", "1.2.3.4:1", "5.6.7.8:2"}, {"tcp", "1.2.3.4:0", "5.6.7.8:2"}} {
		if got := CommunityID(c[0], ap(c[1]), ap(c[2]), 0); got != "" {
			t.Errorf("CommunityID(%v) = %q, want empty", c, got)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	b := []byte("# comment\nNAME=\"Debian GNU/Linux\"\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nVERSION_ID=\"12\"\nID=debian\nbroken line\nQUOTED=\"a \\\"b\\\"\"\n")
	m := ParseOSRelease(b)
	want := map[string]string{"NAME": "Debian GNU/Linux", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "VERSION_ID": "12", "ID": "debian", "QUOTED": `a "b"`}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	var h Host
	h.applyOSRelease(ParseOSRelease([]byte("NAME=Ubuntu\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n")))
	if h.OSFamily != "debian" || h.OSPlatform != "ubuntu" || h.OSVersion != "24.04" {
		t.Errorf("ubuntu host = %+v", h)
	}
}

func TestDetectHost(t *testing.T) {
	h := DetectHost()
	if h.Hostname == "" || h.OSType == "" || h.Architecture == "" {
		t.Errorf("DetectHost left basics empty: %+v", h)
	}
	for _, ip := range h.IPs {
		if a, err := netip.ParseAddr(ip); err != nil || a.IsLoopback() {
			t.Errorf("host IP %q is invalid or loopback", ip)
		}
	}
	f, err := NewECS(h, Meta{Version: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := alertNamed(t, "suspicious_port")
	b, err := f.Format(&a)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewValidator()
	if err := v.ValidateECS(b); err != nil {
		t.Errorf("document with the real host fails the schema: %v", err)
	}
}

// TestDetectLookupMatchesReference: the adapter over detect's catalogue gives
// the same names, parents, references and tactics as the ATT&CK reference for
// every live technique.
func TestDetectLookupMatchesReference(t *testing.T) {
	referenceLookup(t) // loads attackMap
	n := 0
	for id, want := range attackMap {
		got, ok := DetectLookup(id)
		if !ok {
			t.Errorf("%s: not in detect's catalogue", id)
			continue
		}
		if got.ID != want.ID || got.Name != want.Name || got.URL != want.URL || got.ParentID != want.ParentID ||
			got.ParentName != want.ParentName || got.ParentURL != want.ParentURL || len(got.Tactics) != len(want.Tactics) {
			t.Errorf("%s: DetectLookup %+v, reference %+v", id, got, want)
			continue
		}
		wantTactics := map[TacticRef]bool{}
		for _, ta := range want.Tactics {
			wantTactics[ta] = true
		}
		for _, ta := range got.Tactics {
			if !wantTactics[ta] {
				t.Errorf("%s: tactic %+v not in the reference", id, ta)
			}
		}
		n++
	}
	if n < 600 {
		t.Errorf("only %d live techniques compared", n)
	}
	if _, ok := DetectLookup("T9999"); ok {
		t.Error("unknown id resolved")
	}
}
