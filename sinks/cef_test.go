package sinks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/internal/testserver"
)

// hostileText holds every character CEF treats specially, in both parts.
const hostileText = "a|b\\c=d\ne\rf g=h \\= x=1"

// syslogAlert is testdata/syslog_alert.json: a document of the ECS
// formatter's golden output (schemas/testdata/golden/ecs.ndjson).
func syslogAlert(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "syslog_alert.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("testdata/syslog_alert.json: %v", err)
	}
	return doc
}

// cefTestDoc is the ECS fixture with hostile strings in the fields that
// reach the header and the extension.
func cefTestDoc(t *testing.T) []byte {
	t.Helper()
	doc := syslogAlert(t)
	doc["message"] = "msg " + hostileText
	doc["rule"].(map[string]any)["name"] = "name " + hostileText
	doc["event"].(map[string]any)["id"] = "id-1"
	doc["netsentinel"].(map[string]any)["entity"] = "ent " + hostileText
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCEFEscapingRoundTrip(t *testing.T) {
	line, err := FormatCEF(cefTestDoc(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(line), "\n\r") {
		t.Fatalf("CEF line holds a raw line break: %q", line)
	}
	c, err := testserver.ParseCEF(string(line))
	if err != nil {
		t.Fatalf("%v\nline: %s", err, line)
	}
	// The header cannot carry line breaks: they become spaces.
	if want := "name a|b\\c=d e f g=h \\= x=1"; c.Header[4] != want {
		t.Errorf("Name = %q, want %q", c.Header[4], want)
	}
	if got := c.Ext["msg"]; got != "msg "+hostileText {
		t.Errorf("msg = %q, want %q", got, "msg "+hostileText)
	}
	if got := c.Ext["cs6"]; got != "ent "+hostileText || c.Ext["cs6Label"] != "Entity" {
		t.Errorf("cs6 = %q (%q), want the entity", got, c.Ext["cs6Label"])
	}
}

func TestCEFFieldMap(t *testing.T) {
	line, err := FormatCEF(cefTestDoc(t), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testserver.ParseCEF(string(line))
	if err != nil {
		t.Fatal(err)
	}
	doc := syslogAlert(t)
	get := func(path ...string) any {
		var v any = doc
		for _, p := range path {
			v = v.(map[string]any)[p]
		}
		return v
	}
	wantHeader := [6]string{CEFVendor, CEFProduct, get("observer", "version").(string), get("rule", "id").(string), c.Header[4], "8"}
	if c.Header != wantHeader {
		t.Errorf("header = %q, want %q", c.Header, wantHeader)
	}
	want := map[string]string{
		"rt":              "1795643100000", // 2026-11-25T21:45:00.000Z
		"externalId":      "id-1",
		"cat":             "SUSPICIOUS_PORT",
		"src":             "10.0.0.5",
		"spt":             "43122",
		"dst":             "203.0.113.7",
		"dpt":             "4444",
		"proto":           "TCP",
		"deviceDirection": "1",
		"cnt":             "1",
		"dvchost":         "sensor-01",
		"sproc":           "nc",
		"spid":            "4242",
		"suser":           "alice",
		"suid":            "1000",
		"cs1":             "T1571",
		"cs1Label":        "MITRE ATT&CK Technique ID",
		"cs2":             "TA0011",
		"cs2Label":        "MITRE ATT&CK Tactic ID",
		"cs3":             "Non-Standard Port",
		"cs4":             get("network", "community_id").(string),
		"cs4Label":        "Community ID",
		"cs5":             "nc 203.0.113.7 4444",
		"cs5Label":        "Process Command Line",
	}
	for k, v := range want {
		if c.Ext[k] != v {
			t.Errorf("%s = %q, want %q (line %s)", k, c.Ext[k], v, line)
		}
	}
}

func TestCEFSeverityMap(t *testing.T) {
	for name, want := range map[string]int{"LOW": 3, "MEDIUM": 6, "HIGH": 8, "CRITICAL": 10, "": 5, "bogus": 5} {
		if got := CEFSeverity(name); got != want {
			t.Errorf("CEFSeverity(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestCEFFromNativeDocument(t *testing.T) {
	body := `{"timestamp":"2026-11-25T21:00:00Z","threat_type":"PORT_SCAN","severity":"CRITICAL","source_ip":"198.51.100.9",` +
		`"dest_ip":"10.0.0.5","port":22,"description":"scan","evidence":{},"mitre_tactic":"Discovery","mitre_technique":"T1046",` +
		`"event_id":"n-1","rule":"port_scan_inbound","mitre_tactic_ids":["TA0007"],"direction":"ingress",` +
		`"process":{"pid":7,"name":"sshd","uid":0}}`
	line, err := FormatCEF([]byte(body), "9.9")
	if err != nil {
		t.Fatal(err)
	}
	c, err := testserver.ParseCEF(string(line))
	if err != nil {
		t.Fatal(err)
	}
	if c.Header[2] != "9.9" || c.Header[3] != "port_scan_inbound" || c.Header[5] != "10" {
		t.Errorf("header %q", c.Header)
	}
	// Inbound: the local process is the destination side.
	for k, v := range map[string]string{"cs1": "T1046", "cs2": "TA0007", "dpt": "22", "dproc": "sshd", "dpid": "7", "deviceDirection": "0", "externalId": "n-1"} {
		if c.Ext[k] != v {
			t.Errorf("%s = %q, want %q", k, c.Ext[k], v)
		}
	}
	if _, err := FormatCEF([]byte(`{"x":1}`), ""); err == nil {
		t.Error("a body that is no alert document was accepted")
	}
}
